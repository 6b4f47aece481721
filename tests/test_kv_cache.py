"""Incremental decoding with the KV cache equals the full forward (fp32, <= 1e-4), past the window."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models_util import forward, random_model

LENGTH = 26  # the tiny presets' sliding window is 8


@nnx.jit
def _step(model, tokens, positions, cache):
  return model(tokens, positions=positions, cache=cache)


def _in_pieces(model, tokens, cache, sizes):
  """Logits of `tokens` fed through the cache `sizes[i]` tokens at a time."""
  outs, start = [], 0
  for size in sizes:
    positions = np.broadcast_to(np.arange(start, start + size), (tokens.shape[0], size))
    logits, cache = _step(model, tokens[:, start:start + size], positions, cache)
    outs.append(np.asarray(logits))
    start += size
  assert start == tokens.shape[1]
  return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("preset", ["gemma2-tiny", "gemma3-tiny"])
@pytest.mark.parametrize("prefill", [1, 5])
def test_incremental_decoding_equals_full_forward(preset, prefill):
  model = random_model(preset)
  tokens = np.random.default_rng(1).integers(0, 512, (2, LENGTH))
  full = np.asarray(forward(model, tokens))
  steps = _in_pieces(model, tokens, model.init_cache(2, 32), [prefill] + [1] * (LENGTH - prefill))
  np.testing.assert_allclose(steps, full, atol=1e-4, rtol=0)


def test_rows_at_different_positions_and_padding():
  """Each row has its own positions; padding (-1) is neither attended to nor stored."""
  model = random_model("gemma3-tiny")
  rng = np.random.default_rng(2)
  a, b = rng.integers(0, 512, 20), rng.integers(0, 512, 12)
  cache = model.init_cache(2, 32)
  tokens = np.zeros((2, 20), np.int32)
  tokens[0], tokens[1, :12] = a, b
  positions = np.stack([np.arange(20), np.where(np.arange(20) < 12, np.arange(20), -1)])
  logits, cache = _step(model, tokens, positions, cache)
  np.testing.assert_allclose(np.asarray(logits[0]), np.asarray(forward(model, a[None]))[0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(np.asarray(logits[1, :12]), np.asarray(forward(model, b[None]))[0], atol=1e-4, rtol=0)
  assert int((np.asarray(cache[0].pos[1]) >= 0).sum()) == 12
  nxt = rng.integers(0, 512, 2)
  logits, _ = _step(model, nxt[:, None], np.array([[20], [12]]), cache)
  want_a = np.asarray(forward(model, np.append(a, nxt[0])[None]))[0, -1]
  want_b = np.asarray(forward(model, np.append(b, nxt[1])[None]))[0, -1]
  np.testing.assert_allclose(np.asarray(logits[:, 0]), np.stack([want_a, want_b]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("preset", ["gemma2-tiny", "gemma3-tiny"])
def test_window_sized_ring_buffer_equals_full_cache(preset):
  """Local layers keep window + chunk - 1 entries and wrap around; results still equal the full forward."""
  model = random_model(preset)
  tokens = np.random.default_rng(3).integers(0, 512, (1, LENGTH))
  full = np.asarray(forward(model, tokens))
  cache = model.init_cache(1, 32, local_length=8 + 4 - 1)  # window 8, chunks of up to 4 tokens
  assert {c.pos.shape[1] for c in cache} == {32, 11}
  chunks = _in_pieces(model, tokens, cache, [4] * (LENGTH // 4) + [LENGTH % 4])
  np.testing.assert_allclose(chunks, full, atol=1e-4, rtol=0)


def test_packed_segments_do_not_attend_to_each_other():
  model = random_model("gemma3-tiny")
  rng = np.random.default_rng(4)
  a, b = rng.integers(0, 512, 10), rng.integers(0, 512, 14)
  tokens = np.concatenate([a, b])[None]
  positions = np.concatenate([np.arange(10), np.arange(14)])[None]
  segments = np.concatenate([np.zeros(10), np.ones(14)]).astype(np.int32)[None]
  packed = np.asarray(model(jnp.asarray(tokens), positions=positions, segment_ids=segments))
  np.testing.assert_allclose(packed[0, :10], np.asarray(forward(model, a[None]))[0], atol=1e-4, rtol=0)
  np.testing.assert_allclose(packed[0, 10:], np.asarray(forward(model, b[None]))[0], atol=1e-4, rtol=0)
