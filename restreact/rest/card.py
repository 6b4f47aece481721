"""The card of an SFT mixture: what each source gave, how its steps were ranked, and where it came from."""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from restreact.files import write_atomic


@dataclasses.dataclass(frozen=True)
class SourceCard:
  """What one source contributed, and how its steps were ranked."""

  name: str
  trajectories_path: str
  rankings_path: str | None
  weight: float
  generation: int
  trajectories_used: int
  trajectories_skipped: int  # dropped: failed (unless include_failed), ungrounded, unsupported (see `dropped`)
  dropped: dict[str, int]  # why: "failed", "ungrounded", "unsupported"
  model_steps: int  # in the used trajectories
  steps_without_target: int  # no candidate parsed
  candidates: int  # summed over model_steps
  ranking_statuses: dict[str, int]  # ok/partial/invalid/skipped, and "unranked": steps with no ranking
  fallbacks: int  # steps whose order is the perplexity fallback
  parents: dict[str, int]  # "model@generation" from the records' lineage -> trajectories
  examples: int  # before deduplication
  duplicates: int  # removed: the same (prompt, target) came earlier
  unique: int
  share: float  # taken / examples in the mixture
  repetition: float  # taken / unique: 1 = every unique example once
  taken: int  # examples in the mixture
  upsampled: bool  # taken > unique: examples repeat
  step_types: dict[str, int]  # in the mixture
  retargeted: int = 0  # steps whose target (the ranking's best) is not the candidate the policy chose
  cut: int = 0  # unsupported trajectories used up to the ranker's first accepted correction (in trajectories_used)


@dataclasses.dataclass(frozen=True)
class MixtureCard:
  """A mixture's summary, written next to it as card.json and card.md."""

  mixture: str  # file name
  sha256: str
  seed: int
  size: int
  weight_rule: str
  examples: int
  unique_examples: int
  duplicates_removed: int
  trajectories_used: int
  trajectories_skipped: int
  mean_candidates_per_step: float
  ranking_statuses: dict[str, int]
  fallbacks: int
  step_types: dict[str, int]
  parents: dict[str, int]
  generations: tuple[int, ...]
  sources: tuple[SourceCard, ...]
  max_tokens: int = 0  # the longest example as a training row (BOS, prompt, target, EOS); 0: not counted
  truncated: dict[str, int] = dataclasses.field(default_factory=dict)  # per row length ("l": seq_len of L)
  retargeted: int = 0  # summed over sources

  def to_dict(self) -> dict:
    """Plain JSON-able data."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, raw: dict) -> MixtureCard:
    """The card `to_dict` gave (tuples restored)."""
    return cls(**{**raw, "generations": tuple(raw["generations"]),
                  "sources": tuple(SourceCard(**s) for s in raw["sources"])})

  def to_markdown(self) -> str:
    """A short human summary with one table per view."""
    rows = ["| source | gen | weight | trajectories used | dropped | steps | mean candidates | fallbacks "
            "| examples | duplicates | unique | taken | share | repetition |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in self.sources:
      mean = s.candidates / s.model_steps if s.model_steps else 0.0
      dropped = ", ".join(f"{v} {k}" for k, v in s.dropped.items() if v) or "0"
      used = f"{s.trajectories_used} ({s.cut} cut)" if s.cut else s.trajectories_used
      rows.append(f"| {s.name} | {s.generation} | {s.weight:g} | {used} | {dropped} "
                  f"| {s.model_steps} | {mean:.2f} | {s.fallbacks} | {s.examples} | {s.duplicates} | {s.unique} "
                  f"| {s.taken} | {s.share:.1%} | {s.repetition:.2f}x |")
    types = ["| step type | examples |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.step_types.items()]
    ranks = ["| ranking status | steps |", "|---|---|"] + [f"| {k} | {v} |" for k, v in self.ranking_statuses.items()]
    parents = ["| parent model@generation | trajectories |", "|---|---|"] + [
        f"| {k} | {v} |" for k, v in self.parents.items()]
    head = [f"# Mixture `{self.mixture}`", "",
            f"{self.examples} examples ({self.unique_examples} unique after removing {self.duplicates_removed} "
            f"duplicates), seed {self.seed}, from {self.trajectories_used} trajectories "
            f"({self.trajectories_skipped} skipped); {self.mean_candidates_per_step:.2f} candidates per step; "
            f"{self.fallbacks} steps fell back to perplexity order; the ranking changed the target of "
            f"{self.retargeted} steps (its best is not the policy's choice)" + (
                f"; {cut} unsupported trajectories give their steps up to the ranker's first correction only"
                if (cut := sum(s.cut for s in self.sources)) else "") + ".", "", f"Weights: {self.weight_rule}.",
            f"SHA-256: `{self.sha256}`."]
    if self.max_tokens:
      cut = ", ".join(f"{v} longer than the {k.upper()} rows" for k, v in self.truncated.items())
      head += ["", f"Longest example: {self.max_tokens} tokens" + (f"; {cut}." if cut else ".")]
    for s in self.sources:  # a source that gave nothing must not read as data
      if s.trajectories_used == 0:
        head += ["", f"**{s.name} added no data**: none of its {s.trajectories_skipped} trajectories was kept."]
    return "\n".join(head + [""] + rows + [""] + types + [""] + ranks + [""] + parents) + "\n"

  def write(self, folder: Path) -> None:
    """card.json and card.md in `folder` (atomic each)."""
    write_atomic(folder / "card.json", json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
    write_atomic(folder / "card.md", self.to_markdown())


def merge_counts(counts: Iterable[Mapping[str, int]], keys: Sequence[str] = ()) -> dict[str, int]:
  """Summed counts; `keys` come first (zeros kept), the rest sorted."""
  out = collections.Counter()
  for c in counts:
    out.update(c)
  return {**{k: out[k] for k in keys}, **{k: out[k] for k in sorted(out) if k not in keys}}


def read_card(path: str | os.PathLike) -> MixtureCard:
  """The card in `path` (card.json, or the folder holding it)."""
  path = Path(path)
  path = path / "card.json" if path.is_dir() else path
  try:
    return MixtureCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
  except (KeyError, TypeError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: not a mixture card ({type(e).__name__}: {e})") from None
