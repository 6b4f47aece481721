"""How the engine fills slots with prompts: cached blocks copied in, the rest prefilled in bucketed chunks.

Split from `engine` as a mixin: it reads the engine's cache, pool, prefix-cache bookkeeping, bucket sizes and
jitted functions, and updates the cache, the pool and `stats`.
"""

from __future__ import annotations

import collections

import numpy as np

from restreact.generate.blocks import block_hashes
from restreact.generate.requests import Request


class PrefillMixin:
  """Prefill and prefix-cache methods of `restreact.generate.Engine`."""

  def _piece_sizes(self, n: int) -> list[int]:
    """Full prefill chunks, then the remainder padded up to its bucket (one call per piece: on a CPU
    each call costs ~2 ms, more than the padding saves)."""
    full, rest = divmod(n, self.chunk_sizes[-1])
    return [self.chunk_sizes[-1]] * full + ([next(c for c in self.chunk_sizes if c >= rest)] if rest else [])

  def _prefill_lanes(self, work: list[tuple[int, int, list[int], np.ndarray]]) -> None:
    """Prefill (slot, first position, tokens, pool entries) items: piece r of every item in one call (or a few).

    Lane counts come from `lane_sizes`; padding lanes point at slot num_slots and are dropped on write-back,
    padding tokens sit at position -1. Pool entries (-1: not published) say where each token's KV is cached.
    """
    rounds = collections.defaultdict(list)
    for slot, start, tokens, dest in work:
      offset = 0
      for r, size in enumerate(self._piece_sizes(len(tokens))):
        rounds[r].append((slot, start + offset, tokens[offset:offset + size], dest[offset:offset + size]))
        offset += size
    for r in sorted(rounds):
      lanes = rounds[r]
      for i in range(0, len(lanes), self.lane_sizes[-1]):
        batch = lanes[i:i + self.lane_sizes[-1]]
        width = next(c for c in self.chunk_sizes if c >= max(len(t) for _, _, t, _ in batch))
        count = next(n for n in self.lane_sizes if n >= len(batch))
        slots = np.full((count,), self.num_slots, np.int32)
        ids = np.zeros((count, width), np.int32)
        pos, where = np.full((count, width), -1, np.int32), np.full((count, width), -1, np.int32)
        for lane, (slot, start, tokens, dest) in enumerate(batch):
          slots[lane], ids[lane, :len(tokens)], where[lane, :len(tokens)] = slot, tokens, dest
          pos[lane, :len(tokens)] = np.arange(start, start + len(tokens))
        self.cache, self._pool = self._run(self._prefill, self._params, self.cache, self._pool, slots, ids, pos,
                                           where)

  def _install_lanes(self, installs: list[tuple[int, list[int]]]) -> None:
    """Copy cached blocks into reset slots: (slot, blocks) items, many per call (lane counts from `lane_sizes`)."""
    for i in range(0, len(installs), self.lane_sizes[-1]):
      batch = installs[i:i + self.lane_sizes[-1]]
      count = next(n for n in self.lane_sizes if n >= len(batch))
      slots = np.full((count,), self.num_slots, np.int32)
      table = np.zeros((count, self._table_width), np.int32)
      lengths = np.zeros((count,), np.int32)
      for lane, (slot, blocks) in enumerate(batch):
        slots[lane], table[lane, :len(blocks)], lengths[lane] = slot, blocks, len(blocks) * self.block_size
      self.cache = self._run(self._install, self.cache, self._pool, slots, table, lengths)

  def _fill(self, jobs: list[tuple[int, list[int]]]) -> list[list[int]]:
    """Bring reset slots to the state after `tokens`, for (slot, tokens) jobs; the blocks each job now references.

    The longest cached chain of each job's full blocks is copied in; the rest is computed, and its full
    blocks are published (as long as the pool has blocks no one references). Jobs of one call do not see
    each other's new blocks: those are named only once computed, after every job has matched.
    """
    pool, size = self.prefix_cache, self.block_size
    plans, installs, work = [], [], []
    for slot, tokens in jobs:
      chain = block_hashes(tokens, size) if pool is not None else []
      matched = pool.match(chain) if pool is not None else []
      fresh = []
      if pool is not None:
        pool.acquire(matched)
        for entry in chain[len(matched):]:
          if (block := pool.allocate()) is None:
            break  # every block is referenced: this prompt's tail stays uncached
          fresh.append((block, entry))
      done = len(matched) * size
      dest = np.full((len(tokens) - done,), -1, np.int32)
      for j, (block, _) in enumerate(fresh):
        dest[j * size:(j + 1) * size] = block * size + np.arange(size)
      if matched:
        installs.append((slot, matched))
      work.append((slot, done, tokens[done:], dest))
      plans.append((matched, fresh))
      self.stats["prefix_tokens_reused"] += done
      self.stats["prefill_tokens"] += len(tokens) - done
    if installs:  # before any prefill: blocks being written are never the ones read
      self._install_lanes(installs)
    self._prefill_lanes(work)
    held = []
    for matched, fresh in plans:
      blocks = list(matched)
      for block, entry in fresh:
        if pool.name(block, entry):
          blocks.append(block)
        else:  # another job of this call cached the same prefix first
          pool.release([block])
      held.append(blocks)
    return held

  def _release(self, request: Request) -> None:
    if self.prefix_cache is not None and request.blocks:
      self.prefix_cache.release(request.blocks)
    request.blocks = []
