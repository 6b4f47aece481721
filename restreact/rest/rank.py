"""Rank a step's sampled candidates with an LLM (AI feedback), template `ranking.txt`.

The ranker sees the step's input and the candidates in a shuffled order (so its position bias
averages out over steps) and answers `Explanation: ...`, `Answer: #X`, `Ranking: #X > #Y > ...`.
Rankings are mapped back to the original candidate indices. When the ranker's reply is partial or
unreadable the step falls back to perplexity order (highest mean log-prob first) and says so, so
callers can count fallbacks. Candidates with an empty element always rank last.

Without a ranker (`generate=None`, the no-feedback ablation) every step keeps perplexity order, with
status "perplexity": the policy's own choice becomes the target, as in self-distillation.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np

from restreact.prompts import END_MARKER, preamble

TEMPLATE = "ranking"
PERPLEXITY = "perplexity"  # rank.ranker for the no-feedback ablation: no ranker, perplexity order
Generate = Callable[[list[str]], list[str]]
Status = Literal["ok", "partial", "invalid"]

_ANSWER = re.compile(r"^\s*Answer\s*:\s*(.*)$", re.MULTILINE | re.IGNORECASE)
_RANKING = re.compile(r"^\s*Ranking\s*:\s*(.*)$", re.MULTILINE | re.IGNORECASE)
_ID = re.compile(r"#?\s*(\d+)")


class Rankable(Protocol):
  """What the ranker needs from a sampled candidate."""

  text: str
  mean_logprob: float
  parsed: Any  # the parsed action record, or None when the candidate failed to parse


@dataclasses.dataclass(frozen=True)
class Ranking:
  """The ranker's reply read back: `best` and `order` index the presented (shuffled) list, 0-based."""

  explanation: str
  best: int | None
  order: tuple[int, ...]
  status: Status


@dataclasses.dataclass(frozen=True)
class RankResult:
  """A step's final order over the original candidates (best first) and how it was reached.

  status: the ranker's reply status; "skipped" when fewer than two candidates were worth asking about;
  "perplexity" when no ranker was asked (the no-feedback ablation).
  fallback: True when the order is perplexity order because the reply was partial or invalid.
  """

  order: tuple[int, ...]
  status: Literal["ok", "partial", "invalid", "skipped", "perplexity"]
  fallback: bool
  empty: tuple[int, ...]
  presented: tuple[int, ...] = ()
  ranking: Ranking | None = None
  prompt: str | None = None
  text: str | None = None

  @property
  def best(self) -> int:
    """The original index of the top candidate."""
    return self.order[0]


def shuffled_order(n: int, rng: random.Random | np.random.Generator) -> list[int]:
  """A random permutation of range(n) from a seeded `random.Random` or numpy Generator."""
  if isinstance(rng, np.random.Generator):
    return [int(i) for i in rng.permutation(n)]
  if isinstance(rng, random.Random):
    return rng.sample(range(n), n)
  raise TypeError(f"rng must be random.Random or numpy.random.Generator, got {type(rng).__name__}")


def _shown(text: str) -> str:
  """A candidate as the ranker sees it: without the end marker and anything after it."""
  return text.split(END_MARKER, 1)[0].strip()


def ranking_prompt(step_input: str, candidate_texts: list[str], order: list[int], few_shot: bool = True) -> str:
  """The ranker's prompt: candidate `order[p]` is shown as `#p+1`; the reply continues after `Explanation:`."""
  if sorted(order) != list(range(len(candidate_texts))):
    raise ValueError(f"order {list(order)} is not a permutation of the {len(candidate_texts)} candidates")
  if not candidate_texts:
    raise ValueError("no candidates to rank")
  shown = "\n".join(f"#{p + 1}: {_shown(candidate_texts[i])}" for p, i in enumerate(order))
  return (preamble(TEMPLATE, few_shot=few_shot).rstrip() + "\n\n# STEP INPUT\n" + step_input.strip()
          + "\n\n# CANDIDATES\n" + shown + "\n\n# JUDGEMENT\nExplanation:")


def _ids(field: str, n: int) -> tuple[list[int], bool]:
  """0-based ids named in a `#a > #b > ...` field, and whether every piece was a valid id."""
  ids, clean = [], True
  for piece in field.strip().rstrip(".").split(">"):
    match = _ID.fullmatch(piece.strip())
    if match and 1 <= int(match.group(1)) <= n:
      ids.append(int(match.group(1)) - 1)
    else:
      clean = False
  return ids, clean


def parse_ranking(text: str, n: int) -> Ranking:
  """Read the ranker's reply for `n` presented candidates.

  ok: the Ranking line names every candidate exactly once (and Answer, if given, is its head).
  partial: some candidates are named, but ids are missing, duplicated, out of range, or Answer
  disagrees with the Ranking; `order` keeps the valid ids in their first-seen order.
  invalid: no candidate can be read from the reply.
  """
  if not isinstance(text, str):
    return Ranking("", None, (), "invalid")
  body = text.split(END_MARKER, 1)[0]
  answer_match, ranking_match = _ANSWER.search(body), _RANKING.search(body)
  ends = [m.start() for m in (answer_match, ranking_match) if m]
  explanation = body[:min(ends)] if ends else body
  explanation = re.sub(r"^\s*Explanation\s*:", "", explanation, flags=re.IGNORECASE).strip()
  answer = None
  if answer_match:
    ids, clean = _ids(answer_match.group(1), n)
    answer = ids[0] if clean and len(ids) == 1 else None
  ranked, clean = _ids(ranking_match.group(1), n) if ranking_match else ([], False)
  order = tuple(dict.fromkeys(ranked))  # first occurrence of each id
  if clean and len(ranked) == n and len(order) == n and answer in (None, order[0]):
    return Ranking(explanation, order[0], order, "ok")
  if order or answer is not None:
    best = answer if answer is not None else order[0]
    return Ranking(explanation, best, order or (answer,), "partial")
  return Ranking(explanation, None, (), "invalid")


def has_empty_field(parsed: Any) -> bool:
  """True for a candidate that failed to parse (None) or whose record has an empty string field."""
  if parsed is None:
    return True
  if dataclasses.is_dataclass(parsed):
    values = [getattr(parsed, f.name) for f in dataclasses.fields(parsed)]
  elif isinstance(parsed, Mapping):
    values = list(parsed.values())
  else:
    return False
  return any(isinstance(v, str) and not v.strip() for v in values)


def perplexity_order(candidates: Sequence[Rankable]) -> list[int]:
  """Indices by mean log-prob, highest (lowest perplexity) first; ties and NaNs keep index order."""
  def key(i):
    value = float(candidates[i].mean_logprob)
    return (-value if not math.isnan(value) else math.inf, i)
  return sorted(range(len(candidates)), key=key)


def _empties_last(order: Sequence[int], empty: set[int]) -> tuple[int, ...]:
  return tuple([i for i in order if i not in empty] + [i for i in order if i in empty])


@dataclasses.dataclass
class _Pending:
  candidates: Sequence[Rankable]
  empty: set[int]
  presented: list[int]
  prompt: str | None


def _prepare(step_input: str, candidates: Sequence[Rankable], rng, few_shot: bool) -> _Pending:
  if not candidates:
    raise ValueError("no candidates to rank")
  empty = {i for i, c in enumerate(candidates) if has_empty_field(c.parsed)}
  if len(candidates) - len(empty) < 2:  # nothing for the ranker to decide
    return _Pending(candidates, empty, [], None)
  presented = shuffled_order(len(candidates), rng(step_input) if callable(rng) else rng)
  texts = [c.text for c in candidates]
  return _Pending(candidates, empty, presented, ranking_prompt(step_input, texts, presented, few_shot=few_shot))


def _resolve(pending: _Pending, text: str | None, *, asked: bool = True) -> RankResult:
  fallback_order = perplexity_order(pending.candidates)
  empty = tuple(sorted(pending.empty))
  if pending.prompt is None:
    return RankResult(_empties_last(fallback_order, pending.empty), "skipped", False, empty)
  if not asked:
    return RankResult(_empties_last(fallback_order, pending.empty), "perplexity", False, empty)
  ranking = parse_ranking(text, len(pending.candidates))
  if ranking.status == "ok":
    order = [pending.presented[p] for p in ranking.order]
  else:
    order = fallback_order
  return RankResult(_empties_last(order, pending.empty), ranking.status, ranking.status != "ok", empty,
                    tuple(pending.presented), ranking, pending.prompt, text)


def rank_steps(steps: Sequence[tuple[str, Sequence[Rankable]]], *, generate: Generate | None,
               rng: random.Random | np.random.Generator | Callable[[str], random.Random],
               few_shot: bool = True) -> list[RankResult]:
  """Rank many steps' candidates with one `generate` call (so the engine can batch the prompts).

  `rng` shuffles the candidates: one generator for every step in turn, or (`step_rng`) a function of a step's
  input that gives its own. `generate=None` asks no ranker: every step keeps perplexity order (status
  "perplexity").
  """
  pending = [_prepare(step_input, candidates, rng, few_shot) for step_input, candidates in steps]
  if generate is None:
    return [_resolve(p, None, asked=False) for p in pending]
  prompts = [p.prompt for p in pending if p.prompt is not None]
  texts = list(generate(prompts)) if prompts else []
  if len(texts) != len(prompts):
    raise ValueError(f"generate returned {len(texts)} texts for {len(prompts)} prompts")
  replies = iter(texts)
  replies = [next(replies) if p.prompt is not None else None for p in pending]
  return [_resolve(p, reply) for p, reply in zip(pending, replies)]


def rank_candidates(step_input: str, candidates: Sequence[Rankable], *, generate: Generate,
                    rng: random.Random | np.random.Generator, few_shot: bool = True) -> RankResult:
  """Rank one step's candidates; see `rank_steps`."""
  return rank_steps([(step_input, candidates)], generate=generate, rng=rng, few_shot=few_shot)[0]


def count_statuses(results: Sequence[RankResult]) -> dict[str, int]:
  """How many steps ended ok, partial, invalid, skipped or in plain perplexity order, and how many fell back."""
  counts = collections.Counter(r.status for r in results)
  return {"ok": counts["ok"], "partial": counts["partial"], "invalid": counts["invalid"],
          "skipped": counts["skipped"], "perplexity": counts["perplexity"],
          "fallback": sum(r.fallback for r in results)}


def step_rng(seed: int) -> Callable[[str], random.Random]:
  """A `rank_steps` rng that draws each step's presentation order from `seed` and the step's input alone, so a
  step ranked while growing (`follow_ranker`) is shown in the same order when the rank stage ranks it again."""
  return lambda step_input: random.Random(f"{seed}:{step_input}")


def follow_ranker(generate: Generate, *, seed: int, few_shot: bool = True):
  """A rollout `chooser` that continues each trajectory with the ranker's best parsed candidate (`grow.follow=
  "ranker"`): the feedback also picks which states growth explores. Ranked again afterwards with
  `rng=step_rng(seed)`, every step gets the same order, so the candidate followed is the target (ties included).
  A reply the parser cannot read falls back to perplexity order, as in the rank stage."""
  def chooser(step_input: str, candidates: Sequence[Rankable]) -> int | None:
    result = rank_steps([(step_input, candidates)], generate=generate, rng=step_rng(seed), few_shot=few_shot)[0]
    return next((i for i in result.order if candidates[i].parsed is not None), None)
  return chooser
