"""The ELI5 question set: both row shapes, subreddit selection, and errors that name the file and line."""

import json
from pathlib import Path

import pytest

from restreact.data import load_eli5, load_questions

ORIGINAL = [  # the original ELI5 / Hugging Face `eli5` shape
    {"q_id": "8houtx", "title": "Why does room-temperature water feel colder than air?", "selftext": "",
     "subreddit": "explainlikeimfive", "answers": {"a_id": ["a", "b"], "text": ["Air moves heat slowly.",
                                                                            "Water conducts heat better."],
                                                   "score": [3, 11]}},
    {"q_id": "2xkq1", "title": "How did medieval armies feed themselves?", "selftext": "On long campaigns.",
     "subreddit": "AskHistorians", "answers": {"a_id": ["c"], "text": ["Foraging and supply trains."], "score": [40]}},
    {"q_id": "3asc9", "title": "Why is the sky blue?", "subreddit": "askscience",
     "answers": {"text": ["Rayleigh scattering.", "Rayleigh scattering.", "Short wavelengths scatter more."]}},
]
SIMPLE = [
    {"id": "s1", "question": "Why do cats purr?", "answers": ["Nobody is sure.", "Vibrating larynx muscles."],
     "subreddit": "r/explainlikeimfive"},
    {"id": "s2", "question": "Who built Hadrian's Wall?", "answer": "Roman legions", "subreddit": "askhistorians"},
]


def jsonl(path: Path, rows, extra: str = "") -> Path:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + extra, encoding="utf-8")
  return path


def test_both_shapes_in_one_file(tmp_path):
  path = jsonl(tmp_path / "eli5.jsonl", ORIGINAL + SIMPLE, extra="\n")
  records = load_questions("eli5", path)
  assert [r.id for r in records] == ["8houtx", "2xkq1", "3asc9", "s1", "s2"]
  assert records[0].question == "Why does room-temperature water feel colder than air?"  # the title; no selftext
  assert records[0].answers == ("Water conducts heat better.", "Air moves heat slowly.")  # highest score first
  assert records[2].answers == ("Rayleigh scattering.", "Short wavelengths scatter more.")  # no scores: file order
  assert records[3].answer == "Nobody is sure." and records[4].answers == ("Roman legions",)
  assert {r.source for r in records} == {"eli5"}


@pytest.mark.parametrize("option, ids, source", [
    ("eli5", ["8houtx", "s1"], "eli5"), ("askhistorians", ["2xkq1", "s2"], "eli5_askh"),
    ("askh", ["2xkq1", "s2"], "eli5_askh"), ("AskScience", ["3asc9"], "eli5_asks"), ("r/asks", ["3asc9"], "eli5_asks")])
def test_subreddit_selects_rows(tmp_path, option, ids, source):
  path = jsonl(tmp_path / "eli5.jsonl", ORIGINAL + SIMPLE)
  records = load_questions("eli5", path, subreddit=option)
  assert [r.id for r in records] == ids and {r.source for r in records} == {source}


def test_a_json_list_and_rows_without_subreddit_or_id(tmp_path):
  path = tmp_path / "mine.json"
  path.write_text(json.dumps([{"question": "Why is ice slippery?", "answers": "A thin film of water."}]))
  [record] = load_eli5(path)
  assert (record.id, record.answer, record.source) == ("eli5-00000", "A thin film of water.", "eli5")
  with pytest.raises(ValueError, match=r"mine.json: item 0: no 'subreddit' field, so subreddit='askscience' cannot"):
    load_eli5(path, subreddit="asks")


def test_errors_name_the_file_and_line(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"question set 'eli5' has no download: set its path.*README"):
    load_questions("eli5")
  with pytest.raises(FileNotFoundError, match=r"missing.jsonl: no such ELI5 file"):
    load_questions("eli5", tmp_path / "missing.jsonl")
  with pytest.raises(ValueError, match=r"unknown subreddit 'askreddit'; choose eli5, askhistorians or askscience"):
    load_questions("eli5", tmp_path / "missing.jsonl", subreddit="askreddit")
  cases = [
      ("bad.jsonl", [ORIGINAL[0]], "{oops\n", r"bad.jsonl:2: not valid JSON"),
      ("noq.jsonl", [SIMPLE[0], {"id": "x", "answers": ["y"]}], "", r"noq.jsonl:2: needs a non-empty 'question'"),
      ("notext.jsonl", [{"title": "Why?", "answers": {"a_id": ["a"]}}], "",
       r"notext.jsonl:1: 'answers' is an object without a 'text' list"),
      ("noans.jsonl", [SIMPLE[0], {"question": "Why?", "answers": {"text": ["  "]}}], "", r"noans.jsonl:2: no answer"),
      ("types.jsonl", [{"question": "Why?", "answers": [{"text": "x"}]}], "",
       r"types.jsonl:1: an answer must be a string, got dict"),
      ("sub.jsonl", [{"question": "Why?", "answer": "x", "subreddit": 5}], "",
       r"sub.jsonl:1: 'subreddit' must be a non-empty string"),
      ("list.jsonl", [], "[1, 2]\n", r"list.jsonl:1: expected a JSON object, got list"),
  ]
  for name, rows, extra, message in cases:
    with pytest.raises(ValueError, match=message):
      load_questions("eli5", jsonl(tmp_path / name, rows, extra))
  only_eli5 = jsonl(tmp_path / "only.jsonl", [ORIGINAL[0]])
  with pytest.raises(ValueError, match=r"only.jsonl: holds no r/askhistorians questions \(subreddits there: "
                                       r"explainlikeimfive\)"):
    load_questions("eli5", only_eli5, subreddit="askhistorians")
  with pytest.raises(ValueError, match=r"empty.jsonl: holds no questions"):
    load_questions("eli5", jsonl(tmp_path / "empty.jsonl", [], "\n"))
  with pytest.raises(ValueError, match=r"id 's1' appears more than once"):
    load_questions("eli5", jsonl(tmp_path / "dup.jsonl", [SIMPLE[0], SIMPLE[0]]))
