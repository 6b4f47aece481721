"""Device-side slot operations: reset, prefill, copy, and a multi-step decode round.

Every function is pure (cache and state in, cache and state out) so the engine jits each once and
donates the buffers. Slot indices and per-slot settings are traced values, never shapes, so inserting
or releasing a slot never recompiles; only prompt-chunk lengths (a few buckets) make new shapes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from restreact.generate.paged import Pool, publish
from restreact.generate.sampling import sample
from restreact.models.gemma.attention import LayerCache

Cache = list[LayerCache]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DecodeState:
  """Per-slot decoding state, [num_slots] each. A slot is idle when its position is -1."""

  tokens: jax.Array  # next input token (int32)
  positions: jax.Array  # its position (int32), -1 when idle
  keys: jax.Array  # PRNG key data, [num_slots, 2] uint32
  generated: jax.Array  # tokens sampled so far (int32)
  max_new: jax.Array  # limit on generated (int32)
  temperature: jax.Array  # float32; <= 0 is greedy
  top_k: jax.Array  # int32; 0 disables
  top_p: jax.Array  # float32; 1 disables

  @classmethod
  def idle(cls, num_slots: int) -> DecodeState:
    """Host (numpy) state with every slot idle."""
    z = lambda dtype: np.zeros((num_slots,), dtype)
    return cls(z(np.int32), np.full((num_slots,), -1, np.int32), np.zeros((num_slots, 2), np.uint32),
               z(np.int32), z(np.int32), z(np.float32), z(np.int32), np.ones((num_slots,), np.float32))


def reset_slots(cache: Cache, mask: jax.Array) -> Cache:
  """Mark every entry of the masked slots empty (their old keys are never attended to again)."""
  return [dataclasses.replace(c, pos=jnp.where(mask[:, None], -1, c.pos)) for c in cache]


def prefill(graphdef, params, cache: Cache, pool: Pool | None, slots: jax.Array, tokens: jax.Array,
            positions: jax.Array, dest: jax.Array) -> tuple[Cache, Pool | None]:
  """Run prompt chunks [L, C] into the caches of `slots` [L] (padding tokens at position -1).

  Lanes whose slot index is out of range (num_slots) are padding: they read a clamped slot and write
  nothing back, so lane counts can come from a few buckets. With a prefix-cache `pool`, the new KV of
  tokens with `dest` >= 0 is also copied into those pool entries (see `paged.publish`).
  """
  model = nnx.merge(graphdef, params)
  take = lambda a: jnp.take(a, slots, axis=0, mode="clip")
  view = [LayerCache(take(c.k), take(c.v), take(c.pos)) for c in cache]
  _, view = model.hidden_states(tokens, positions=positions, cache=view)
  put = lambda a, b: a.at[slots].set(b, mode="drop")
  if pool is not None:
    pool = publish(pool, view, positions, dest)
  return [LayerCache(put(c.k, v.k), put(c.v, v.v), put(c.pos, v.pos)) for c, v in zip(cache, view)], pool


def copy_slots(cache: Cache, sources: jax.Array, targets: jax.Array, count: jax.Array) -> Cache:
  """Copy slot `sources[i]` into slot `targets[i]` for i < count (the n samples of a request share its prefill).

  Row by row with dynamic slices, which XLA does in place: the cost is the rows copied, not the whole cache
  (a masked `where` over the cache read and wrote every slot, once per request).
  """
  def body(i, cache):
    def copy(a):
      row = jax.lax.dynamic_slice_in_dim(a, sources[i], 1, axis=0)
      return jax.lax.dynamic_update_slice_in_dim(a, row, targets[i], axis=0)
    return [LayerCache(copy(c.k), copy(c.v), copy(c.pos)) for c in cache]
  return jax.lax.fori_loop(0, count, body, cache)


def decode_round(graphdef, params, cache: Cache, state: DecodeState, eos_ids: jax.Array, *, num_steps: int):
  """`num_steps` decode steps for all slots in one call.

  Returns (cache, state, tokens, logprobs, valid), the last three [num_slots, num_steps]: the sampled
  tokens, their log-probabilities under the model (log_softmax of the raw logits), and which were
  produced by an active slot. A slot stops at an EOS id or at max_new tokens and goes idle.
  """
  model = nnx.merge(graphdef, params)
  num_slots = state.positions.shape[0]

  def step(carry):
    i, cache, st, tokens, logprobs, valid = carry
    active = st.positions >= 0
    logits, cache = model(st.tokens[:, None], positions=st.positions[:, None], cache=cache)
    logits = logits[:, 0]
    keys = jax.vmap(lambda k, n: jax.random.fold_in(jax.random.wrap_key_data(k), n))(st.keys, st.generated)
    token = sample(logits, keys, st.temperature, st.top_k, st.top_p)
    logprob = jnp.take_along_axis(logits, token[:, None], axis=-1)[:, 0] - jax.nn.logsumexp(logits, axis=-1)
    generated = st.generated + active.astype(jnp.int32)
    done = active & (jnp.isin(token, eos_ids) | (generated >= st.max_new))
    st = dataclasses.replace(st, tokens=jnp.where(active, token, st.tokens), generated=generated,
                             positions=jnp.where(active & ~done, st.positions + 1, -1))
    put = lambda buf, col: jax.lax.dynamic_update_slice_in_dim(buf, col[:, None], i, axis=1)
    return i + 1, cache, st, put(tokens, token), put(logprobs, logprob), put(valid, active)

  def more(carry):  # stop early once every slot is idle
    i, _, st, *_ = carry
    return (i < num_steps) & jnp.any(st.positions >= 0)

  buffers = (jnp.zeros((num_slots, num_steps), jnp.int32), jnp.zeros((num_slots, num_steps), jnp.float32),
             jnp.zeros((num_slots, num_steps), bool))
  _, cache, state, tokens, logprobs, valid = jax.lax.while_loop(more, step, (0, cache, state, *buffers))
  return cache, state, tokens, logprobs, valid
