"""Where do a demo run's wrong answers go wrong first? For each generation and size evaluated, split the
evaluation's trajectories (every run) by whether the answer was right and whether the first search named the
question's own subject (synthetic world only: the subject is read with the world's grammar), then by whether
the generation's mixture held a search for that subject, then give the exact match of each question form.

A wrong answer that began by searching another entity failed at copying the question's subject, before any
step that ranking could repair with a better candidate the policy does not sample. A form the pilot showed
too rarely stays at 0% when no grown candidate ever takes its path.

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


FORM_OF_CHAIN = {form.chain: form.name for form in grammar.QUESTION_FORMS}


def graded(eval_dir: Path):
  """(record, answer right) of every trajectory of every run in `eval_dir`."""
  for grades_file in sorted(eval_dir.glob(GRADES)):
    grades = {g["question_id"]: g for _, g in json_lines(grades_file)}
    trajectories = grades_file.with_name(grades_file.name.replace(".grades.", ".trajectories."))
    for record in read_records(trajectories):
      yield record, grades[record.question_id]["exact_match"] == 1.0


def subject(record) -> str | None:
  parsed = grammar.read_question(record.question)
  return parsed[0].lower() if parsed else None


def on_subject(record) -> bool:
  """Whether the trajectory's first search named the question's subject."""
  query, name = first_query(record), subject(record)
  return name is not None and query is not None and query.strip().lower() == name


def split(eval_dir: Path) -> collections.Counter:
  """Counts of (answer right, first search names the question's subject) over every run in `eval_dir`."""
  return collections.Counter((right, on_subject(record)) for record, right in graded(eval_dir))


def trained_queries(mixture: Path) -> set[str]:
  """Every query (lowercased) that a search target of the mixture wrote."""
  queries = set()
  for _, example in json_lines(mixture):
    if example["step_type"] == "decision":
      try:
        action = parse_action(example["target"], STEP_ACTIONS["decision"])
      except ParseError:
        continue
      if isinstance(action, Search):
        queries.add(action.query.strip().lower())
  return queries


def by_training(eval_dir: Path, queries: set[str]) -> collections.Counter:
  """Counts of (the subject was a query of the training targets, first search names it)."""
  return collections.Counter((subject(record) in queries, on_subject(record)) for record, _ in graded(eval_dir))


def by_form(eval_dir: Path) -> dict[str, tuple[int, int]]:
  """{question form: (right, trajectories)} over every run in `eval_dir` ("other": not a world question)."""
  counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
  for record, right in graded(eval_dir):
    parsed = grammar.read_question(record.question)
    c = counts[FORM_OF_CHAIN[parsed[1]] if parsed else "other"]
    c[0] += right
    c[1] += 1
  return {form: (r, n) for form, (r, n) in sorted(counts.items())}


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise SystemExit(__doc__)
  run = Path(argv[1])
  evals = [(generation, eval_dir) for generation in argv[2:] or ["pilot", "gen1", "gen2"]
           for eval_dir in sorted((run / generation).glob("eval_*"))]
  size = lambda eval_dir: eval_dir.name.removeprefix("eval_").upper()
  print("| generation | size | trajectories | right | wrong | wrong, first search off the question's subject |")
  print("|---|---|---:|---:|---:|---:|")
  for generation, eval_dir in evals:
    c = split(eval_dir)
    right, wrong = c[(True, True)] + c[(True, False)], c[(False, True)] + c[(False, False)]
    off = f"{c[(False, False)]} ({c[(False, False)] / wrong:.0%})" if wrong else "0"
    print(f"| {generation} | {size(eval_dir)} | {right + wrong} | {right} | {wrong} | {off} |")
  print("\nFirst searches on the question's subject, by whether the generation's mixture had a search target"
        " for it:\n")
  print("| generation | size | subject searched in training: trajectories | first search on it | "
        "never searched in training: trajectories | first search on it |")
  print("|---|---|---:|---:|---:|---:|")
  for generation, eval_dir in evals:
    mixture = run / generation / "mixture" / "mixture.jsonl"
    if not mixture.exists():
      continue
    c = by_training(eval_dir, trained_queries(mixture))
    cells = []
    for trained in (True, False):
      n = c[(trained, True)] + c[(trained, False)]
      cells += [str(n), f"{c[(trained, True)] / n:.0%}" if n else ""]
    print(f"| {generation} | {size(eval_dir)} | " + " | ".join(cells) + " |")
  forms = [(generation, eval_dir, by_form(eval_dir)) for generation, eval_dir in evals]
  names = sorted({name for *_, f in forms for name in f})
  print("\nExact match (%) by question form (trajectories over every run):\n")
  print("| generation | size | " + " | ".join(names) + " |")
  print("|---|---|" + "---:|" * len(names))
  for generation, eval_dir, f in forms:
    cells = [f"{100 * f[n][0] / f[n][1]:.0f} ({f[n][1]})" if n in f else "" for n in names]
    print(f"| {generation} | {size(eval_dir)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv)
