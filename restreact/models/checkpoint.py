"""orbax save/restore of a model's parameters (LoRA adapters included), with its config beside them."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from restreact.models.gemma.config import GemmaConfig
from restreact.models.gemma.model import Transformer
from restreact.models.lora import LoraConfig, apply_lora, lora_config_dict
from restreact.models.sharding import param_shardings

CONFIG_FILE = "model_config.json"


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def save_params(model: Transformer, directory: str | os.PathLike) -> None:
  """Save every parameter of `model` with orbax, plus its config (and LoRA config) as JSON. All processes call it."""
  directory = Path(directory).absolute()
  exists = directory.exists()
  _barrier("restreact.save_params.checked")  # nobody may see the directory process 0 is about to create
  if exists:
    raise FileExistsError(f"{directory} already exists; orbax will not overwrite a checkpoint")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / "params", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  if jax.process_index() == 0:
    lora = getattr(model, "lora_config", None)
    meta = {"model": dataclasses.asdict(model.config), "lora": lora_config_dict(lora) if lora else None}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
  _barrier("restreact.save_params.done")


def _read_meta(directory: Path) -> tuple[GemmaConfig, LoraConfig | None]:
  meta = json.loads((directory / CONFIG_FILE).read_text())
  raw = dict(meta["model"])
  raw["layer_types"], raw["eos_ids"] = tuple(raw["layer_types"]), tuple(raw["eos_ids"])
  lora = meta.get("lora")
  return GemmaConfig(**raw), (LoraConfig(lora["rank"], lora["alpha"], tuple(lora["targets"])) if lora else None)


def load_config(directory: str | os.PathLike) -> GemmaConfig:
  """The GemmaConfig saved by `save_params`."""
  return _read_meta(Path(directory))[0]


def restore_params(directory: str | os.PathLike, *, mesh: Mesh | None = None) -> Transformer:
  """Rebuild the model saved by `save_params` (adapters re-attached), sharded by the rules when a mesh is given."""
  directory = Path(directory).absolute()
  cfg, lora = _read_meta(directory)

  def build():
    model = Transformer(cfg, rngs=nnx.Rngs(0))
    return apply_lora(model, lora, rngs=nnx.Rngs(0)) if lora else model

  abstract = nnx.eval_shape(build)
  graphdef, state = nnx.split(abstract)
  if mesh is not None:
    shardings = param_shardings(abstract, mesh)
    target = jax.tree.map(lambda v, s: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=s),
                          nnx.to_pure_dict(state), nnx.to_pure_dict(shardings))
  else:
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=device), nnx.to_pure_dict(state))
  with ocp.StandardCheckpointer() as ckptr:
    restored = ckptr.restore(directory / "params", target)
  nnx.replace_by_pure_dict(state, restored)
  return nnx.merge(graphdef, state)
