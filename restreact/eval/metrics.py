"""Exact match and token F1 with SQuAD answer normalization (the official SQuAD evaluation script's rules).

Normalization: lowercase, drop ASCII punctuation, drop the articles a/an/the as whole words, collapse
whitespace. As in the SQuAD v2.0 script, F1 of two answers that both normalize to nothing is 1.0 (and
0.0 when only one does), so EM and F1 agree on empty answers.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
  """Lowercase, remove punctuation and articles, collapse whitespace (SQuAD)."""
  if not isinstance(text, str):
    raise TypeError(f"an answer must be a string, got {type(text).__name__}")
  text = text.lower().translate(_PUNCTUATION)
  return " ".join(_ARTICLES.sub(" ", text).split())


def _references(ref: str | Sequence[str]) -> list[str]:
  refs = [ref] if isinstance(ref, str) else list(ref)
  if not refs:
    raise ValueError("no reference answers to compare with")
  return refs


def exact_match(pred: str, ref: str | Sequence[str]) -> float:
  """1.0 when the normalized prediction equals a normalized reference (any of them), else 0.0."""
  pred = normalize_answer(pred)
  return float(any(pred == normalize_answer(r) for r in _references(ref)))


def _f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
  if not pred_tokens or not ref_tokens:
    return float(pred_tokens == ref_tokens)
  common = collections.Counter(pred_tokens) & collections.Counter(ref_tokens)
  same = sum(common.values())
  if same == 0:
    return 0.0
  precision, recall = same / len(pred_tokens), same / len(ref_tokens)
  return 2 * precision * recall / (precision + recall)


def f1(pred: str, ref: str | Sequence[str]) -> float:
  """Token-overlap F1 of the normalized answers; the best over references when there are several."""
  tokens = normalize_answer(pred).split()
  return max(_f1(tokens, normalize_answer(r).split()) for r in _references(ref))
