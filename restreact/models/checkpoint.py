"""orbax save/restore of a model's parameters, with its config beside them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh

from restreact.models.gemma.config import GemmaConfig
from restreact.models.gemma.model import Transformer
from restreact.models.sharding import param_shardings

CONFIG_FILE = "model_config.json"


def save_params(model: Transformer, directory: str | os.PathLike) -> None:
  """Save every parameter of `model` (LoRA adapters included) with orbax, plus its config as JSON."""
  directory = Path(directory).absolute()
  if directory.exists():
    raise FileExistsError(f"{directory} already exists; orbax will not overwrite a checkpoint")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / "params", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  if jax.process_index() == 0:
    (directory / CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(model.config), indent=2))


def load_config(directory: str | os.PathLike) -> GemmaConfig:
  """The GemmaConfig saved by `save_params`."""
  raw = json.loads((Path(directory) / CONFIG_FILE).read_text())
  raw["layer_types"] = tuple(raw["layer_types"])
  return GemmaConfig(**raw)


def restore_params(directory: str | os.PathLike, *, mesh: Mesh | None = None) -> Transformer:
  """Rebuild the model saved by `save_params`, sharded by the rules when a mesh is given."""
  directory = Path(directory).absolute()
  cfg = load_config(directory)
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  if mesh is not None:
    shardings = param_shardings(abstract, mesh)
    target = jax.tree.map(lambda v, s: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s),
                          nnx.to_pure_dict(state), nnx.to_pure_dict(shardings))
  else:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=device), nnx.to_pure_dict(state))
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(directory / "params", target)
  nnx.replace_by_pure_dict(state, restored)
  return nnx.merge(graphdef, state)
