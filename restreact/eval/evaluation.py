"""Evaluate a policy: R seeded rollouts over a question set, graded by the judge, with EM and F1 beside it.

Each run writes its trajectories (`runNN.trajectories.jsonl`, resumable) and then its grades
(`runNN.grades.jsonl`, written at once when the run is graded), so an interrupted evaluation redoes at
most one run's unfinished trajectories. `summary.json` holds mean ± std over runs of auto-eval, EM and
F1; `per_question.md` the per-question table; `for_raters.csv` run 0's answers for human raters.
In a multi-process run every process rolls out and grades in step; process 0 writes the files and reads
them back for the others.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from restreact import multihost
from restreact.agent import AgentConfig
from restreact.agent.records import Lineage
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import EngineSampler
from restreact.data import QuestionRecord
from restreact.eval.human import RatedAnswer, export_for_raters
from restreact.eval.judge import Judge, JudgeItem
from restreact.eval.metrics import exact_match, f1
from restreact.eval.runs import aggregate_runs, per_question_table
from restreact.files import write_atomic
from restreact.jsonl import json_lines

log = logging.getLogger(__name__)
@dataclasses.dataclass(frozen=True)
class Grade:
  """One question of one run: the answer and its three scores."""

  question_id: str
  answer: str
  auto_eval: bool
  judge_parsed: bool
  exact_match: float
  f1: float
  status: str


def grade_run(records, questions: dict[str, QuestionRecord], judge: Judge) -> list[Grade]:
  """Grades for a run's trajectories, in question order."""
  records = sorted(records, key=lambda r: r.question_id)
  items = [JudgeItem(r.question, r.final_answer or "", questions[r.question_id].answer) for r in records]
  refs = [questions[r.question_id].answers or (questions[r.question_id].answer,) for r in records]
  verdicts = judge.grade(items, refs)
  return [Grade(r.question_id, r.final_answer or "", v.correct, v.parsed, exact_match(r.final_answer or "", list(ref)),
                f1(r.final_answer or "", list(ref)), r.status) for r, v, ref in zip(records, verdicts, refs)]


def _read_grades(path: Path) -> list[dict] | None:
  """A finished run's grades as process 0 reads them (None when the run is not graded yet), on every process."""
  return multihost.from_writer(lambda: [raw for _, raw in json_lines(path)] if path.is_file() else None)


def run_eval(directory: Path, questions: Sequence[QuestionRecord], *, engine_for_run: Callable[[int], object],
             tool, agent: AgentConfig, judge: Judge, runs: int, seed: int, lineage: Lineage,
             max_in_flight: int = 64, tool_workers: int = 16, progress: bool = True,
             raters_csv: bool = True, **limits) -> dict:
  """R runs over `questions` into `directory`; returns (and writes) the summary. `limits`: `rollout`'s
  search_deadline, max_failure_rate, trajectory_deadline and rollout_deadline (one run's)."""
  by_id = {q.id: q for q in questions}
  tasks = [Task(q.id, q.question, q.answer) for q in questions]
  all_grades = []
  for run in range(runs):
    grades_path = directory / f"run{run:02d}.grades.jsonl"
    graded = _read_grades(grades_path)
    if graded is None:
      trajectories = directory / f"run{run:02d}.trajectories.jsonl"
      sampler = EngineSampler(engine_for_run(run), agent, seed=seed * 1000 + run)
      done = rollout(tasks, sampler, tool, agent, trajectories, lineage=lineage, max_in_flight=max_in_flight,
                     tool_workers=tool_workers, progress=progress, **limits)
      graded = [dataclasses.asdict(g) for g in grade_run(done.records, by_id, judge)]
      multihost.from_writer(lambda: write_atomic(grades_path, "".join(json.dumps(g, sort_keys=True) + "\n"
                                                                      for g in graded)))
    all_grades.append([Grade(**raw) for raw in graded])
  summary = summarize_grades(all_grades, judge.name)
  multihost.from_writer(lambda: _write_summary(directory, summary, all_grades, by_id, raters_csv))
  return summary


def _write_summary(directory: Path, summary: dict, all_grades: list[list[Grade]],
                   by_id: dict[str, QuestionRecord], raters_csv: bool) -> None:
  write_atomic(directory / "summary.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
  auto = aggregate_runs([{g.question_id: g.auto_eval for g in grades} for grades in all_grades])
  write_atomic(directory / "per_question.md", per_question_table(auto, {q: r.question for q, r in by_id.items()}))
  raters = directory / "for_raters.csv"
  if raters_csv and _has_ratings(raters):
    log.warning("%s holds ratings: kept, not rewritten", raters)
  elif raters_csv:  # blind: the auto-eval verdict would anchor the raters (it is in run00.grades.jsonl)
    rows = [RatedAnswer(g.question_id, by_id[g.question_id].question, by_id[g.question_id].answer, g.answer,
                        g.auto_eval) for g in all_grades[0]]
    export_for_raters(rows, raters, blind=True, overwrite=True)


def _has_ratings(path: Path) -> bool:
  if not path.is_file():
    return False
  with open(path, encoding="utf-8-sig", newline="") as f:
    return any((row.get("rating") or "").strip() for row in csv.DictReader(f))


def summarize_grades(all_grades: Sequence[Sequence[Grade]], judge_name: str) -> dict:
  """Mean ± sample std over runs of auto-eval, exact match, F1 and answered (the share of trajectories that
  reached a final answer), plus the judge's unparseable count."""
  out = {"runs": len(all_grades), "questions": len(all_grades[0]) if all_grades else 0, "judge": judge_name,
         "judge_unparseable": sum(not g.judge_parsed for grades in all_grades for g in grades)}
  for metric in ("auto_eval", "exact_match", "f1", "answered"):
    summary = aggregate_runs([{g.question_id: _score(g, metric) for g in grades} for grades in all_grades])
    out[metric] = {"mean": summary.mean, "std": summary.std, "run_scores": list(summary.run_scores)}
  return out


def _score(grade: Grade, metric: str) -> float:
  if metric == "answered":  # the trajectory got through every step to a final answer, right or wrong
    return float(grade.status == "done")
  return float(getattr(grade, metric))


def dev_score(questions: Sequence[QuestionRecord], *, engine, tool, agent: AgentConfig, judge: Judge, runs: int,
              seed: int, directory: Path, progress: bool = False, **limits) -> float:
  """Mean auto-eval accuracy on the dev questions (checkpoint selection); the trajectories are kept."""
  def clear():  # each call grades the current weights afresh
    for old in directory.glob("*.jsonl"):
      old.unlink()

  multihost.from_writer(clear)
  summary = run_eval(directory, questions, engine_for_run=lambda run: engine, tool=tool, agent=agent, judge=judge,
                     runs=runs, seed=seed, lineage=Lineage("dev", -1, agent.fingerprint()), progress=progress,
                     raters_csv=False, **limits)
  return summary["auto_eval"]["mean"]
