"""Per-step examples -> packed, length-bucketed token batches with loss on target tokens only.

An example is `[BOS] prompt target [EOS]` (for a chat model `[BOS] <user turn> target <end_of_turn>`, see
`encode`); a row position predicts the next token, and only predictions of target tokens (and the end token)
carry loss weight. Examples are packed first-fit into rows of a bucket length, each with its own segment id
and positions from 0, so no example sees another. Too-long examples lose prompt tokens from the left, never
target tokens; an example whose target alone does not fit is dropped. Both are counted.

Not grain: its packers pack to one fixed length and cut any feature that is too long, while here the
prompt is cut from the left only, rows come in several lengths, and every process must agree on the
batch schedule though it reads only its own share of the examples. That plan is a few lines of
numpy over token lengths and is reproducible from a seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from restreact.models import Tokenizer
from restreact.models.chat import encode_prompt, head_length


@dataclasses.dataclass(frozen=True)
class Example:
  """One SFT example: a step's rendered prompt and the chosen continuation."""

  prompt: str
  target: str

  def __post_init__(self):
    if not isinstance(self.prompt, str) or not isinstance(self.target, str):
      raise TypeError(f"Example prompt and target must be str, got {type(self.prompt).__name__} "
                      f"and {type(self.target).__name__}")
    if not self.target:
      raise ValueError("Example target is empty: there would be nothing to learn but EOS")


@dataclasses.dataclass(frozen=True)
class Encoded:
  """Token ids of one example (`[BOS] prompt target [EOS or <end_of_turn>]`) and how many lead tokens carry no loss."""

  tokens: np.ndarray  # int32
  num_prompt: int  # prompt tokens kept after truncation (BOS not included)
  truncated: bool

  @property
  def length(self) -> int:
    """Row positions it takes: every token but the last is an input."""
    return len(self.tokens) - 1


@dataclasses.dataclass(frozen=True)
class EncodeStats:
  """How many examples were kept whole, kept with a shortened prompt, or dropped (target too long)."""

  total: int
  truncated: int
  dropped: int


def encode(tokenizer: Tokenizer, example: Example, max_length: int, *, chat: bool = False) -> Encoded | None:
  """Tokenize one example for rows of `max_length` positions; None when even its target does not fit.

  The prompt's ids are the engine's (`encode_prompt`): with `chat` the prompt is the user turn, the target the
  model's reply, and the row ends with `<end_of_turn>` (where the model's turn ends) instead of EOS.
  """
  prompt = encode_prompt(tokenizer, example.prompt, chat=chat)  # BOS included
  target = tokenizer.encode(example.target)
  end = tokenizer.end_of_turn_id if chat else tokenizer.eos_id
  head = head_length(tokenizer, prompt, chat=chat)  # BOS and the chat opener are never cut
  room = max_length - len(target) - head  # prompt tokens that fit besides the head, target and end token
  if room < 0:
    return None
  body = prompt[head:]
  truncated = len(body) > room
  if truncated:
    body = body[len(body) - room:]  # cut from the left: the end of the prompt is next to the target
  tokens = np.asarray(prompt[:head] + body + target + [end], np.int32)
  return Encoded(tokens, head - 1 + len(body), truncated)


def row_tokens(tokenizer: Tokenizer, example: Example, *, chat: bool = False) -> int:
  """Tokens of an example's whole row (BOS, prompt, target, end token) before any truncation."""
  return len(encode_prompt(tokenizer, example.prompt, chat=chat)) + len(tokenizer.encode(example.target)) + 1


def encode_all(tokenizer: Tokenizer, examples: Sequence[Example], max_length: int, *,
               chat: bool = False) -> tuple[list[Encoded], EncodeStats]:
  """Tokenize examples, dropping those whose target cannot fit, and count truncations."""
  kept, truncated, dropped = [], 0, 0
  for ex in examples:
    if not isinstance(ex, Example):
      raise TypeError(f"expected restreact.train.Example, got {type(ex).__name__}")
    enc = encode(tokenizer, ex, max_length, chat=chat)
    if enc is None:
      dropped += 1
    else:
      kept.append(enc)
      truncated += enc.truncated
  return kept, EncodeStats(len(examples), truncated, dropped)


@dataclasses.dataclass
class Batch:
  """Packed rows, each array [rows, length]: inputs, next-token labels, loss weights, positions, segment ids;
  and the target predictions alone, [rows, capacity]: their positions, labels and weights (0 on padding).

  The loss needs logits only where a target is predicted, often a fifth of a row or less: the train step
  computes the vocabulary projection at `loss_positions` only, which spares most of its compute and memory.
  """

  inputs: np.ndarray
  labels: np.ndarray
  weights: np.ndarray  # float32: 1 on target predictions, 0 on prompt and padding
  positions: np.ndarray
  segment_ids: np.ndarray  # 1, 2, ... per example in a row; 0 is padding
  loss_positions: np.ndarray  # int32: where each row's target predictions are
  loss_labels: np.ndarray
  loss_weights: np.ndarray  # float32: 1 for a target prediction, 0 for padding

  def arrays(self) -> dict[str, np.ndarray]:
    return dataclasses.asdict(self)

  @property
  def num_tokens(self) -> int:
    """Real (non-padding) input tokens."""
    return int((self.segment_ids > 0).sum())


def target_count(item: Encoded) -> int:
  """Predictions of an example that carry loss: its target tokens and the EOS."""
  return item.length - item.num_prompt


def make_batch(items: Sequence[Encoded], rows: Sequence[Sequence[int]], length: int, pad_id: int,
               loss_capacity: int | None = None) -> Batch:
  """Lay the examples `items[i]` for i in each row side by side; unused positions are padding.

  `loss_capacity` (default: `length`) is how many target predictions a row may hold.
  """
  shape = (len(rows), length)
  inputs, labels = np.full(shape, pad_id, np.int32), np.full(shape, pad_id, np.int32)
  weights, positions, segments = np.zeros(shape, np.float32), np.zeros(shape, np.int32), np.zeros(shape, np.int32)
  for r, row in enumerate(rows):
    start = 0
    for seg, i in enumerate(row, start=1):
      enc = items[i]
      n = enc.length
      if start + n > length:
        raise ValueError(f"row {r} holds {start + n} positions, more than its length {length}")
      span = slice(start, start + n)
      inputs[r, span], labels[r, span] = enc.tokens[:-1], enc.tokens[1:]
      weights[r, start + enc.num_prompt:start + n] = 1.0  # label j is a target token iff j >= num_prompt
      positions[r, span] = np.arange(n)
      segments[r, span] = seg
      start += n
  capacity = length if loss_capacity is None else loss_capacity
  loss_positions = np.zeros((len(rows), capacity), np.int32)
  loss_weights = np.zeros((len(rows), capacity), np.float32)
  for r in range(len(rows)):
    where = np.flatnonzero(weights[r])
    if len(where) > capacity:
      raise ValueError(f"row {r} has {len(where)} target predictions, more than its loss capacity {capacity}")
    loss_positions[r, :len(where)], loss_weights[r, :len(where)] = where, 1.0
  loss_labels = np.take_along_axis(labels, loss_positions, axis=1)
  return Batch(inputs, labels, weights, positions, segments, loss_positions, loss_labels, loss_weights)


def first_fit(lengths: Sequence[int], capacity: int, *, window: int = 64) -> list[list[int]]:
  """Pack items (indices into `lengths`, in order) into rows of `capacity` positions, first fit among the
  last `window` open rows (bounded so that packing stays linear in the number of examples)."""
  rows: list[list[int]] = []
  free: list[int] = []
  for i, n in enumerate(lengths):
    if n > capacity:
      raise ValueError(f"item {i} has length {n} > row capacity {capacity}")
    lo = max(0, len(rows) - window)
    for r in range(lo, len(rows)):
      if free[r] >= n:
        rows[r].append(i)
        free[r] -= n
        break
    else:
      rows.append([i])
      free.append(capacity - n)
  return rows


def bucket_of(length: int, buckets: Sequence[int]) -> int:
  """The shortest bucket that holds `length` positions."""
  for b in buckets:
    if length <= b:
      return b
  raise ValueError(f"length {length} exceeds the longest bucket {buckets[-1]}")


def agree_max(counts: np.ndarray) -> np.ndarray:
  """Per-bucket row counts agreed by all processes: the largest (smaller shards pad with empty rows)."""
  if jax.process_count() == 1:
    return counts
  return np.asarray(multihost_utils.process_allgather(counts)).max(axis=0)


@dataclasses.dataclass(frozen=True)
class Step:
  """One optimizer step's rows of this process: a bucket length, per row the indices of the examples in it,
  and the room for target predictions per row (a fraction of the length: few shapes to compile)."""

  length: int
  rows: tuple[tuple[int, ...], ...]
  loss_capacity: int = 0  # 0: the whole length


def loss_capacity(targets: int, length: int) -> int:
  """The smallest of length/8, /4, /2 and length that holds `targets` predictions."""
  return next(c for c in (max(1, length // 8), max(1, length // 4), max(1, length // 2), length) if c >= targets)


class PackedDataset:
  """This process's share of the examples, tokenized once; `epoch(seed)` plans one shuffled pass as steps."""

  def __init__(self, tokenizer: Tokenizer, examples: Sequence[Example], *, buckets: Sequence[int],
               rows_per_step: int, process_index: int = 0, process_count: int = 1,
               agree: Callable[[np.ndarray], np.ndarray] = agree_max, chat: bool = False):
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    self.buckets = tuple(sorted(buckets))
    self.rows_per_step = rows_per_step
    self.pad_id = tokenizer.pad_id if tokenizer.pad_id >= 0 else 0
    self._agree = agree
    # Each process tokenizes and packs only every process_count-th example.
    self.items, self.stats = encode_all(tokenizer, list(examples)[process_index::process_count], self.buckets[-1],
                                        chat=chat)

  def epoch(self, seed: Sequence[int]) -> list[Step]:
    """The steps of one pass over the data: examples shuffled by `seed`, packed per bucket, step order shuffled.

    Every process gets the same number of steps with the same bucket lengths (rows padded where its share
    is smaller), because the step order is drawn from `seed` alone.
    """
    seed = [int(s) for s in seed]
    order = np.random.default_rng(seed + [0]).permutation(len(self.items))
    per_bucket: dict[int, list[int]] = {b: [] for b in self.buckets}
    for i in order:
      per_bucket[bucket_of(self.items[i].length, self.buckets)].append(int(i))
    rows = {b: [[idx[j] for j in row] for row in first_fit([self.items[i].length for i in idx], b)]
            for b, idx in per_bucket.items()}
    counts = self._agree(np.asarray([len(rows[b]) for b in self.buckets], np.int64))
    steps = []
    for b, count in zip(self.buckets, counts):
      num_steps = -(-int(count) // self.rows_per_step)
      padded = rows[b] + [[] for _ in range(num_steps * self.rows_per_step - len(rows[b]))]
      steps += [Step(b, tuple(tuple(r) for r in padded[k * self.rows_per_step:(k + 1) * self.rows_per_step]))
                for k in range(num_steps)]
    schedule = np.random.default_rng(seed + [1]).permutation(len(steps))
    steps = [steps[k] for k in schedule]
    # Every process must compile the same shapes: the capacity of each step is agreed like the row counts.
    needed = np.asarray([max([sum(target_count(self.items[i]) for i in row) for row in s.rows] + [0])
                         for s in steps], np.int64)
    needed = self._agree(needed) if len(steps) else needed
    return [dataclasses.replace(s, loss_capacity=loss_capacity(int(n), s.length)) for s, n in zip(steps, needed)]

  def batch(self, step: Step) -> Batch:
    """The arrays of one planned step."""
    return make_batch(self.items, step.rows, step.length, self.pad_id, step.loss_capacity or None)
