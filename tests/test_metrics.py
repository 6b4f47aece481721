"""Exact match and F1 with SQuAD normalization."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from restreact.eval import exact_match, f1, normalize_answer


def test_normalization():
  assert normalize_answer("The  Cat,\tsat!") == "cat sat"
  assert normalize_answer("an apple a day") == "apple day"
  assert normalize_answer("Theater of the Absurd") == "theater of absurd"  # articles only as whole words
  assert normalize_answer("U.S.-born") == "usborn"  # punctuation is deleted, not replaced by a space
  assert normalize_answer("  \n ") == "" and normalize_answer("The.") == ""
  assert normalize_answer("Café — Zürich") == "café — zürich"  # only ASCII punctuation, as in SQuAD
  with pytest.raises(TypeError, match="must be a string, got NoneType"):
    normalize_answer(None)


def test_exact_match():
  assert exact_match("Saint Bernadette Soubirous.", "Saint Bernadette Soubirous") == 1.0
  assert exact_match("the Broncos", "Denver Broncos") == 0.0
  assert exact_match("Denver Broncos", ["Denver Broncos", "The Denver Broncos"]) == 1.0
  assert exact_match("the denver broncos", ["Carolina Panthers", "Denver Broncos"]) == 1.0
  assert exact_match("A", "an") == 1.0  # both normalize to nothing
  with pytest.raises(ValueError, match="no reference answers"):
    exact_match("x", [])


def test_f1_like_the_squad_script():
  assert f1("the Broncos", "Denver Broncos") == pytest.approx(2 / 3)  # precision 1, recall 1/2
  assert f1("cat sat on the mat", "the cat sat") == pytest.approx(2 * 1 * 0.5 / 1.5)  # precision 1/2, recall 1
  assert f1("Santa Clara, California", ["Levi's Stadium", "Santa Clara"]) == pytest.approx(0.8)
  assert f1("blue blue", "blue") == pytest.approx(2 / 3)  # counts are clipped: one shared token
  assert f1("red", "blue") == 0.0
  assert f1("the", "a") == 1.0 and f1("the", "cat") == 0.0 and f1("cat", "an") == 0.0


words = st.lists(st.sampled_from(["the", "a", "cat", "Cat", "dog,", "sat", "on", "mat."]), max_size=6).map(" ".join)


@given(words, st.lists(words, min_size=1, max_size=3))
def test_properties(pred, refs):
  score = f1(pred, refs)
  assert 0.0 <= score <= 1.0
  assert exact_match(pred, refs) <= score  # an exact match is a perfect F1
  assert score == max(f1(pred, r) for r in refs)
  assert f1(pred, refs) == f1(pred.upper(), refs)
