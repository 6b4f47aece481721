"""The small Gemma 3 (7.8M parameters) that the engine benchmarks share, and its random weights."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from restreact.models import GemmaConfig, Transformer
from restreact.models.gemma.config import gemma3_layer_types

SMALL = GemmaConfig.preset("gemma3-1b").replace(
    vocab_size=8192, embed_dim=256, hidden_dim=1024, num_layers=6, num_heads=4, num_kv_heads=1, head_dim=64,
    query_pre_attn_scalar=64, sliding_window=512, layer_types=gemma3_layer_types(6))


def random_model(cfg: GemmaConfig = SMALL, seed: int = 0) -> Transformer:
  """Random weights with random norm scales (zero scales would hide a norm that a peer gets wrong)."""
  model = Transformer(cfg, rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  state = nnx.state(model, nnx.Param)
  for path, leaf in nnx.to_flat_state(state):
    if any("norm" in str(p) for p in path):
      leaf[...] = jax.numpy.asarray(rng.normal(0, 0.3, leaf.shape), leaf.dtype)
  nnx.update(model, state)
  return model
