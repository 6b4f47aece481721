"""Repeated eval runs (the paper: 10 runs over Bamboogle) aggregated into mean ± std, and a per-question table.

The std is the *sample* standard deviation over runs (ddof=1): the runs are a sample of what the
agent and judge would score with other random seeds. With a single run it is NaN (shown as no ± part).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence

DEFAULT_RUNS = 10
Scores = Mapping[str, float | bool]  # question id -> score in [0, 1] (a verdict, EM or F1)


@dataclasses.dataclass(frozen=True)
class QuestionStats:
  """One question's scores across runs."""

  id: str
  scores: tuple[float, ...]

  @property
  def mean(self) -> float:
    """Mean score over runs."""
    return statistics.fmean(self.scores)


@dataclasses.dataclass(frozen=True)
class RunsSummary:
  """Per-run mean scores, their mean and sample std, and every question's scores."""

  run_scores: tuple[float, ...]
  per_question: tuple[QuestionStats, ...]

  @property
  def mean(self) -> float:
    """Mean over runs of each run's mean score."""
    return statistics.fmean(self.run_scores)

  @property
  def std(self) -> float:
    """Sample standard deviation over runs (ddof=1); NaN with one run."""
    return statistics.stdev(self.run_scores) if len(self.run_scores) > 1 else math.nan

  def cell(self, *, percent: bool = True, digits: int = 1) -> str:
    """"mean ± std" as the paper's tables print it."""
    return format_mean_std(self.mean, self.std, percent=percent, digits=digits)


def format_mean_std(mean: float, std: float, *, percent: bool = True, digits: int = 1) -> str:
  """`65.9 ± 1.2` (percent of fractions by default); the ± part is left out when std is NaN."""
  scale = 100.0 if percent else 1.0
  text = f"{mean * scale:.{digits}f}"
  return text if math.isnan(std) else f"{text} ± {std * scale:.{digits}f}"


def _score(value, qid: str, run: int) -> float:
  if isinstance(value, bool):
    return float(value)
  if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:  # NaN fails the range check too
    raise ValueError(f"run {run}, question {qid!r}: score must be a bool or a number in [0, 1], got {value!r}")
  return float(value)


def _ids_text(ids) -> str:
  ids = sorted(ids)
  return ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def aggregate_runs(runs: Sequence[Scores]) -> RunsSummary:
  """Aggregate runs that each scored the same questions (order of the first run kept)."""
  if not runs:
    raise ValueError("no runs to aggregate")
  ids = list(runs[0])
  if not ids:
    raise ValueError("run 0 scored no questions")
  for number, run in enumerate(runs[1:], 1):
    if set(run) != set(ids):
      missing, extra = set(ids) - set(run), set(run) - set(ids)
      raise ValueError(f"run {number} does not score the questions of run 0: "
                       + "; ".join(filter(None, [missing and f"missing {_ids_text(missing)}",
                                                 extra and f"extra {_ids_text(extra)}"])))
  table = [[_score(run[qid], qid, number) for qid in ids] for number, run in enumerate(runs)]
  run_scores = tuple(statistics.fmean(row) for row in table)
  per_question = tuple(QuestionStats(qid, tuple(row[j] for row in table)) for j, qid in enumerate(ids))
  return RunsSummary(run_scores, per_question)


def repeat_runs(run_once: Callable[[int], Scores], runs: int = DEFAULT_RUNS, *, seed: int = 0) -> RunsSummary:
  """Call `run_once(seed + r)` for r in range(runs) and aggregate the scores."""
  if runs < 1:
    raise ValueError(f"runs must be at least 1, got {runs}")
  return aggregate_runs([run_once(seed + r) for r in range(runs)])


def _cell(text: str) -> str:
  """Text safe inside a markdown table cell."""
  return " ".join(str(text).split()).replace("|", "\\|")


def per_question_table(summary: RunsSummary, questions: Mapping[str, str] | None = None, *,
                       percent: bool = True, digits: int = 1) -> str:
  """A markdown table: id, question (when given), mean score, and each run's score (1/0 when binary)."""
  binary = all(s in (0.0, 1.0) for q in summary.per_question for s in q.scores)
  head = ["id"] + (["question"] if questions is not None else []) + ["mean", "runs"]
  lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
  for q in summary.per_question:
    runs = "".join(str(int(s)) for s in q.scores) if binary else " ".join(f"{s:.2f}" for s in q.scores)
    row = [_cell(q.id)] + ([_cell(questions.get(q.id, ""))] if questions is not None else [])
    row += [format_mean_std(q.mean, math.nan, percent=percent, digits=digits), runs]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines) + "\n"
