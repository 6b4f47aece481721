"""Host-side bookkeeping of the prefix cache: fixed-size KV blocks, block hashes, reference counts, LRU eviction.

Automatic prefix caching as in vLLM (`vllm/v1/core/kv_cache_utils.py`, `block_pool.py`): a prompt is cut into
full blocks of `block_size` tokens; block j is named by hash((hash of block j-1, its token ids)), so one name
stands for the whole prefix up to the end of the block. A prompt reuses the longest chain of named blocks that
the pool holds. Every cached block also stores its parent's hash and its tokens, so a match is checked exactly
(a hash collision can never hand back another prompt's KV).

A block is referenced by each live request that reads or wrote it and by pinned prefixes; blocks no one
references stay cached and are evicted least recently used first when a new block is needed. Freeing a
request's chain puts its last block first in line, so a prefix outlives its extensions (as in vLLM).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

ROOT = hash(("restreact-prefix-root",))  # parent hash of a prompt's first block


def block_hashes(tokens: Sequence[int], block_size: int) -> list[tuple[int, int, tuple[int, ...]]]:
  """(hash, parent hash, token ids) of every full block of `tokens`, in order."""
  out, parent = [], ROOT
  for start in range(0, len(tokens) - block_size + 1, block_size):
    ids = tuple(int(t) for t in tokens[start:start + block_size])
    h = hash((parent, ids))
    out.append((h, parent, ids))
    parent = h
  return out


class BlockPool:
  """Which of `num_blocks` device blocks hold which prefix, who references them, and which to evict next."""

  def __init__(self, num_blocks: int, block_size: int):
    if num_blocks < 1 or block_size < 1:
      raise ValueError(f"need num_blocks >= 1 and block_size >= 1, got {num_blocks}, {block_size}")
    self.num_blocks, self.block_size = num_blocks, block_size
    self.refcount = [0] * num_blocks
    self._never_used = collections.deque(range(num_blocks))
    self._evictable: collections.OrderedDict[int, None] = collections.OrderedDict()  # refcount 0, LRU first
    self._by_hash: dict[int, int] = {}
    self._meta: dict[int, tuple[int, int, tuple[int, ...]]] = {}  # block -> (hash, parent hash, tokens)
    self.evictions = 0

  @property
  def cached_blocks(self) -> int:
    """Blocks whose KV can be matched by a new prompt."""
    return len(self._by_hash)

  @property
  def free_blocks(self) -> int:
    """Blocks that a new prefix may take: never used, or cached but referenced by no one."""
    return len(self._never_used) + len(self._evictable)

  def match(self, chain: list[tuple[int, int, tuple[int, ...]]]) -> list[int]:
    """The cached blocks holding the longest prefix of `chain` (see `block_hashes`); takes no reference."""
    blocks = []
    for h, parent, ids in chain:
      block = self._by_hash.get(h)
      if block is None or self._meta[block] != (h, parent, ids):
        break
      blocks.append(block)
    return blocks

  def acquire(self, blocks: Sequence[int]) -> None:
    """One more reference to each block; referenced blocks are never evicted."""
    for block in blocks:
      self.refcount[block] += 1
      self._evictable.pop(block, None)

  def release(self, blocks: Sequence[int]) -> None:
    """Drop one reference to each block; unreferenced cached blocks become evictable, the chain's tail first."""
    for block in reversed(blocks):
      if self.refcount[block] <= 0:
        raise AssertionError(f"block {block} released more often than acquired")
      self.refcount[block] -= 1
      if self.refcount[block] == 0:
        if block in self._meta:
          self._evictable[block] = None
        else:  # written but never named (a duplicate): nothing to keep
          self._never_used.append(block)

  def allocate(self) -> int | None:
    """A block for new KV, with one reference taken; evicts the least recently used one if needed. None if full."""
    if self._never_used:
      block = self._never_used.popleft()
    elif self._evictable:
      block, _ = self._evictable.popitem(last=False)
      h, _, _ = self._meta.pop(block)
      del self._by_hash[h]
      self.evictions += 1
    else:
      return None
    self.refcount[block] = 1
    return block

  def name(self, block: int, entry: tuple[int, int, tuple[int, ...]]) -> bool:
    """Publish a written block under its hash. False (nothing done) if that prefix is cached already."""
    h = entry[0]
    if h in self._by_hash:
      return False
    self._by_hash[h] = block
    self._meta[block] = entry
    return True

  def clear(self) -> int:
    """Forget every cached block that no one references (pinned and running prefixes stay); how many."""
    dropped = list(self._evictable)
    for block in dropped:
      h, _, _ = self._meta.pop(block)
      del self._by_hash[h]
      self._never_used.append(block)
    self._evictable.clear()
    return len(dropped)
