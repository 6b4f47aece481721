"""Requests and their completions, as the engine hands them out."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Completion:
  """One sample: new text (cut before a stop string), new token ids, their log-probs, and why it ended."""

  text: str
  tokens: list[int]
  logprobs: list[float]
  finish_reason: str  # "stop" (a stop string), "eos", "length" or "cancelled"

  @property
  def mean_logprob(self) -> float:
    """Average token log-prob; minus its value is the log-perplexity used to rank candidates."""
    return float(np.mean(self.logprobs)) if self.logprobs else 0.0


@dataclasses.dataclass
class _Sample:
  tokens: list[int] = dataclasses.field(default_factory=list)
  logprobs: list[float] = dataclasses.field(default_factory=list)
  checked: int = 0  # leading tokens known to hold no stop string
  slot: int | None = None
  result: Completion | None = None


@dataclasses.dataclass
class Request:
  """A prompt waiting for, or being served by, `n` slots."""

  id: int
  prompt: list[int]
  n: int
  max_new_tokens: int
  temperature: float
  top_k: int
  top_p: float
  stop: tuple[str, ...]
  key: np.ndarray  # PRNG key data; sample i uses fold_in(key, i)
  samples: list[_Sample]
  blocks: list[int] = dataclasses.field(default_factory=list)  # prefix-cache blocks it references

  @property
  def done(self) -> bool:
    return all(s.result is not None for s in self.samples)

  def completions(self) -> list[Completion]:
    return [s.result for s in self.samples]
