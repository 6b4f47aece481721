"""LoRA adapters on the decoder's projections: attach, merge, save and load alone.

Adapters are `nnx.LoRAParam` variables on `Projection` modules, so `nnx.LoRAParam` is the filter
for what trains; the base weights stay where they are (never copied). Written here rather than with
qwix: qwix's LoRA intercepts einsum/dot_general calls while tracing the model, which hides the
adapters' names from checkpoint export and gives them no logical sharding axes; attaching them to
our `Projection` keeps both explicit in a few dozen lines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from restreact.files import atomic_path
from restreact.models.gemma.layers import Projection
from restreact.models.sharding import logical_to_spec

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Rank, alpha (the update is scaled by alpha / rank) and which projections get adapters."""

  rank: int = 8
  alpha: float = 16.0
  targets: Sequence[str] = TARGETS

  def __post_init__(self):
    if self.rank <= 0:
      raise ValueError(f"LoRA rank must be positive, got {self.rank}")
    if unknown := set(self.targets) - set(TARGETS):
      raise ValueError(f"unknown LoRA targets {sorted(unknown)}; choose from {TARGETS}")
    if not self.targets:
      raise ValueError("LoRA targets are empty")

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def _projections(model: nnx.Module):
  for path, module in nnx.iter_graph(model):
    if isinstance(module, Projection) and path and path[-1] in TARGETS:
      yield path, module


def apply_lora(model: nnx.Module, config: LoraConfig, *, rngs: nnx.Rngs) -> nnx.Module:
  """Attach adapters with B = 0 to the target projections (in place), so the model is unchanged at first.

  Adapters are float32 whatever the base dtype: a bfloat16 B would round small updates away.
  """
  found = False
  for path, proj in _projections(model):
    if path[-1] not in config.targets:
      continue
    if proj.lora_a is not None:
      raise ValueError(f"{'/'.join(map(str, path))} already has a LoRA adapter")
    found = True
    layers, layer_axes = _stacked(proj)  # a stacked layer's projection: one adapter per layer, stacked alike
    a = jax.random.normal(rngs.params(), layers + proj.in_shape + (config.rank,), jnp.float32)
    proj.lora_a = nnx.LoRAParam(a / math.sqrt(math.prod(proj.in_shape)),
                                logical_axes=layer_axes + proj.in_axes + ("lora_rank",))
    proj.lora_b = nnx.LoRAParam(jnp.zeros(layers + (config.rank,) + proj.out_shape, jnp.float32),
                                logical_axes=layer_axes + ("lora_rank",) + proj.out_axes)
    proj.lora_scale = config.scale
    _place_like(proj.lora_a, proj.w)
    _place_like(proj.lora_b, proj.w)
  if not found:
    raise ValueError(f"no projection named {tuple(config.targets)} found in the model")
  model.lora_config = config
  return model


def _stacked(proj: Projection) -> tuple[tuple[int, ...], tuple[str, ...]]:
  """The leading (stacking) dimensions of a projection's weight and their logical axis names."""
  shape = proj.w.get_value().shape
  lead = len(shape) - len(proj.in_shape) - len(proj.out_shape)
  return tuple(shape[:lead]), tuple(proj.w.get_metadata()["logical_axes"][:lead])


def _place_like(var: nnx.Variable, like: nnx.Variable) -> None:
  """Put a new adapter on the devices of the weight it adapts (rules shard it when the model is sharded)."""
  value = like.get_value()
  sharding = None if isinstance(value, jax.core.Tracer) else getattr(value, "sharding", None)
  if isinstance(sharding, jax.sharding.NamedSharding):
    mesh = sharding.mesh
    spec = logical_to_spec(var.get_metadata()["logical_axes"], var.get_value().shape, dict(mesh.shape))
    var.set_value(jax.device_put(var.get_value(), jax.sharding.NamedSharding(mesh, spec)))


def _module_at(model: nnx.Module, path: Sequence) -> object:
  node = model
  for key in path:
    node = node[key] if isinstance(key, int) else getattr(node, key)
  return node


def merged_weight(model: nnx.Module, path: Sequence) -> jax.Array:
  """The parameter at `path`, with its projection's LoRA update added when it has one."""
  owner, leaf = _module_at(model, path[:-1]), path[-1]
  value = getattr(owner, leaf).get_value()
  if isinstance(owner, Projection) and leaf == "w" and owner.lora_a is not None:
    layers, _ = _stacked(owner)
    a = owner.lora_a.get_value().astype(jnp.float32).reshape(layers + (math.prod(owner.in_shape), -1))
    b = owner.lora_b.get_value().astype(jnp.float32).reshape(layers + (a.shape[-1], -1))
    delta = (a @ b).reshape(value.shape)  # per layer: [in, rank] @ [rank, out]
    value = (value.astype(jnp.float32) + owner.lora_scale * delta).astype(value.dtype)
  return value


def merge_lora(model: nnx.Module) -> nnx.Module:
  """Fold every adapter into its base weight and remove the adapters (in place)."""
  for path, proj in list(_projections(model)):
    if proj.lora_a is not None:
      proj.w.set_value(merged_weight(model, path + ("w",)))
  return remove_lora(model)


def remove_lora(model: nnx.Module) -> nnx.Module:
  """Drop every adapter without merging it (in place)."""
  for _, proj in list(_projections(model)):
    proj.lora_a = proj.lora_b = None
    proj.lora_scale = 0.0
  if hasattr(model, "lora_config"):
    del model.lora_config
  return model


def _host(value: jax.Array) -> np.ndarray:
  """The whole array on this host, gathered from every process on multi-host runs."""
  if jax.process_count() > 1:
    value = multihost_utils.process_allgather(value, tiled=True)
  return np.asarray(jax.device_get(value))


def lora_state(model: nnx.Module) -> dict[str, np.ndarray]:
  """The adapters alone, by '/'-joined path."""
  flat = nnx.to_flat_state(nnx.state(model, nnx.LoRAParam))
  return {"/".join(map(str, path)): _host(var.get_value()) for path, var in flat}


def save_lora(model: nnx.Module, path: str | os.PathLike) -> None:
  """Write only the adapters (and their config) to one small safetensors file; process 0 writes."""
  if getattr(model, "lora_config", None) is None:
    raise ValueError("the model has no LoRA adapters to save")
  tensors = lora_state(model)  # every process takes part in the gathers
  if jax.process_index() == 0:
    with atomic_path(path) as tmp:
      save_file(tensors, str(tmp), metadata={"lora_config": json.dumps(lora_config_dict(model.lora_config))})


def lora_config_dict(config: LoraConfig) -> dict:
  return {"rank": config.rank, "alpha": config.alpha, "targets": list(config.targets)}


def load_lora(model: nnx.Module, path: str | os.PathLike, *, rngs: nnx.Rngs | None = None) -> nnx.Module:
  """Attach adapters saved by `save_lora` to a base model (in place). On any mismatch the model is left as it was."""
  with safe_open(str(path), framework="numpy") as f:
    meta = f.metadata() or {}
  if "lora_config" not in meta:
    raise ValueError(f"{path} is not a restreact LoRA file (no lora_config metadata)")
  raw = json.loads(meta["lora_config"])
  tensors = load_file(str(path))
  apply_lora(model, LoraConfig(raw["rank"], raw["alpha"], tuple(raw["targets"])), rngs=rngs or nnx.Rngs(0))
  try:
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)))
    by_name = {"/".join(map(str, p)): p for p in flat}
    if missing := sorted(by_name.keys() - tensors.keys()):
      raise ValueError(f"{path}: missing adapters {missing[:5]}")
    if unexpected := sorted(tensors.keys() - by_name.keys()):
      raise ValueError(f"{path}: unexpected adapters {unexpected[:5]}")
    for name, p in by_name.items():
      old = flat[p].get_value()
      if tensors[name].shape != old.shape:
        raise ValueError(f"{path}: adapter {name} has shape {tensors[name].shape}, model expects {old.shape}")
    for name, p in by_name.items():
      old = flat[p].get_value()
      getattr(_module_at(model, p[:-1]), p[-1]).set_value(jax.device_put(tensors[name].astype(old.dtype), old.sharding))
  except Exception:
    remove_lora(model)
    raise
  return model
