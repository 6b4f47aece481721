"""Supervised fine-tuning data: ranked steps of trajectories become per-step examples.

Each model step of a trajectory gives one `SFTExample`: the zero-shot prompt the step saw (fine-tuned
models are prompted without exemplars) and, as the target, the top-ranked candidate that parsed (the
ranking stage's `StepRanking`, even when that order is the perplexity fallback) or, for a step with
no ranking, the candidate the policy chose. Candidates that failed to parse are never targets.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from restreact.agent.prompts import step_preamble
from restreact.agent.records import ModelStep, TrajectoryRecord
from restreact.files import write_atomic
from restreact.jsonl import check_fields, json_lines
from restreact.rest.rank import RankResult

STATUSES = ("ok", "partial", "invalid", "skipped", "perplexity")


# ---------------------------------------------------------------------------------------------- rankings

@dataclasses.dataclass(frozen=True)
class StepRanking:
  """A ranked step on disk: `step` indexes `record.model_steps()`; `order` is original indices, best first."""

  trajectory_key: str
  step: int
  order: tuple[int, ...]
  status: str
  fallback: bool

  def __post_init__(self):
    if self.status not in STATUSES:
      raise ValueError(f"ranking status {self.status!r} is not one of {STATUSES}")
    if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 0:
      raise ValueError(f"ranking step index must be a non-negative int, got {self.step!r}")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in self.order):
      raise ValueError(f"ranking order must hold ints, got {list(self.order)!r}")
    if not isinstance(self.fallback, bool):
      raise ValueError(f"ranking fallback must be a bool, got {self.fallback!r}")

  @classmethod
  def from_result(cls, trajectory_key: str, step: int, result: RankResult) -> StepRanking:
    """The on-disk form of `rank_steps`' result for model step `step` of trajectory `trajectory_key`."""
    return cls(trajectory_key, step, tuple(result.order), result.status, result.fallback)

  @property
  def key(self) -> tuple[str, int]:
    return (self.trajectory_key, self.step)


def write_rankings(path: str | os.PathLike, rankings: Iterable[StepRanking]) -> None:
  """Write rankings as JSONL (atomic); two rankings for the same step are an error."""
  seen, lines = set(), []
  for r in rankings:
    if r.key in seen:
      raise ValueError(f"two rankings for step {r.step} of trajectory {r.trajectory_key!r}")
    seen.add(r.key)
    lines.append(json.dumps({**dataclasses.asdict(r), "order": list(r.order)}, ensure_ascii=False, sort_keys=True))
  write_atomic(Path(path), "".join(line + "\n" for line in lines))


def read_rankings(path: str | os.PathLike) -> dict[tuple[str, int], StepRanking]:
  """Rankings keyed by (trajectory key, model-step index); errors name the file and line."""
  path, out = Path(path), {}
  for number, raw in json_lines(path):
    where = f"{path}:{number}"
    try:
      raw = check_fields(StepRanking, raw, where)
      if not isinstance(raw["order"], list):
        raise ValueError(f"order must be a list, got {raw['order']!r}")
      ranking = StepRanking(raw["trajectory_key"], raw["step"], tuple(raw["order"]), raw["status"], raw["fallback"])
    except ValueError as e:
      raise ValueError(e if str(e).startswith(where) else f"{where}: {e}") from None
    if ranking.key in out:
      raise ValueError(f"{where}: a second ranking for step {ranking.step} of {ranking.trajectory_key!r}")
    out[ranking.key] = ranking
  return out


# ---------------------------------------------------------------------------------------------- examples

@dataclasses.dataclass(frozen=True)
class SFTExample:
  """One fine-tuning example: the zero-shot prompt of a step and the candidate text to learn."""

  prompt: str
  target: str
  step_type: str
  source: str
  trajectory_key: str
  generation: int

  def to_json(self) -> str:
    """One JSON line."""
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)


def step_prompt(step: ModelStep, *, few_shot: bool = False) -> str:
  """The prompt a model step is trained on (what `StepMachine.next_request` sends, zero-shot by default)."""
  return step_preamble(step.step_type, few_shot=few_shot) + step.input + "\n"


def target_index(step: ModelStep, ranking: StepRanking | None = None) -> int | None:
  """The candidate to learn: the first parsed one in the ranking's order, else the chosen one; None if none parsed."""
  if ranking is None:
    ok = step.chosen is not None and step.candidates[step.chosen].action is not None
    return step.chosen if ok else None
  if sorted(ranking.order) != list(range(len(step.candidates))):
    raise ValueError(f"ranking for step {ranking.step} of {ranking.trajectory_key!r} orders {list(ranking.order)} "
                     f"but the step has {len(step.candidates)} candidates (rankings from another trajectory file?)")
  return next((i for i in ranking.order if step.candidates[i].action is not None), None)


def step_examples(record: TrajectoryRecord, rankings: Mapping[tuple[str, int], StepRanking] | None = None, *,
                  few_shot: bool = False, include_failed: bool = False, source: str = "",
                  generation: int | None = None, steps: int | None = None) -> list[SFTExample]:
  """One example per model step that has a parsed target; failed trajectories give none unless include_failed.

  `generation` labels the examples (default: the record's lineage generation); `steps`: only the first this many
  model steps give examples (None: all).
  """
  if record.status == "failed" and not include_failed:
    return []
  rankings = rankings or {}
  generation = record.lineage.generation if generation is None else generation
  out = []
  for index, step in enumerate(record.model_steps()[:steps]):
    target = target_index(step, rankings.get((record.key, index)))
    if target is not None:
      out.append(SFTExample(step_prompt(step, few_shot=few_shot), step.candidates[target].text, step.step_type,
                            source, record.key, generation))
  return out
