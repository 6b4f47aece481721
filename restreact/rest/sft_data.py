"""Supervised fine-tuning data: trajectories become per-step examples, sources become one weighted mixture.

Each model step of a trajectory gives one `SFTExample`: the zero-shot prompt the step saw (fine-tuned
models are prompted without exemplars) and, as the target, the top-ranked candidate that parsed (the
ranking stage's `StepRanking`, even when that order is the perplexity fallback) or, for a step with
no ranking, the candidate the policy chose. Candidates that failed to parse are never targets.

Mixture rule (`build_mixture`): a source's weight is its share of the final mixture (among the sources
that have examples: one whose trajectories all failed gets no share, and the card shows it took none).
  1. Examples are read from every source in the order given (within a source, by trajectory key, so the
     order in which a rollout finished its trajectories does not matter), and deduplicated by (prompt, target):
     the first occurrence is kept (earlier sources win), later ones are counted as duplicates.
  2. The mixture has `size` examples; without `size` it has as many as there are unique examples.
  3. Source i gets n_i = floor(size * w_i / sum(w)) examples, and the examples still missing to reach
     `size` go one each to the sources with the largest fractional remainders (ties: earlier source),
     so the n_i sum to `size` exactly (largest-remainder rounding).
  4. A source with at least n_i unique examples gives a uniform sample of n_i of them without
     replacement; a source with fewer is upsampled: each of its examples n_i // len times, plus a
     sample of n_i % len of them without replacement (the card marks it `upsampled`).
  5. Sampling uses `random.Random(f"{seed}:{source name}")` per source and the combined list is
     shuffled with `random.Random(f"{seed}:shuffle")`: the same inputs and seed give the same file.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import math
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from restreact.agent.prompts import preamble
from restreact.agent.records import ModelStep, TrajectoryRecord, read_records
from restreact.rest.card import MixtureCard, SourceCard, merge_counts, read_card
from restreact.rest.jsonl import check_fields, json_lines, write_atomic
from restreact.rest.rank import RankResult

STATUSES = ("ok", "partial", "invalid", "skipped")
WEIGHT_RULE = ("weight = share of the final mixture; size defaults to the number of unique examples; "
               "largest-remainder rounding; sampled without replacement unless a source has fewer examples "
               "than its share n (then each of its k examples repeats n // k times, plus n % k drawn without "
               "replacement)")


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
  """The prompt a model step is trained on (what `Trajectory.next_request` sends, zero-shot by default)."""
  return preamble(step.step_type, few_shot=few_shot) + step.input + "\n"


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
                  generation: int | None = None) -> list[SFTExample]:
  """One example per model step that has a parsed target; failed trajectories give none unless include_failed.

  `generation` labels the examples (default: the record's lineage generation).
  """
  if record.status == "failed" and not include_failed:
    return []
  rankings = rankings or {}
  generation = record.lineage.generation if generation is None else generation
  out = []
  for index, step in enumerate(record.model_steps()):
    target = target_index(step, rankings.get((record.key, index)))
    if target is not None:
      out.append(SFTExample(step_prompt(step, few_shot=few_shot), step.candidates[target].text, step.step_type,
                            source, record.key, generation))
  return out


# ---------------------------------------------------------------------------------------------- mixtures

@dataclasses.dataclass(frozen=True)
class MixtureSource:
  """One input of a mixture: a trajectory file, its rankings (None: use chosen candidates), weight, generation."""

  name: str
  trajectories_path: str | os.PathLike
  rankings_path: str | os.PathLike | None
  weight: float
  generation: int
  include_failed: bool = False


def _load_source(source: MixtureSource) -> tuple[list[SFTExample], dict]:
  """A source's examples in file order, and its ranking/lineage counts."""
  path = Path(source.trajectories_path)
  if not path.is_file():
    raise FileNotFoundError(f"source {source.name!r}: trajectory file {path} does not exist")
  rankings = {} if source.rankings_path is None else read_rankings(source.rankings_path)
  # Key order, not file order: a rollout appends trajectories as they finish, which varies from run to run.
  records = sorted(read_records(path), key=lambda r: r.key)
  by_key = {}
  for record in records:
    if record.key in by_key:
      raise ValueError(f"{path}: trajectory {record.key!r} appears twice")
    by_key[record.key] = record
  for key, step in rankings:  # a ranking that points nowhere means the files do not belong together
    if key not in by_key or step >= len(by_key[key].model_steps()):
      raise ValueError(f"{source.rankings_path}: ranking for step {step} of {key!r} matches no model step in {path}")
  stats = dict(used=0, skipped=0, model_steps=0, without_target=0, candidates=0, fallbacks=0,
               statuses=collections.Counter({s: 0 for s in (*STATUSES, "unranked")}), parents=collections.Counter())
  examples = []
  for record in records:
    if record.status == "failed" and not source.include_failed:
      stats["skipped"] += 1
      continue
    stats["used"] += 1
    stats["parents"][f"{record.lineage.model}@{record.lineage.generation}"] += 1
    try:
      got = step_examples(record, rankings, include_failed=True, source=source.name, generation=source.generation)
    except ValueError as e:
      raise ValueError(f"{source.rankings_path}: {e}") from None
    steps = record.model_steps()
    stats["model_steps"] += len(steps)
    stats["without_target"] += len(steps) - len(got)
    for index, step in enumerate(steps):
      stats["candidates"] += len(step.candidates)
      ranking = rankings.get((record.key, index))
      stats["statuses"][ranking.status if ranking else "unranked"] += 1
      stats["fallbacks"] += bool(ranking and ranking.fallback)
    examples.extend(got)
  return examples, stats


def allocate(size: int, weights: Sequence[float]) -> list[int]:
  """Split `size` by weight with largest-remainder rounding (ties: earlier first); the parts sum to `size`."""
  total = sum(weights)
  exact = [size * w / total for w in weights]
  parts = [math.floor(x) for x in exact]
  by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
  for i in by_remainder[:size - sum(parts)]:
    parts[i] += 1
  return parts


def _sample(examples: list[SFTExample], n: int, rng: random.Random) -> list[SFTExample]:
  """n examples: without replacement if there are enough, else whole repeats plus a random remainder."""
  if n <= len(examples):
    return rng.sample(examples, n)
  repeats, rest = divmod(n, len(examples))
  return examples * repeats + rng.sample(examples, rest)


def build_mixture(sources: Sequence[MixtureSource], out_path: str | os.PathLike, *, seed: int,
                  size: int | None = None) -> MixtureCard:
  """Build, shuffle and write (atomically) a weighted, deduplicated mixture; see the module docstring for the rule."""
  if not sources:
    raise ValueError("a mixture needs at least one source")
  names = [s.name for s in sources]
  if len(set(names)) != len(names):
    raise ValueError(f"source names must be distinct, got {names}")
  for s in sources:
    if isinstance(s.weight, bool) or not isinstance(s.weight, (int, float)) or not math.isfinite(s.weight) \
        or s.weight <= 0:
      raise ValueError(f"source {s.name!r}: weight must be a positive number, got {s.weight!r}")
  if size is not None and (not isinstance(size, int) or size <= 0):
    raise ValueError(f"size must be a positive int, got {size!r}")
  out_path = Path(out_path)
  card_json = out_path.parent / "card.json"
  if card_json.is_file() and read_card(card_json).mixture != out_path.name:
    raise ValueError(f"{card_json} describes another mixture; write each mixture to its own folder")

  seen, unique, stats = set(), [], []
  for s in sources:
    examples, stat = _load_source(s)
    kept = []
    for e in examples:
      if (e.prompt, e.target) not in seen:
        seen.add((e.prompt, e.target))
        kept.append(e)
    stat.update(examples=len(examples), duplicates=len(examples) - len(kept))
    unique.append(kept)
    stats.append(stat)
  total_unique = sum(map(len, unique))
  if not total_unique:
    raise ValueError(f"no source has examples: {', '.join(names)} (did every trajectory fail?)")
  size = total_unique if size is None else size
  # A source without examples (a generation whose trajectories all failed) gets no share; the others split it.
  parts = allocate(size, [s.weight if kept else 0.0 for s, kept in zip(sources, unique)])
  mixture, taken = [], []
  for s, kept, n in zip(sources, unique, parts):
    chosen = _sample(kept, n, random.Random(f"{seed}:{s.name}"))
    taken.append(chosen)
    mixture.extend(chosen)
  random.Random(f"{seed}:shuffle").shuffle(mixture)
  text = "".join(e.to_json() + "\n" for e in mixture)
  write_atomic(out_path, text)

  weight_sum = sum(s.weight for s in sources)
  cards = tuple(SourceCard(
      s.name, str(s.trajectories_path), None if s.rankings_path is None else str(s.rankings_path), float(s.weight),
      s.generation, st["used"], st["skipped"], st["model_steps"], st["without_target"], st["candidates"],
      dict(st["statuses"]), st["fallbacks"], dict(sorted(st["parents"].items())), st["examples"], st["duplicates"],
      len(kept), s.weight / weight_sum, len(chosen), len(chosen) > len(kept),
      dict(sorted(collections.Counter(e.step_type for e in chosen).items())))
      for s, st, kept, chosen in zip(sources, stats, unique, taken))
  steps = sum(c.model_steps for c in cards)
  card = MixtureCard(
      out_path.name, hashlib.sha256(text.encode("utf-8")).hexdigest(), seed, size, WEIGHT_RULE, len(mixture),
      total_unique, sum(c.duplicates for c in cards), sum(c.trajectories_used for c in cards),
      sum(c.trajectories_skipped for c in cards), sum(c.candidates for c in cards) / steps if steps else 0.0,
      merge_counts((c.ranking_statuses for c in cards), (*STATUSES, "unranked")), sum(c.fallbacks for c in cards),
      merge_counts(c.step_types for c in cards), merge_counts(c.parents for c in cards),
      tuple(sorted({s.generation for s in sources})), cards)
  card.write(out_path.parent)
  return card


def read_mixture(path: str | os.PathLike) -> list[SFTExample]:
  """The examples of a mixture file, in order; errors name the file and line."""
  path, out = Path(path), []
  for number, raw in json_lines(path):
    where = f"{path}:{number}"
    example = SFTExample(**check_fields(SFTExample, raw, where))
    for f in dataclasses.fields(SFTExample):
      want = int if f.name == "generation" else str
      value = getattr(example, f.name)
      if not isinstance(value, want) or isinstance(value, bool):
        raise ValueError(f"{where}: {f.name} must be {want.__name__}, got {value!r}")
    out.append(example)
  return out
