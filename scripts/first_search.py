"""Where do a demo run's wrong answers go wrong first? For each generation and size evaluated, split the
evaluation's trajectories (every run) by whether the answer was right and whether the first search named the
question's own subject (synthetic world only: the subject is read with the world's grammar).

A wrong answer that began by searching another entity failed at copying the question's subject, before any
step that ranking could repair with a better candidate the policy does not sample.

Usage: python scripts/first_search.py RUN_DIR [GENERATION ...]   (default: pilot gen1 gen2)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from restreact.agent.actions import STEP_ACTIONS, Search
from restreact.agent.parser import ParseError, parse_action
from restreact.agent.records import read_records
from restreact.data import grammar
from restreact.jsonl import json_lines
from restreact.runner.report import GRADES


def first_query(record) -> str | None:
  """The query of the trajectory's first chosen decision, if it was a search."""
  for step in record.model_steps():
    if step.step_type == "decision" and step.chosen is not None:
      try:
        action = parse_action(step.candidates[step.chosen].text, STEP_ACTIONS["decision"])
      except ParseError:
        return None
      return action.query if isinstance(action, Search) else None
  return None


def split(eval_dir: Path) -> collections.Counter:
  """Counts of (answer right, first search names the question's subject) over every run in `eval_dir`."""
  counts: collections.Counter = collections.Counter()
  for grades_file in sorted(eval_dir.glob(GRADES)):
    grades = {g["question_id"]: g for _, g in json_lines(grades_file)}
    trajectories = grades_file.with_name(grades_file.name.replace(".grades.", ".trajectories."))
    for record in read_records(trajectories):
      parsed = grammar.read_question(record.question)
      query = first_query(record)
      on_subject = parsed is not None and query is not None and query.strip().lower() == parsed[0].lower()
      counts[(grades[record.question_id]["exact_match"] == 1.0, on_subject)] += 1
  return counts


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise SystemExit(__doc__)
  run = Path(argv[1])
  print("| generation | size | trajectories | right | wrong | wrong, first search off the question's subject |")
  print("|---|---|---:|---:|---:|---:|")
  for generation in argv[2:] or ["pilot", "gen1", "gen2"]:
    for eval_dir in sorted((run / generation).glob("eval_*")):
      c = split(eval_dir)
      right, wrong = c[(True, True)] + c[(True, False)], c[(False, True)] + c[(False, False)]
      off = f"{c[(False, False)]} ({c[(False, False)] / wrong:.0%})" if wrong else "0"
      print(f"| {generation} | {eval_dir.name.removeprefix('eval_').upper()} | {right + wrong} | {right} | {wrong} | "
            f"{off} |")


if __name__ == "__main__":
  main(sys.argv)
