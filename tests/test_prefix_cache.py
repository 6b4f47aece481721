"""Automatic prefix caching: the same tokens and log-probs as without it, fewer prefill tokens, sound bookkeeping."""

import numpy as np
import pytest

from models_util import random_model
from restreact.generate import Engine
from restreact.generate.blocks import BlockPool, block_hashes
from restreact.models import make_mesh, shard_model

RNG = np.random.default_rng(5)
PREAMBLE = RNG.integers(3, 512, 19).tolist()  # a step type's preamble: not a whole number of blocks
QUESTIONS = [RNG.integers(3, 512, n).tolist() for n in (6, 11)]
ACTIONS = [RNG.integers(3, 512, n).tolist() for n in (9, 5, 14)]
# Agent-like prompts: preamble + question + the trajectory's past actions, growing step by step.
PROMPTS = [PREAMBLE + q + sum(ACTIONS[:k], []) for q in QUESTIONS for k in range(3)]
NEW = 6


def _engine(model, **kw):
  kw = {"num_slots": 3, "max_len": 80, "prefill_chunk": 16, "prefill_buckets": (8,), "eos_ids": (),
        "block_size": 4, **kw}
  return Engine(model, None, **kw)


def _run(engine, prompts, n=1):
  """Submit one by one (so arrival order matters) and collect (tokens, logprobs) of every sample."""
  requests = [engine.submit(p, n=n, max_new_tokens=NEW) for p in prompts]
  while not all(r.done for r in requests):
    engine.step()
  return [[(c.tokens, c.logprobs) for c in r.completions()] for r in requests]


def _assert_same(got, want):
  for g, w in zip(got, want, strict=True):
    for (tokens, logprobs), (want_tokens, want_logprobs) in zip(g, w, strict=True):
      assert tokens == want_tokens
      np.testing.assert_allclose(logprobs, want_logprobs, atol=1e-4)


@pytest.fixture(scope="module", params=["gemma3-tiny", "gemma2-tiny"])
def model(request):
  return random_model(request.param)


@pytest.fixture(scope="module")
def uncached(model):
  return _run(_engine(model, cache_blocks=0), PROMPTS, n=2)


def test_greedy_outputs_equal_without_the_cache_in_any_order(model, uncached):
  engine = _engine(model)
  _assert_same(_run(engine, PROMPTS, n=2), uncached)
  assert engine.stats["prefix_tokens_reused"] > 0
  order = [3, 0, 5, 1, 4, 2]  # other arrival orders, now served from a warm cache
  _assert_same(_run(engine, [PROMPTS[i] for i in order], n=2), [uncached[i] for i in order])
  _assert_same(_run(engine, PROMPTS[::-1], n=2), uncached[::-1])


def test_eviction_under_memory_pressure_changes_nothing(model, uncached):
  engine = _engine(model, cache_blocks=9)  # 36 tokens: less than one long prompt
  _assert_same(_run(engine, PROMPTS, n=2), uncached)
  _assert_same(_run(engine, PROMPTS[::-1], n=2), uncached[::-1])
  assert engine.prefix_cache.evictions > 0 and engine.stats["prefix_tokens_reused"] > 0
  assert engine.prefix_cache.cached_blocks <= 9


def test_a_second_identical_prompt_computes_almost_nothing(model):
  engine = _engine(model)
  prompt = PROMPTS[2]
  [[first]] = engine.generate([prompt], max_new_tokens=NEW)
  before = dict(engine.stats)
  [[second]] = engine.generate([prompt], max_new_tokens=NEW)
  assert second.tokens == first.tokens
  computed = engine.stats["prefill_tokens"] - before["prefill_tokens"]
  reused = engine.stats["prefix_tokens_reused"] - before["prefix_tokens_reused"]
  assert computed < engine.block_size and reused == (len(prompt) - 1) // 4 * 4
  assert engine.stats["decoded_tokens"] - before["decoded_tokens"] == NEW


def test_reference_counts_pin_running_requests_and_free_finished_ones(model):
  engine = _engine(model, cache_blocks=40)
  pool = engine.prefix_cache
  assert engine.register_prefix(PREAMBLE) == 19
  pinned = sum(pool.refcount)
  assert pinned == 4 and pool.cached_blocks == 4  # 19 tokens: 4 full blocks, pinned for good
  running = engine.submit(PROMPTS[1], max_new_tokens=30)
  other = engine.submit(PROMPTS[4], max_new_tokens=2)
  engine.step()
  assert set(running.blocks) >= set(engine._pinned[tuple(PREAMBLE)])  # matched the pinned preamble
  assert sum(pool.refcount) == pinned + len(running.blocks) + len(other.blocks)
  while not other.done:
    engine.step()
  assert other.blocks == [] and sum(pool.refcount) == pinned + len(running.blocks)
  engine.cancel(running)
  assert sum(pool.refcount) == pinned
  assert pool.free_blocks == 40 - pinned  # every unpinned block may be evicted again
  assert engine.register_prefix(PREAMBLE) == 19 and sum(pool.refcount) == pinned  # twice: a no-op
  unpinned = pool.cached_blocks - pinned
  assert unpinned > 0 and engine.clear_prefix_cache() == unpinned
  assert pool.cached_blocks == pinned and pool.free_blocks == 40 - pinned  # the pinned preamble stays


def test_block_pool_evicts_the_least_recently_used_tail_first():
  pool = BlockPool(3, 2)
  chain = block_hashes([5, 6, 7, 8, 9, 10, 11], 2)  # 3 full blocks; the last token is not a block
  assert len(chain) == 3 and pool.match(chain) == []
  blocks = [pool.allocate() for _ in chain]
  assert pool.allocate() is None  # all referenced
  for block, entry in zip(blocks, chain):
    assert pool.name(block, entry)
  assert pool.match(chain) == blocks and pool.match(block_hashes([5, 6, 7, 0], 2)) == blocks[:1]
  pool.release(blocks)
  assert pool.allocate() == blocks[2]  # the chain's tail goes first; its prefix stays matchable
  assert pool.match(chain) == blocks[:2]
  forged = (chain[0][0], chain[0][1], (1, 2))  # same hash, other tokens: never matched
  assert pool.match([forged]) == []
  with pytest.raises(AssertionError, match="released more often"):
    pool.release([blocks[0]])


def test_sharded_engine_with_prefix_cache_equals_unsharded(model, uncached):
  mesh = make_mesh((2, 2, 2))
  sharded = shard_model(random_model(model.config.family + "-tiny"), mesh)
  engine = _engine(sharded, num_slots=4, mesh=mesh)
  assert len(engine._pool[0].k.sharding.device_set) == 8
  _assert_same(_run(engine, PROMPTS, n=2), uncached)
  assert engine.stats["prefix_tokens_reused"] > 0
