"""How the decoder stores its layers: stacked by position in the layer-type pattern, so that a training
forward is one `jax.lax.scan` over the depth (MaxText's scanned layers) and compiles one period of layers,
whatever the depth.

Gemma 3 repeats five local (sliding-window) layers and one global layer; Gemma 2 alternates the two. With p
the pattern's period (the smallest p with layer_types[i] == layer_types[i % p] for every layer), `stacks[j]`
holds layers j, j + p, j + 2p, ... of the first p * (num_layers // p) layers, every parameter with a leading
"layers" axis, and `tail[j]` holds layer p * (num_layers // p) + j of the remaining num_layers % p, each with
a leading axis of one. Decoding with a KV cache loops over the layers and slices each from its stack instead
(local and global layers keep caches of different lengths, so their caches do not stack).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

LAYERS_AXIS = "layers"  # the logical name of the stacking axis (replicated by the sharding rules)


def period(layer_types: Sequence[str]) -> int:
  """The smallest p with layer_types[i] == layer_types[i % p] for every i."""
  n = len(layer_types)
  return next(p for p in range(1, n + 1) if all(layer_types[i] == layer_types[i % p] for i in range(n)))


def location(layer_types: Sequence[str], layer: int) -> tuple[tuple[str, int], int]:
  """Where layer `layer` lives: (("stacks" or "tail", position), index along the stack's leading axis)."""
  n, p = len(layer_types), period(layer_types)
  if not 0 <= layer < n:
    raise IndexError(f"layer {layer} of a {n}-layer model")
  full = n // p * p
  if layer < full:
    return ("stacks", layer % p), layer // p
  return ("tail", layer - full), 0


def stack(modules: Sequence[nnx.Module]) -> nnx.Module:
  """One module like `modules[0]` whose every variable stacks theirs along a new leading "layers" axis."""
  graphdef, first = nnx.split(modules[0])
  states = [first] + [nnx.split(m)[1] for m in modules[1:]]
  stacked = jax.tree.map(lambda *values: jnp.stack(values), *states)
  for _, var in nnx.to_flat_state(stacked):
    if (axes := var.get_metadata().get("logical_axes")) is not None:
      var.set_metadata(logical_axes=(LAYERS_AXIS,) + tuple(axes))
  return nnx.merge(graphdef, stacked)


def unstack(module: nnx.Module, index) -> nnx.Module:
  """The layer at `index` of a stacked module (a view under jit: XLA slices, it does not copy the stack)."""
  graphdef, state = nnx.split(module)
  return nnx.merge(graphdef, jax.tree.map(lambda value: value[index], state))
