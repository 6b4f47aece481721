"""How much could ranking improve a generation's training targets? Per step type of a demo run's grown
trajectories: how often the policy's chosen candidate, the ranking's target, and the best candidate were
good by the stand-in ranker's own rules (`restreact/rest/stand_in_ranker.py`, synthetic world only).

When "best candidate" barely exceeds "policy's choice", the samples rarely disagree in quality and no
ranker can give the next generation better targets than the policy's own.

Usage: python scripts/feedback_headroom.py RUN_DIR [GENERATION ...]   (default: gen1 gen2)
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from restreact.agent.records import read_records
from restreact.rest import read_rankings, stand_in_ranker
from restreact.rest.sft_data import target_index


def headroom(run: Path, generation: str) -> dict[str, collections.Counter]:
  records = read_records(run / generation / "grow" / "trajectories.jsonl")
  rankings = read_rankings(run / generation / "rank" / "rankings.jsonl")
  out: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
  for record in records:
    for index, step in enumerate(record.model_steps()):
      scores = stand_in_ranker.scores(step.input, [c.text for c in step.candidates])
      target = target_index(step, rankings.get((record.key, index)))
      count = out[step.step_type]
      count["steps"] += 1
      count["differ"] += len({c.text for c in step.candidates}) > 1
      count["chosen"] += step.chosen is not None and scores[step.chosen] >= stand_in_ranker.GOOD
      count["target"] += target is not None and scores[target] >= stand_in_ranker.GOOD
      count["best"] += max(scores) >= stand_in_ranker.GOOD
  return out


def main(argv: list[str]) -> None:
  if len(argv) < 2:
    raise SystemExit(__doc__)
  run = Path(argv[1])
  for generation in argv[2:] or ["gen1", "gen2"]:
    print(f"\n{run} {generation}: share of steps whose candidate is good (stand-in rules)\n")
    print("| step type | steps | candidates differ | policy's choice | ranking's target | best candidate |")
    print("|---|---:|---:|---:|---:|---:|")
    for step_type, c in sorted(headroom(run, generation).items()):
      n = c["steps"]
      print(f"| {step_type} | {n} | {c['differ'] / n:.0%} | {c['chosen'] / n:.0%} | {c['target'] / n:.0%} | "
            f"{c['best'] / n:.0%} |")


if __name__ == "__main__":
  main(sys.argv)
