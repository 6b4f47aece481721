"""SFT mixtures: the ranked steps of several generations' trajectories, deduplicated, weighted, written once.

Selection: a failed trajectory (no final answer) gives no examples unless `include_failed`; with
`drop_ungrounded`, neither does one whose final answer appears in none of the search results it saw
(the answer did not come from its observations); with a `supported` verdict (the ranker's judgement of
the whole trajectory), neither does one it judges unsupported, or, with `target_ok` (the ranker's judgement
of one candidate), such a trajectory gives its steps up to its first step whose target the ranking changed to
one the ranker accepts (its correction of the policy's mistake) and none after it (they continue from a state
the ranker would not have chosen). It is dropped when the ranking corrected nothing, or when an earlier
target is one the ranker does not accept: a ranking among equally bad candidates changes the target without
correcting anything. The card counts what was dropped, what was cut, and why.

Mixture rule (`build_mixture`):
  1. Examples are read from every source in the order given (within a source, by trajectory key, so the
     order in which a rollout finished its trajectories does not matter), and deduplicated by (prompt, target):
     the first occurrence is kept (earlier sources win), later ones are counted as duplicates.
  2. Without `size` (the default), every source gives all its unique examples times its weight: weight 1
     keeps each once, 2 twice, 0.5 a random half. No source is cut below its unique count unless its weight
     asks for it.
  3. With `size`, the weights are shares: source i gets n_i = floor(size * w_i / sum(w)) examples, and the
     examples still missing go one each to the sources with the largest fractional remainders (ties: earlier
     source), so the n_i sum to `size` (largest-remainder rounding). A source without examples (a generation
     whose trajectories all failed) gets no share.
  4. A source asked for n examples gives a uniform sample of n of its unique ones without replacement when
     it has enough; otherwise each of its k examples n // k times plus a sample of n % k (`upsampled`).
  5. Sampling uses `random.Random(f"{seed}:{source name}")` per source and the combined list is shuffled with
     `random.Random(f"{seed}:shuffle")`: the same inputs and seed give the same file.
The card shows each source's share of the mixture and its repetition factor (taken / unique).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import os
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from restreact.agent.records import ModelStep, ToolStep, TrajectoryRecord, read_records
from restreact.files import write_atomic
from restreact.jsonl import check_fields, json_lines
from restreact.rest.card import MixtureCard, SourceCard, merge_counts, read_card
from restreact.rest.sft_data import STATUSES, SFTExample, read_rankings, step_examples, target_index

# What `mixture.unsupported` does with a trajectory the ranker judges unsupported (see the module docstring).
UNSUPPORTED = ("keep", "drop", "cut")
# What "cut" keeps, as the mixture stage records it (a mixture cut by another rule is redone, not reused).
CUT_RULE = "steps up to the first correction to a target the ranker accepts, every earlier target accepted"

WEIGHT_RULE = {
    "repeat": "each source gives its unique examples x weight (1 = each once; never fewer unless the weight is < 1)",
    "share": "weight = share of a mixture of `size` examples; largest-remainder rounding; sampled without "
             "replacement unless a source has fewer examples than its share n (then each of its k examples "
             "repeats n // k times, plus n % k drawn without replacement)",
}


@dataclasses.dataclass(frozen=True)
class MixtureSource:
  """One input of a mixture: a trajectory file, its rankings (None: use chosen candidates), weight, generation."""

  name: str
  trajectories_path: str | os.PathLike
  rankings_path: str | os.PathLike | None
  weight: float
  generation: int
  include_failed: bool = False
  drop_ungrounded: bool = False
  supported: Callable[[TrajectoryRecord], bool] | None = None  # the ranker's trajectory verdict; False: drop
  # The ranker's judgement of candidate i of a step; set: an unsupported trajectory is cut, not dropped (above).
  target_ok: Callable[[ModelStep, int], bool] | None = None


def _words(text: str) -> str:
  return " " + " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split()) + " "


def answer_grounded(record: TrajectoryRecord) -> bool:
  """Whether the final answer appears (as whole words) in a search result the trajectory was shown."""
  answer = _words(record.final_answer or "")
  if not answer.strip():
    return False
  return any(answer in _words(f"{r.link_text} {r.snippet}") for s in record.steps if isinstance(s, ToolStep)
             for r in s.results)


def _drop_reason(record: TrajectoryRecord, source: MixtureSource) -> str | None:
  if record.status == "failed" and not source.include_failed:
    return "failed"
  if source.drop_ungrounded and record.status == "done" and not answer_grounded(record):
    return "ungrounded"
  if source.supported is not None and record.status == "done" and not source.supported(record):
    return "unsupported"
  return None


def _load_source(source: MixtureSource) -> tuple[list[SFTExample], dict]:
  """A source's examples in key order, and its selection, ranking and lineage counts."""
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
  stats = dict(used=0, cut=0, dropped=collections.Counter({"failed": 0, "ungrounded": 0, "unsupported": 0}),
               model_steps=0, without_target=0, candidates=0, fallbacks=0, retargeted=0,
               statuses=collections.Counter({s: 0 for s in (*STATUSES, "unranked")}),
               parents=collections.Counter())
  examples = []
  for record in records:
    steps = record.model_steps()
    reason = _drop_reason(record, source)
    if reason == "unsupported" and source.target_ok is not None:
      corrected = first_correction(steps, [rankings.get((record.key, i)) for i in range(len(steps))],
                                   source.target_ok)
      if corrected is not None:
        reason, steps = None, steps[:corrected + 1]
        stats["cut"] += 1
    if reason:
      stats["dropped"][reason] += 1
      continue
    stats["used"] += 1
    stats["parents"][f"{record.lineage.model}@{record.lineage.generation}"] += 1
    try:
      got = step_examples(record, rankings, include_failed=True, source=source.name, generation=source.generation,
                          steps=len(steps))
    except ValueError as e:
      raise ValueError(f"{source.rankings_path}: {e}") from None
    stats["model_steps"] += len(steps)
    stats["without_target"] += len(steps) - len(got)
    for index, step in enumerate(steps):
      stats["candidates"] += len(step.candidates)
      ranking = rankings.get((record.key, index))
      stats["statuses"][ranking.status if ranking else "unranked"] += 1
      stats["fallbacks"] += bool(ranking and ranking.fallback)
      stats["retargeted"] += _retargeted(step, ranking)
    examples.extend(got)
  return examples, stats


def _retargeted(step, ranking) -> bool:
  """Whether the ranking's best candidate differs from the one the policy chose (the ranker corrected it)."""
  target = target_index(step, ranking)
  return target is not None and step.chosen is not None and \
      step.candidates[target].text != step.candidates[step.chosen].text


def first_correction(steps, rankings, target_ok=lambda step, index: True) -> int | None:
  """The index of the first of `steps` (with their rankings; None: unranked) whose target the ranking changed to
  one `target_ok(step, index)` accepts; None when there is none, or when a target before it is not accepted."""
  for i, (step, ranking) in enumerate(zip(steps, rankings)):
    target = target_index(step, ranking)
    if target is None or not target_ok(step, target):
      return None
    if _retargeted(step, ranking):
      return i
  return None


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


def _check_args(sources: Sequence[MixtureSource], size) -> None:
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


def build_mixture(sources: Sequence[MixtureSource], out_path: str | os.PathLike, *, seed: int,
                  size: int | None = None, token_count: Callable[[SFTExample], int] | None = None,
                  seq_lens: Mapping[str, int] | None = None) -> MixtureCard:
  """Build, shuffle and write (atomically) a deduplicated mixture; see the module docstring for the rule.

  With `token_count` (example -> tokens of one training row: BOS, prompt, target, EOS), the card records the
  longest example and, for each `seq_lens` entry (say {"l": 384}), how many examples exceed that row length.
  """
  _check_args(sources, size)
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
    raise ValueError(f"no source has examples: {', '.join(s.name for s in sources)} (did every trajectory fail?)")
  if size is None:
    parts = [math.floor(s.weight * len(kept) + 0.5) for s, kept in zip(sources, unique)]
  else:
    parts = allocate(size, [s.weight if kept else 0.0 for s, kept in zip(sources, unique)])
  mixture, taken = [], []
  for s, kept, n in zip(sources, unique, parts):
    chosen = _sample(kept, n, random.Random(f"{seed}:{s.name}")) if kept else []
    taken.append(chosen)
    mixture.extend(chosen)
  random.Random(f"{seed}:shuffle").shuffle(mixture)
  text = "".join(e.to_json() + "\n" for e in mixture)
  write_atomic(out_path, text)

  lengths = [token_count(e) for e in mixture] if token_count is not None else []
  truncated = {name: sum(n > limit for n in lengths) for name, limit in (seq_lens or {}).items()} if lengths else {}
  cards = tuple(SourceCard(
      s.name, str(s.trajectories_path), None if s.rankings_path is None else str(s.rankings_path), float(s.weight),
      s.generation, st["used"], sum(st["dropped"].values()), dict(st["dropped"]), st["model_steps"],
      st["without_target"], st["candidates"], dict(st["statuses"]), st["fallbacks"],
      dict(sorted(st["parents"].items())),
      st["examples"], st["duplicates"], len(kept), len(chosen) / len(mixture) if mixture else 0.0,
      len(chosen) / len(kept) if kept else 0.0, len(chosen), len(chosen) > len(kept),
      dict(sorted(collections.Counter(e.step_type for e in chosen).items())), st["retargeted"], st["cut"])
      for s, st, kept, chosen in zip(sources, stats, unique, taken))
  steps = sum(c.model_steps for c in cards)
  card = MixtureCard(
      out_path.name, hashlib.sha256(text.encode("utf-8")).hexdigest(), seed, len(mixture),
      WEIGHT_RULE["repeat" if size is None else "share"], len(mixture), total_unique,
      sum(c.duplicates for c in cards), sum(c.trajectories_used for c in cards),
      sum(c.trajectories_skipped for c in cards), sum(c.candidates for c in cards) / steps if steps else 0.0,
      merge_counts((c.ranking_statuses for c in cards), (*STATUSES, "unranked")), sum(c.fallbacks for c in cards),
      merge_counts(c.step_types for c in cards), merge_counts(c.parents for c in cards),
      tuple(sorted({s.generation for s in sources})), cards, max(lengths, default=0), truncated,
      sum(c.retargeted for c in cards))
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
