"""The Gemma 2 / Gemma 3 text decoder in Flax NNX, one class for both families."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

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

  def __call__(self, x, positions, *, cache=None, segment_ids=None):
    h, cache = self.attn(self.pre_attn_norm(x), positions, cache=cache, segment_ids=segment_ids)
    x = x + self.post_attn_norm(h)
    x = x + self.post_mlp_norm(self.mlp(self.pre_mlp_norm(x)))
    return constrain(x, ("act_batch", "act_length", "act_embed")), cache


def _block_output(block: Block, x, positions, segment_ids):
  return block(x, positions, segment_ids=segment_ids)[0]


class Transformer(nnx.Module):
  """Gemma decoder. `model(tokens)` -> float32 logits [batch, length, vocab] for positions 0..length-1.

  With `cache=` (from `init_cache`) it also returns the updated cache; `positions` then say where
  each token sits (per row, so rows may be at different positions; -1 marks padding). Positions
  must stay below the cache length on global layers; the engine enforces that.
  """

  def __init__(self, cfg: GemmaConfig, *, rngs: nnx.Rngs):
    self.config = cfg
    embedding = jax.random.normal(rngs.params(), (cfg.vocab_size, cfg.embed_dim), jnp.float32)
    self.embedding = param((embedding / cfg.embed_dim ** 0.5).astype(cfg.param_dtype), ("vocab", "embed"))
    self.layers = nnx.List([Block(cfg, lt, rngs=rngs) for lt in cfg.layer_types])
    self.final_norm = RMSNorm(cfg.embed_dim, eps=cfg.rms_norm_eps, param_dtype=cfg.param_dtype)
    self.remat = "none"  # a key of REMAT_POLICIES; applies without a cache (training), set by the trainer

  def embed(self, tokens: jax.Array) -> jax.Array:
    """Token embeddings scaled by sqrt(embed_dim), the scale rounded to the parameter dtype."""
    table = self.embedding[...]
    scale = jnp.asarray(self.config.embed_dim ** 0.5, table.dtype)
    return (table[tokens] * scale).astype(self.config.dtype)

  def hidden_states(self, tokens, *, positions=None, segment_ids=None, cache=None):
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
    if cache is not None and len(cache) != len(self.layers):
      raise ValueError(f"cache has {len(cache)} layers, model has {len(self.layers)}")
    x = constrain(self.embed(tokens), ("act_batch", "act_length", "act_embed"))
    if cache is None and self.remat != "none":
      if self.remat not in REMAT_POLICIES:
        raise ValueError(f"remat={self.remat!r}; choose one of {', '.join(REMAT_POLICIES)}")
      for block in self.layers:  # a pure function of the block's state, so jax.checkpoint sees every input
        graphdef, state = nnx.split(block)
        run = jax.checkpoint(lambda s, *a, g=graphdef: _block_output(nnx.merge(g, s), *a),
                             policy=REMAT_POLICIES[self.remat])
        x = run(state, x, positions, segment_ids)
      return self.final_norm(x), None
    new_cache = []
    for i, block in enumerate(self.layers):
      x, layer_cache = block(x, positions, cache=None if cache is None else cache[i], segment_ids=segment_ids)
      new_cache.append(layer_cache)
    return self.final_norm(x), (None if cache is None else new_cache)

  def logits(self, hidden: jax.Array) -> jax.Array:
    """Tied output projection, final soft-capping (Gemma 2), float32 result."""
    table = self.embedding[...].astype(self.config.dtype)
    logits = jnp.einsum("btd,vd->btv", hidden, table, preferred_element_type=jnp.float32)
    if self.config.final_softcap is not None:
      logits = jnp.tanh(logits / self.config.final_softcap) * self.config.final_softcap
    return constrain(logits, ("act_batch", "act_length", "act_vocab"))

  def __call__(self, tokens, *, positions=None, segment_ids=None, cache=None):
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
