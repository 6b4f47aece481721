"""Top-k log-probs of each generated token's position, for requests that ask for alternatives (logprobs=k > 0).

The engine keeps only the log-prob of the token it sampled; the alternatives come from one forward pass over
prompt + completion afterwards (on the engine's thread, so device work never overlaps). Lengths are padded to
powers of two (at least 64, at most max_len): a few compilations, not one per request. Padding sits after the
real tokens, which causal attention never lets them see.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from restreact.models.gemma.model import Transformer

MAX_K = 20


@functools.partial(jax.jit, static_argnums=(0,))
def _top(graphdef, params, tokens):
  logits = nnx.merge(graphdef, params)(tokens)
  values, ids = jax.lax.top_k(jax.nn.log_softmax(logits, axis=-1), MAX_K)
  return values, ids


class TopLogprobs:
  """`scorer(prompt, completion, k)` -> for each completion token, the k most likely (id, log-prob) there."""

  def __init__(self, model: Transformer, *, max_len: int, mesh=None, pad_id: int = 0):
    self._graphdef, self._params = nnx.split(model)
    self.max_len, self.mesh, self.pad_id = max_len, mesh, pad_id

  def __call__(self, prompt: list[int], completion: list[int], k: int) -> list[list[tuple[int, float]]]:
    if not completion or k <= 0:
      return [[] for _ in completion]
    if not 0 < k <= MAX_K:
      raise ValueError(f"k={k} must be in [1, {MAX_K}]")
    tokens = list(prompt) + list(completion)[:-1]  # position p predicts token p + 1
    length = min(self.max_len, max(64, 1 << (len(tokens) - 1).bit_length()))
    if len(tokens) > length:
      raise ValueError(f"{len(tokens)} tokens exceed max_len={self.max_len}")
    padded = np.full((1, length), self.pad_id, np.int32)
    padded[0, :len(tokens)] = tokens
    if self.mesh is None:
      values, ids = _top(self._graphdef, self._params, padded)
    else:
      with jax.set_mesh(self.mesh):
        values, ids = _top(self._graphdef, self._params, jnp.asarray(padded))
    start = len(prompt) - 1
    values, ids = np.asarray(values[0, start:len(tokens), :k]), np.asarray(ids[0, start:len(tokens), :k])
    return [[(int(i), float(v)) for i, v in zip(row_ids, row_values)] for row_ids, row_values in zip(ids, values)]
