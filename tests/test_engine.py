"""The sampling engine equals the plain model: greedy tokens, log-probs, prefix reuse, ring buffers, sharding."""

import jax
import numpy as np
import pytest

from models_util import forward, random_model
from restreact.generate import Engine
from restreact.models import make_mesh, shard_model

RNG = np.random.default_rng(0)
PROMPTS = [RNG.integers(3, 512, n).tolist() for n in (20, 7, 13, 30, 1)]  # the window is 8 tokens
NEW = 12
REFERENCE_LENGTH = 64  # at least the longest prompt (a 42-token one) and its new tokens


def _engine(model, **kw):
  kw = {"num_slots": 3, "max_len": 64, "prefill_chunk": 16, "prefill_buckets": (4, 8), "eos_ids": (), **kw}
  return Engine(model, None, **kw)


def _reference(model, prompt, steps=NEW):
  """Step-by-step argmax of the full forward, and log_softmax of the chosen tokens. Every forward has the same
  length, zero-padded on the right (one compilation; a causal model's logits never see later positions)."""
  seq, logprobs = list(prompt), []
  for _ in range(steps):
    padded = np.zeros((1, REFERENCE_LENGTH), np.int32)
    padded[0, :len(seq)] = seq
    logits = np.asarray(forward(model, padded))[0, len(seq) - 1]
    token = int(logits.argmax())
    logprobs.append(float(jax.nn.log_softmax(logits)[token]))
    seq.append(token)
  return seq[len(prompt):], logprobs


@pytest.fixture(scope="module", params=["gemma2-tiny", "gemma3-tiny"])
def model(request):
  return random_model(request.param)


@pytest.fixture(scope="module")
def reference(model):
  return [_reference(model, p) for p in PROMPTS]


def test_greedy_tokens_and_logprobs_equal_the_full_forward(model, reference):
  engine = _engine(model)  # 5 prompts, 3 slots: the queue is used
  out = engine.generate(PROMPTS, max_new_tokens=NEW)
  for (tokens, logprobs), [completion] in zip(reference, out):
    assert completion.tokens == tokens
    np.testing.assert_allclose(completion.logprobs, logprobs, atol=1e-4)
    assert completion.finish_reason == "length"
  assert engine.cache[0].pos.shape[1] == 8 + 16 - 1  # local layers used a window-sized ring buffer


def test_ring_buffers_equal_full_cache(model):
  ring = _engine(model).generate(PROMPTS, max_new_tokens=NEW)
  full_engine = _engine(model, ring_buffers=False)
  assert {c.pos.shape[1] for c in full_engine.cache} == {64}
  full = full_engine.generate(PROMPTS, max_new_tokens=NEW)
  for [a], [b] in zip(ring, full):
    assert a.tokens == b.tokens
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)


def test_prefix_reuse_equals_prefilling_from_scratch(model, reference):
  engine = _engine(model, block_size=4)
  preamble = PROMPTS[3][:22]  # longer than a prefill chunk and than the window
  assert engine.register_prefix(preamble) == 22  # its 5 full blocks are cached (and pinned)
  assert engine.stats["prefill_tokens"] == 22
  prompts = [PROMPTS[3], preamble + PROMPTS[0]]
  out = engine.generate(prompts, max_new_tokens=NEW)
  assert engine.stats["prefix_tokens_reused"] == 20 + 20
  assert engine.stats["prefill_tokens"] == 22 + (30 - 1 - 20) + (42 - 1 - 20)
  assert out[0][0].tokens == reference[3][0]
  np.testing.assert_allclose(out[0][0].logprobs, reference[3][1], atol=1e-4)
  tokens, logprobs = _reference(model, prompts[1])
  assert out[1][0].tokens == tokens
  np.testing.assert_allclose(out[1][0].logprobs, logprobs, atol=1e-4)


def test_sharded_engine_equals_single_device(model, reference):
  mesh = make_mesh((2, 2, 2))
  sharded = shard_model(random_model(model.config.family + "-tiny"), mesh)
  engine = _engine(sharded, num_slots=4, mesh=mesh)
  assert len(engine.cache[0].k.sharding.device_set) == 8
  out = engine.generate(PROMPTS, max_new_tokens=NEW)
  for (tokens, logprobs), [completion] in zip(reference, out):
    assert completion.tokens == tokens
    np.testing.assert_allclose(completion.logprobs, logprobs, atol=1e-4)


def test_prefill_chunks_are_capped_at_max_len(model, reference):
  """A cache shorter than the default chunk and buckets (256; 16, 64) still takes any prompt that fits."""
  engine = Engine(model, None, num_slots=1, max_len=40, eos_ids=())
  assert max(engine.chunk_sizes) <= 40
  [[completion]] = engine.generate([PROMPTS[3]], max_new_tokens=8)  # 29 prefill tokens: bucket 64 before
  assert completion.tokens == reference[3][0][:8]
  long = (PROMPTS[3] * 2)[:32]  # the exact case of the report: 32 prompt tokens + 8 new = max_len
  [[completion]] = engine.generate([long], max_new_tokens=8)
  assert completion.tokens == _reference(model, long, 8)[0]
