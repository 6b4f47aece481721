"""Device mesh from config, and the logical-axis rules (`restreact.models.axis_rules`) applied to arrays.

Every parameter carries logical axis names in its `logical_axes` metadata and the main activations
are constrained by name too; `RULES` maps each name to mesh axes. A mesh axis that does not divide a
dimension is dropped for that array (replicated) rather than failing, so the same rules serve a
1-KV-head 1B model and a 16-KV-head 27B one. An experiment changes entries for a run with
`axis_rules(config.sharding_rules)` (as flax's `logical_axis_rules`): every sharding made inside the
block, and every activation constraint traced inside it, reads the changed table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from restreact.models.axis_rules import MESH_AXES, RULES, active_rules, axis_rules, rule_problems  # noqa: F401


def make_mesh(shape: Sequence[int] = (1, -1, 1), axes: Sequence[str] = MESH_AXES, devices=None) -> Mesh:
  """A mesh over `devices` (default: all); one entry of `shape` may be -1 for 'the rest'."""
  devices = list(jax.devices() if devices is None else devices)
  shape = list(shape)
  if len(shape) != len(axes):
    raise ValueError(f"mesh shape {shape} has {len(shape)} entries for axes {tuple(axes)}")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape}: at most one axis may be -1")
  known = math.prod(s for s in shape if s != -1)
  if known <= 0 or len(devices) % known:
    raise ValueError(f"mesh shape {shape} does not fit {len(devices)} devices")
  shape = [len(devices) // known if s == -1 else s for s in shape]
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh shape {shape} uses {math.prod(shape)} of {len(devices)} devices; use -1 for the rest")
  grid = np.asarray(devices).reshape(shape)
  return Mesh(grid, tuple(axes), axis_types=(AxisType.Auto,) * len(axes))


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int] | None = None,
                    mesh_shape: dict[str, int] | None = None, rules=None) -> PartitionSpec:
  """PartitionSpec for an array with these logical axis names (dropping axes that don't divide); `rules`
  default to the active table (`RULES`, or what `axis_rules` made it)."""
  table = dict(active_rules() if rules is None else rules)
  used: set[str] = set()
  spec = []
  for i, name in enumerate(names):
    if name is not None and name not in table:
      raise KeyError(f"logical axis {name!r} has no sharding rule; add it to restreact.models.axis_rules.RULES")
    target = table.get(name) if name else None
    axes = (target,) if isinstance(target, str) else tuple(target or ())
    kept: list[str] = []
    for axis in axes:
      if axis in used or (mesh_shape is not None and axis not in mesh_shape):
        continue
      if shape is not None and mesh_shape is not None and shape[i] % math.prod(mesh_shape[a] for a in kept + [axis]):
        continue  # would not divide evenly: replicate over this axis instead
      kept.append(axis)
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
  return PartitionSpec(*spec)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
  """Shard an activation by logical names inside `jax.set_mesh(mesh)`; a no-op without a mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  return jax.lax.with_sharding_constraint(x, logical_to_spec(names, x.shape, dict(mesh.shape)))


def param_shardings(model: nnx.Module, mesh: Mesh) -> nnx.State:
  """A state-shaped tree of NamedShardings for the model's variables, from their logical axes."""
  state = nnx.state(model)

  def sharding(var):
    names = var.get_metadata().get("logical_axes") or (None,) * len(var.get_value().shape)
    return NamedSharding(mesh, logical_to_spec(names, var.get_value().shape, dict(mesh.shape)))

  return jax.tree.map(sharding, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def shard_model(model: nnx.Module, mesh: Mesh) -> nnx.Module:
  """Place every variable of `model` on `mesh` as the rules say (in place); returns the model."""
  shardings = dict(nnx.to_flat_state(param_shardings(model, mesh)))
  placed = [(path, var.replace(jax.device_put(var.get_value(), shardings[path])))
            for path, var in nnx.to_flat_state(nnx.state(model))]
  nnx.update(model, nnx.from_flat_state(placed))
  return model
