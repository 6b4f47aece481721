"""Small helpers shared by the model tests."""

import jax
import numpy as np
from flax import nnx

from restreact.models import GemmaConfig, Transformer


def random_model(preset: str, seed: int = 0, **overrides) -> Transformer:
  """A tiny model with random, non-zero norm weights (zeros would hide norm bugs)."""
  model = Transformer(GemmaConfig.preset(preset, **overrides), rngs=nnx.Rngs(seed))
  rng = np.random.default_rng(seed)
  for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
    if path[-1] == "scale":
      var.set_value(jax.numpy.asarray(rng.normal(0, 0.5, var.get_value().shape), var.get_value().dtype))
  return model


forward = nnx.jit(lambda model, tokens: model(tokens))
