"""The Gemma 2 / Gemma 3 text decoder in Flax NNX, one class for both families."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, ArrayLike, Float, Int

from restreact.models.gemma import stacking
from restreact.models.gemma.attention import Attention, LayerCache
from restreact.models.gemma.config import LOCAL, GemmaConfig
from restreact.models.gemma.layers import GeGLU, RMSNorm, param
from restreact.models.sharding import constrain

# What a training step keeps of each block for the backward pass (`model.remat`; MaxText's remat_policy).
REMAT_POLICIES = {
    "none": None,  # every activation: fastest, and at 4k tokens per row tens of GB per layer (attention scores)
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # weight matmul outputs; attention recomputed
    "full": jax.checkpoint_policies.nothing_saveable,  # only each block's input: least memory, most recompute
}


class Block(nnx.Module):
  """Pre- and post-norms around attention and around the MLP, each with a residual."""

  def __init__(self, cfg: GemmaConfig, layer_type: str, *, rngs: nnx.Rngs):
    norm = lambda: RMSNorm(cfg.embed_dim, eps=cfg.rms_norm_eps, param_dtype=cfg.param_dtype)
    self.pre_attn_norm, self.post_attn_norm = norm(), norm()
    self.attn = Attention(cfg, layer_type, rngs=rngs)
    self.pre_mlp_norm, self.post_mlp_norm = norm(), norm()
    self.mlp = GeGLU(cfg.embed_dim, cfg.hidden_dim, param_dtype=cfg.param_dtype, dtype=cfg.dtype, rngs=rngs)

  def __call__(self, x: Float[Array, "B T D"], positions: Int[Array, "B T"], *, cache: LayerCache | None = None,
               segment_ids: Int[Array, "B T"] | None = None) -> tuple[Float[Array, "B T D"], LayerCache | None]:
    h, cache = self.attn(self.pre_attn_norm(x), positions, cache=cache, segment_ids=segment_ids)
    x = x + self.post_attn_norm(h)
    x = x + self.post_mlp_norm(self.mlp(self.pre_mlp_norm(x)))
    return constrain(x, ("act_batch", "act_length", "act_embed")), cache


def _run_period(graphdefs, x, states, positions, segment_ids):
  """One period of the layer pattern: each position's block, in order (the body of the layer scan)."""
  for graphdef, state in zip(graphdefs, states):
    x = nnx.merge(graphdef, state)(x, positions, segment_ids=segment_ids)[0]
  return x


class Transformer(nnx.Module):
  """Gemma decoder. `model(tokens)` -> float32 logits [batch, length, vocab] for positions 0..length-1.

  With `cache=` (from `init_cache`) it also returns the updated cache; `positions` then say where
  each token sits (per row, so rows may be at different positions; -1 marks padding). Positions
  must stay below the cache length on global layers; the engine enforces that.

  The layers are stored stacked by their position in the layer-type pattern (`stacks`, `tail`: see
  `stacking`); without a cache the forward scans over them (`scan_layers`) or runs them one by one.
  """

  def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    embedding = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.embed_dim), jnp.float32)
    self.embedding = param((embedding / cfg.embed_dim ** 0.5).astype(cfg.param_dtype), ("vocab", "embed"))
    layers = [Block(cfg, lt, rngs=rngs) for lt in cfg.layer_types]  # in layer order: the same draws as unstacked
    p = stacking.period(cfg.layer_types)
    full = cfg.num_layers // p * p
    self.stacks = nnx.List([stacking.stack(layers[j:full:p]) for j in range(p)])
    self.tail = nnx.List([stacking.stack([layer]) for layer in layers[full:]])
    self.final_norm = RMSNorm(cfg.embed_dim, eps=cfg.rms_norm_eps, param_dtype=cfg.param_dtype)
    self.remat = "none"  # a key of REMAT_POLICIES; applies without a cache (training), set by the trainer
    self.scan_layers = True  # without a cache: one jax.lax.scan over the stacks (False: a Python loop)

  def layer(self, i: int) -> Block:
    """Layer `i` (0-based) as a module of its own, sliced from its stack."""
    (group, position), index = stacking.location(self.config.layer_types, i)
    return stacking.unstack(getattr(self, group)[position], index)

  def embed(self, tokens: Int[Array, "B T"]) -> Float[Array, "B T D"]:
    """Token embeddings scaled by sqrt(embed_dim), the scale rounded to the parameter dtype."""
    table = self.embedding[...]
    scale = jnp.asarray(self.config.embed_dim ** 0.5, table.dtype)
    return (table[tokens] * scale).astype(self.config.dtype)

  def hidden_states(self, tokens: Int[ArrayLike, "B T"], *, positions: Int[ArrayLike, "B T"] | None = None,
                    segment_ids: Int[ArrayLike, "B T"] | None = None, cache: list[LayerCache] | None = None,
                    ) -> tuple[Float[Array, "B T D"], list[LayerCache] | None]:
    """Final-norm hidden states [B, T, D] and the updated cache (None without one)."""
    tokens = jnp.asarray(tokens, jnp.int32)
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be int32 [batch, length], got shape {tokens.shape}")
    if positions is None:
      if cache is not None:
        raise ValueError("decoding with a cache needs explicit positions (where each token sits)")
      positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    for name, value in (("positions", positions), ("segment_ids", segment_ids)):
      if value is not None and tuple(value.shape) != tuple(tokens.shape):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, tokens have {tuple(tokens.shape)}")
    if cache is not None and len(cache) != self.config.num_layers:
      raise ValueError(f"cache has {len(cache)} layers, model has {self.config.num_layers}")
    x = constrain(self.embed(tokens), ("act_batch", "act_length", "act_embed"))
    if cache is None:
      if self.remat not in REMAT_POLICIES:
        raise ValueError(f"remat={self.remat!r}; choose one of {', '.join(REMAT_POLICIES)}")
      if self.scan_layers:
        for group in (self.stacks, self.tail):
          x = self._scan(group, x, positions, segment_ids)
      else:  # layer by layer: every layer compiled on its own
        for i in range(self.config.num_layers):
          (group, position), index = stacking.location(self.config.layer_types, i)
          one = stacking.unstack(getattr(self, group)[position], slice(index, index + 1))
          x = self._scan([one], x, positions, segment_ids)
      return self.final_norm(x), None
    new_cache = []
    for i in range(self.config.num_layers):
      x, layer_cache = self.layer(i)(x, positions, cache=cache[i], segment_ids=segment_ids)
      new_cache.append(layer_cache)
    return self.final_norm(x), new_cache

  def _scan(self, group, x, positions, segment_ids):
    """Run the stacked modules of `group` as periods: scan over their leading axis, each step one module of
    each, with the remat policy applied to each period."""
    if not len(group):
      return x
    graphdefs, states = zip(*(nnx.split(m) for m in group))
    body = lambda x, states: (_run_period(graphdefs, x, states, positions, segment_ids), None)
    if self.remat != "none":
      body = jax.checkpoint(body, policy=REMAT_POLICIES[self.remat], prevent_cse=False)
    if jax.tree.leaves(states)[0].shape[0] == 1:  # one period: no loop to trace (the tail, or a shallow model)
      return body(x, tuple(jax.tree.map(lambda value: value[0], s) for s in states))[0]
    return jax.lax.scan(body, x, tuple(states))[0]

  def logits(self, hidden: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
    """Tied output projection, final soft-capping (Gemma 2), float32 result."""
    table = self.embedding[...].astype(self.config.dtype)
    logits = jnp.einsum("btd,vd->btv", hidden, table, preferred_element_type=jnp.float32)
    if self.config.final_softcap is not None:
      logits = jnp.tanh(logits / self.config.final_softcap) * self.config.final_softcap
    return constrain(logits, ("act_batch", "act_length", "act_vocab"))

  def __call__(self, tokens: Int[ArrayLike, "B T"], *, positions: Int[ArrayLike, "B T"] | None = None,
               segment_ids: Int[ArrayLike, "B T"] | None = None, cache: list[LayerCache] | None = None,
               ) -> Float[Array, "B T V"] | tuple[Float[Array, "B T V"], list[LayerCache]]:
    hidden, new_cache = self.hidden_states(tokens, positions=positions, segment_ids=segment_ids, cache=cache)
    logits = self.logits(hidden)
    return logits if cache is None else (logits, new_cache)

  def init_cache(self, batch: int, length: int, *, local_length: int | None = None, dtype=None) -> list[LayerCache]:
    """An empty KV cache: `length` entries on global layers (positions must stay below it) and
    `local_length` on local layers (default `length`). A local ring of sliding_window + C - 1 entries
    is exact for inputs of up to C tokens per call.
    """
    cfg = self.config
    local_length = length if local_length is None else min(local_length, length)
    if local_length < min(cfg.sliding_window, length):
      raise ValueError(f"local_length={local_length} is shorter than the sliding window ({cfg.sliding_window})")
    return [LayerCache.empty(batch, local_length if layer_type == LOCAL else length, cfg.num_kv_heads,
                             cfg.head_dim, dtype or cfg.dtype)
            for layer_type in cfg.layer_types]
