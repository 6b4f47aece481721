"""Human ratings: export answers to a CSV for raters, read their ratings back, and measure agreement with auto-eval.

The paper reports Pearson 0.98 and Spearman 0.83 between auto-eval and human ratings. `agreement`
computes both with scipy over paired scores keyed by id: question ids (one verdict and one rating per
answer), or the names of systems or runs (their aggregate auto-eval and human scores).
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

from scipy import stats

COLUMNS = ("id", "question", "reference", "answer", "auto_eval", "rating")
_WORDS = {"true": 1.0, "yes": 1.0, "false": 0.0, "no": 0.0}


@dataclasses.dataclass(frozen=True)
class RatedAnswer:
  """One answer to show raters, with the auto-eval verdict."""

  id: str
  question: str
  reference: str
  answer: str
  auto_eval: bool


@dataclasses.dataclass(frozen=True)
class Agreement:
  """Pearson and Spearman correlation (and their p-values) between auto-eval and human ratings."""

  n: int
  pearson: float
  pearson_p: float
  spearman: float
  spearman_p: float


def export_for_raters(rows: Sequence[RatedAnswer], path: str | os.PathLike, *, blind: bool = False,
                      overwrite: bool = False) -> Path:
  """Write a CSV with an empty `rating` column; `blind` leaves auto-eval out so it cannot anchor the raters."""
  path = Path(path)
  if path.exists() and not overwrite:
    raise FileExistsError(f"{path}: exists (it may hold ratings); pass overwrite=True to replace it")
  if len({r.id for r in rows}) != len(rows):
    raise ValueError(f"{path}: answer ids must be unique")
  columns = [c for c in COLUMNS if not (blind and c == "auto_eval")]
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for row in rows:
      record = dataclasses.asdict(row) | {"auto_eval": int(row.auto_eval), "rating": ""}
      writer.writerow({c: _safe_cell(record[c]) for c in columns})
  return path


def _safe_cell(value):
  """Text a spreadsheet would run as a formula (model answers are untrusted) is quoted with a leading '."""
  if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
    return "'" + value
  return value


def _rating(text: str, where: str, column: str) -> float:
  value = (text or "").strip().lower()
  if not value:
    raise ValueError(f"{where}: no {column!r} value (rate every answer, or remove the row)")
  if value in _WORDS:
    return _WORDS[value]
  try:
    number = float(value)
  except ValueError:
    raise ValueError(f"{where}: {column!r} is {text!r}; expected 0/1, true/false or a number") from None
  if not math.isfinite(number):
    raise ValueError(f"{where}: {column!r} is {text!r}; expected a finite number")
  return number


def import_ratings(path: str | os.PathLike, *, column: str = "rating", id_column: str = "id") -> dict[str, float]:
  """Ratings by id from a rated CSV (0/1, true/false, yes/no or any number; column names in any case).

  `column="auto_eval"` reads the auto-eval verdicts back from the same file.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such ratings file")
  with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: spreadsheets may add a BOM
    reader = csv.DictReader(f)
    names = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    missing = [c for c in (id_column, column) if c.lower() not in names]
    if missing:
      found = ", ".join(reader.fieldnames or []) or "none"
      raise ValueError(f"{path}: no {' or '.join(repr(c) for c in missing)} column; found: {found}")
    ratings: dict[str, float] = {}
    for row in reader:
      where = f"{path}:{reader.line_num}"
      qid = (row[names[id_column.lower()]] or "").strip()
      if not qid:
        raise ValueError(f"{where}: empty {id_column!r}")
      if qid in ratings:
        raise ValueError(f"{where}: id {qid!r} appears more than once")
      ratings[qid] = _rating(row[names[column.lower()]], where, column)
  if not ratings:
    raise ValueError(f"{path}: holds no ratings")
  return ratings


def agreement(auto: Mapping[str, bool | float], human: Mapping[str, float]) -> Agreement:
  """Pearson and Spearman correlation between auto-eval and human ratings over the same ids.

  A side that is constant (every answer rated the same) has no defined correlation: NaN.
  """
  if set(auto) != set(human):
    only_auto, only_human = sorted(set(auto) - set(human)), sorted(set(human) - set(auto))
    parts = [f"{len(only_auto)} only in auto-eval ({', '.join(map(repr, only_auto[:5]))})" if only_auto else "",
             f"{len(only_human)} only in human ratings ({', '.join(map(repr, only_human[:5]))})" if only_human else ""]
    raise ValueError("auto-eval and human ratings cover different ids: " + "; ".join(p for p in parts if p))
  ids = sorted(auto)
  if len(ids) < 3:
    raise ValueError(f"need at least 3 rated answers for a correlation, got {len(ids)}")
  x, y = [float(auto[i]) for i in ids], [float(human[i]) for i in ids]
  with warnings.catch_warnings():  # constant input: scipy warns and returns NaN, which we report as is
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    pearson, spearman = stats.pearsonr(x, y), stats.spearmanr(x, y)
  return Agreement(len(ids), float(pearson.statistic), float(pearson.pvalue), float(spearman.statistic),
                   float(spearman.pvalue))
