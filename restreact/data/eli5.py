"""ELI5 questions (Fan et al. 2019): the paper grows on r/explainlikeimfive, r/AskHistorians and r/askscience.

Read from a local JSONL file (a .json file holding one list also works), one question a line, in either shape:

- simple: `{"id": "...", "question": "...", "answers": ["...", ...]}` (or `"answer": "..."`), optional `"subreddit"`;
- the original ELI5 / Hugging Face `eli5` row: `{"q_id", "title", "selftext", "subreddit", "answers": {"a_id": [...],
  "text": [...], "score": [...]}}`. The title is the question (selftext is not used); answers go highest score first.

`subreddit=` ("eli5", "askhistorians" or "askscience"; "askh" / "asks" too) keeps one subreddit's rows, so one
file can hold all three. There is no download: Hugging Face's `eli5` is defunct since Reddit's 2023 API terms,
and tensorflow-datasets (4.9.10) has no ELI5 builder. The README says how to prepare the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from restreact.data.questions import QuestionRecord, _answers, _json_rows, _jsonl_rows, register_question_set

SUBREDDITS = {"eli5": "explainlikeimfive", "explainlikeimfive": "explainlikeimfive", "askh": "askhistorians",
              "askhistorians": "askhistorians", "asks": "askscience", "askscience": "askscience"}
SOURCES = {"explainlikeimfive": "eli5", "askhistorians": "eli5_askh", "askscience": "eli5_asks"}
PREPARE = "README, 'Preparing NQ-open and ELI5', says how to make one"


def load_eli5(path: str | os.PathLike | None = None, *, subreddit: str | None = None) -> list[QuestionRecord]:
  """The questions of a local ELI5 JSONL file, all of them or those of one `subreddit`."""
  wanted = None
  if subreddit is not None:
    wanted = SUBREDDITS.get(str(subreddit).lower().removeprefix("r/"))
    if wanted is None:
      raise ValueError(f"eli5: unknown subreddit {subreddit!r}; choose eli5, askhistorians or askscience")
  if path is None:
    raise FileNotFoundError(f"question set 'eli5' has no download: set its path to a local JSONL file of ELI5 "
                            f"questions ({PREPARE})")
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such ELI5 file ({PREPARE})")
  rows = _json_rows(path) if path.suffix.lower() == ".json" else _jsonl_rows(path)
  source = SOURCES[wanted] if wanted else "eli5"
  records, seen = [], set()
  for index, (where, row) in enumerate(rows):
    found = _subreddit(row, where, wanted)
    seen.add(found)
    if wanted is None or found == wanted:
      records.append(_record(row, where, index, source))
  if not records:
    what = f"no r/{wanted} questions (subreddits there: {', '.join(sorted(seen))})" if seen else "no questions"
    raise ValueError(f"{path}: holds {what}")
  return records


def _subreddit(row: Mapping, where: str, wanted: str | None) -> str | None:
  value = row.get("subreddit")
  if value is None:
    if wanted is not None:
      raise ValueError(f"{where}: no 'subreddit' field, so subreddit={wanted!r} cannot select rows; add the field "
                       "or drop the option")
    return None
  if not isinstance(value, str) or not value.strip():
    raise ValueError(f"{where}: 'subreddit' must be a non-empty string, got {value!r}")
  return value.strip().lower().removeprefix("r/")


def _record(row: Mapping, where: str, index: int, source: str) -> QuestionRecord:
  question = row.get("question", row.get("title"))
  if not isinstance(question, str) or not question.strip():
    raise ValueError(f"{where}: needs a non-empty 'question' (or 'title', the original ELI5 field)")
  answers = row.get("answers", row.get("answer"))
  if isinstance(answers, Mapping):  # the original shape: parallel lists under answers
    texts = answers.get("text")
    if not isinstance(texts, list):
      raise ValueError(f"{where}: 'answers' is an object without a 'text' list (the original ELI5 shape)")
    scores = answers.get("score")
    numbers = isinstance(scores, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in scores)
    if numbers and len(scores) == len(texts):
      order = sorted(range(len(texts)), key=lambda i: -scores[i])  # stable: ties keep the file's order
      texts = [texts[i] for i in order]
    answers = texts
  qid = next((row[k] for k in ("id", "q_id") if row.get(k) not in (None, "")), None)
  qid = str(qid).strip() if qid is not None else f"{source}-{index:05d}"
  found = _answers([answers], where)
  return QuestionRecord(qid, question.strip(), found[0], found, source)


register_question_set("eli5", load_eli5, needs_path=True)
