"""Compare finished demo runs (`bash scripts/demo.sh DIR [flags]`): accuracy per generation and size, paired
per-question differences against the pilot, and between runs at generation 2 (say, the stand-in ranker
against the no-feedback ablation on the same world). Prints the tables and appends them to BENCHMARKS.md.

Usage: python benchmarks/demo_runs.py LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--compare A,B ...]
(a label may hold "=" and ",": the folder follows the last "=", and A,B must name two given labels)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import append, markdown_table  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restreact.runner.plan import GENERATIONS  # noqa: E402
from restreact.runner.report import judge_title, paired_difference, per_question  # noqa: E402

SIZES = ("xs", "l")


def _summary(run: Path, g: str, size: str) -> dict | None:
  path = run / g / f"eval_{size}" / "summary.json"
  return json.loads(path.read_text()) if path.is_file() else None


def _pct(summary: dict | None) -> str:
  if summary is None:
    return ""
  return f"{100 * summary['auto_eval']['mean']:.1f} ± {100 * summary['auto_eval']['std']:.1f}"


def _diff(before: dict[str, float], after: dict[str, float]) -> str:
  d = paired_difference(before, after)
  return f"{100 * d['mean']:+.1f} ± {100 * d['sem']:.1f} ({d['better']} up, {d['worse']} down)"


def parse_runs(specs: list[str]) -> dict[str, Path]:
  """{label: run folder} from LABEL=RUN_DIR arguments; a label may hold "=" (the folder is after the last one)."""
  runs = {}
  for spec in specs:
    label, sep, folder = spec.rpartition("=")
    if not sep or not label:
      raise SystemExit(f"{spec!r}: expected LABEL=RUN_DIR")
    if not Path(folder).is_dir():
      raise SystemExit(f"{spec!r}: {folder} is not a folder")
    if label in runs:
      raise SystemExit(f"{spec!r}: the label {label!r} is given twice")
    runs[label] = Path(folder)
  return runs


def parse_pair(pair: str, labels) -> tuple[str, str]:
  """(A, B) from "A,B", where A and B are two of `labels` (which may hold commas themselves)."""
  splits = [(pair[:i], pair[i + 1:]) for i, c in enumerate(pair) if c == ","]
  known = [(a, b) for a, b in splits if a in labels and b in labels]
  if len(known) != 1:
    raise SystemExit(f"--compare {pair!r}: expected A,B with A and B two of the labels: {', '.join(labels)}")
  return known[0]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
  parser.add_argument("--compare", action="append", default=[], help="A,B: gen-2 paired difference B - A")
  parser.add_argument("--append-to", default=None, help="file to append to (default BENCHMARKS.md)")
  args = parser.parse_args()
  runs = parse_runs(args.runs)
  pairs_to_compare = [parse_pair(pair, runs) for pair in args.compare]
  judge = None
  rows = []
  for label, run in runs.items():
    for size in SIZES:
      summaries = {g: _summary(run, g, size) for g in GENERATIONS}
      if summaries["pilot"] is None:
        continue
      judge = judge or summaries["pilot"]["judge"]
      scores = {g: per_question(run / g / f"eval_{size}") for g in GENERATIONS if summaries[g]}
      change = _diff(scores["pilot"], scores["gen2"]) if "gen2" in scores else ""
      rows.append([label, size.upper(), *(_pct(summaries[g]) for g in GENERATIONS), change])
  title = judge_title(judge or "")
  table = markdown_table(["run", "size", f"pilot ({title}, %)", "gen 1", "gen 2",
                          "gen 2 - pilot, paired (points ± s.e.)"], rows)
  pairs = []
  for a, b in pairs_to_compare:
    for size in SIZES:
      before, after = (per_question(runs[x] / "gen2" / f"eval_{size}") for x in (a, b))
      if before and after:
        pairs.append([f"{b} - {a}", size.upper(), _diff(before, after)])
  if pairs:
    table += "\n\n" + markdown_table(["gen 2", "size", "paired difference (points ± s.e.)"], pairs)
  first = next(iter(runs.values()))
  any_summary = _summary(first, "pilot", "l") or {}
  notes = (f"Accuracy is {title.lower()} on the test split, mean ± sample std over {any_summary.get('runs', '?')} "
           f"runs of {any_summary.get('questions', '?')} questions; paired differences average each question's "
           "mean over runs, with the standard error over questions. Runs: "
           + "; ".join(f"{label} = `{run}`" for label, run in runs.items()) + ".")
  append("ReST demo runs, tiny models, CPU", table, notes, path=args.append_to)


if __name__ == "__main__":
  main()
