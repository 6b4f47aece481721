"""Device side of the prefix cache: a paged pool of KV blocks, filled during prefill and copied into slots.

The pool holds, per layer, keys and values [num_blocks, kv_heads, block_size, head_dim]; block b, entry o
holds the token at position (its block index in the prompt) * block_size + o. Positions are not stored:
the host knows them from the block table.

Why slots keep their own dense caches instead of attending straight from the pool (vLLM's PagedAttention):
XLA has no paged-attention kernel on CPU and a gather of every slot's blocks in each decode step would copy
the whole context once per layer per token. Copying a matched prefix into a slot costs that copy once per
request, and decode keeps its fixed-shape, in-place caches (local layers stay window-sized rings). The pool
keeps full-length KV for local (sliding-window) layers too, since a prompt may branch at any block; `install`
copies only the last window of them into a slot's ring.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from restreact.models.gemma.attention import LayerCache


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class PoolLayer:
  """One layer's blocks: keys and values [num_blocks, kv_heads, block_size, head_dim]."""

  k: jax.Array
  v: jax.Array


Pool = list[PoolLayer]


def empty_pool(cache: list[LayerCache], num_blocks: int, block_size: int) -> Pool:
  """A pool shaped like `cache` (heads, head dim, dtype per layer) with `num_blocks` blocks."""
  def zeros(a):
    return jnp.zeros((num_blocks, a.shape[1], block_size, a.shape[3]), a.dtype)
  return [PoolLayer(zeros(c.k), zeros(c.k)) for c in cache]


def publish(pool: Pool, view: list[LayerCache], positions: jax.Array, dest: jax.Array) -> Pool:
  """Copy the KV just written for tokens at `positions` [L, C] from the slot views into pool entries `dest`.

  `dest` [L, C] is block * block_size + offset, or -1 for tokens not published. Runs inside the prefill call,
  right after the chunk is written, so a local layer's ring still holds every token of the chunk.
  """
  num_blocks, block_size = pool[0].k.shape[0], pool[0].k.shape[2]
  block = jnp.where(dest >= 0, dest // block_size, num_blocks)  # out of range: dropped
  offset = jnp.where(dest >= 0, dest % block_size, 0)
  rows = jnp.arange(positions.shape[0])[:, None]
  out = []
  for p, c in zip(pool, view):
    index = jnp.where(positions >= 0, positions % c.pos.shape[1], 0)
    # c.k[rows, :, index] and p.k[block, :, offset] are both [L, C, kv_heads, head_dim].
    out.append(PoolLayer(p.k.at[block, :, offset].set(c.k[rows, :, index], mode="drop"),
                         p.v.at[block, :, offset].set(c.v[rows, :, index], mode="drop")))
  return out


def install(cache: list[LayerCache], pool: Pool, slots: jax.Array, blocks: jax.Array,
            lengths: jax.Array) -> list[LayerCache]:
  """Copy the first `lengths[i]` positions held by pool blocks `blocks[i]` [A, W] into slot `slots[i]`.

  Slots must be reset. Lanes with slot >= num_slots are padding (nothing written). A global layer takes every
  position; a local layer's ring of R entries takes only the last R (the window the next tokens can see), so
  its gather reads about R / block_size + 1 blocks, not W.
  """
  lanes, width = blocks.shape
  num_blocks, block_size = pool[0].k.shape[0], pool[0].k.shape[2]
  out = []
  for c, p in zip(cache, pool):
    length = c.pos.shape[1]
    count = min(width, -(-length // block_size) + 1)  # blocks that can hold the last `length` positions
    first = jnp.maximum(lengths - length, 0) // block_size
    start = jnp.minimum(first, width - count)[:, None] + jnp.arange(count)[None]  # [A, count] block indices
    ids = jnp.clip(jnp.take_along_axis(blocks, start, axis=1), 0, num_blocks - 1)
    positions = (start[:, :, None] * block_size + jnp.arange(block_size)).reshape(lanes, count * block_size)
    keep = (positions < lengths[:, None]) & (positions >= lengths[:, None] - length)
    index = jnp.where(keep, positions % length, length)  # out of range: dropped
    rows = slots[:, None]

    def gather(a):  # [A, count, kv, bs, h] -> [A, count * bs, kv, h], in position order
      g = a[ids].transpose(0, 1, 3, 2, 4)
      return g.reshape(lanes, count * block_size, g.shape[3], g.shape[4]).astype(c.k.dtype)

    out.append(LayerCache(c.k.at[rows, :, index].set(gather(p.k), mode="drop"),
                          c.v.at[rows, :, index].set(gather(p.v), mode="drop"),
                          c.pos.at[rows, index].set(positions, mode="drop")))
  return out
