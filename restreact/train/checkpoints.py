"""Every orbax checkpoint: a model with its config (`save_params` / `restore_params`), and a training run's: the
latest few for resuming, the best one by eval score, and SIGTERM handling.

`workdir/checkpoints/<step>/` holds the whole TrainState (weights, masters, optimizer state, step,
PRNG key) and, as JSON, the data position. `workdir/best/<step>/` holds only the trainable weights of
the checkpoint with the best eval score. orbax writes each step to a temporary directory and renames
it when complete, so a run killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from restreact import multihost
from restreact.models import GemmaConfig, LoraConfig, Transformer, apply_lora
from restreact.models.lora import lora_config_dict
from restreact.models.sharding import param_shardings

CHECKPOINTS, BEST = "checkpoints", "best"


def _name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  raise TypeError(f"unexpected pytree key {key!r}")


def to_nested(tree) -> dict:
  """Arrays of any pytree as nested dicts keyed by path (orbax's native form; independent of node classes)."""
  nested: dict = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    node = nested
    names = [_name(k) for k in path] or ["value"]
    for name in names[:-1]:
      node = node.setdefault(name, {})
    if names[-1] in node:
      raise ValueError(f"two leaves map to checkpoint key {'/'.join(names)}")
    node[names[-1]] = leaf
  return nested


def from_nested(like, nested: dict):
  """Put the arrays of `nested` (from `to_nested`) back into the structure of `like`."""
  paths, treedef = jax.tree_util.tree_flatten_with_path(like)
  leaves = []
  for path, _ in paths:
    node = nested
    for name in [_name(k) for k in path] or ["value"]:
      node = node[name]
    leaves.append(node)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def abstract(tree, shardings):
  """ShapeDtypeStructs with target shardings, the restore target for orbax."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


class Checkpoints:
  """The run's two orbax CheckpointManagers: latest `keep` states, and the best trainable weights by eval score."""

  def __init__(self, workdir: str | Path, *, keep: int, eval_mode: str):
    workdir = Path(workdir).absolute()
    self.latest = ocp.CheckpointManager(
        workdir / CHECKPOINTS, item_names=("state", "data"),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
    self.best = ocp.CheckpointManager(
        workdir / BEST, item_names=("params",),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, best_fn=lambda m: m["score"], best_mode=eval_mode,
                                             keep_checkpoints_without_metrics=False, create=True))

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state, data: dict[str, Any]) -> None:
    """Start saving `state` and the data position `data` at `step` (asynchronous; `wait` to finish)."""
    # A copy of `data`: the loop moves on (and changes its position) while orbax writes in the background.
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(to_nested(state)),
                                                   data=ocp.args.JsonSave(copy.deepcopy(data))), force=True)

  def restore(self, step: int, like, shardings) -> tuple[Any, dict[str, Any]]:
    """The state saved at `step`, placed on `shardings`, and its data position."""
    target = to_nested(abstract(like, shardings))
    restored = self.latest.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                                 data=ocp.args.JsonRestore()))
    return from_nested(like, restored["state"]), restored["data"]

  def save_best(self, step: int, params, score: float) -> None:
    """Offer the trainable weights at `step` with its eval score; orbax keeps the best one only. A step offered
    before (a run resumed after the eval, before its next checkpoint) is the same weights: kept as it is."""
    if step in self.best.all_steps():
      return
    self.best.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(to_nested(params))),
                   metrics={"score": float(score)}, force=True)

  def best_step(self) -> int | None:
    return self.best.best_step()

  def latest_path(self) -> Path | None:
    step = self.latest_step()
    return None if step is None else Path(self.latest.directory) / str(step)

  def best_path(self) -> Path | None:
    step = self.best_step()
    return None if step is None else Path(self.best.directory) / str(step)

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def restore_trainable(directory: str | Path, like, shardings):
  """The trainable weights saved in a `best/<step>` or `checkpoints/<step>` directory, in the structure of `like`."""
  directory = Path(directory)
  target = abstract(like, shardings)
  with ocp.StandardCheckpointer() as ckptr:
    if (directory / "params").exists():
      return from_nested(like, ckptr.restore(directory / "params", to_nested(target)))
    if (directory / "state").exists():  # a resume checkpoint: take the params out of the whole state
      meta = ckptr.metadata(directory / "state")
      tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta.tree
      full = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree)
      full["params"] = to_nested(target)
      return from_nested(like, ckptr.restore(directory / "state", full)["params"])
  raise FileNotFoundError(f"{directory} holds no restreact training checkpoint (no params/ or state/)")


class Preemption:
  """SIGTERM (a preemption notice) as the train loop's question after each step: save here and stop?

  One process: a SIGTERM handler sets a flag. Several: JAX's preemption service owns SIGTERM (its notifier
  tells every process) and `reached_preemption_sync_point(step)` is true on all of them at one step, the one
  after the furthest any had reached, so that all save the same step (orbax's own multi-host rule). Without
  the service (turned off), the processes agree on the flag with an allgather every step."""

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._synced = False

  def __enter__(self) -> Preemption:
    self._synced = multihost.preemption_service()
    if not self._synced and threading.current_thread() is threading.main_thread():  # handlers: main thread only
      self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._flag.set())
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def requested(self, step: int) -> bool:
    """Whether to save `step` and stop: every process gives the same answer at the same step. Every process
    must ask at every step from the same first step (the preemption service counts them)."""
    if self._synced:
      return multihost_utils.reached_preemption_sync_point(step)
    flag = self._flag.is_set()
    if jax.process_count() > 1:
      # numpy, not jnp: under the train loop's jax.set_mesh a jnp array would be a global one, not this process's.
      flag = bool(multihost_utils.process_allgather(np.asarray(flag)).any())
    return flag


# A model with its config: a snapshot any process group can restore, onto a mesh or one device.

CONFIG_FILE = "model_config.json"


def save_params(model: Transformer, directory: str | os.PathLike) -> None:
  """Save every parameter of `model` with orbax, plus its config (and LoRA config) as JSON. All processes call it."""
  directory = Path(directory).absolute()
  exists = directory.exists()
  multihost.barrier("restreact.save_params.checked")  # nobody may see the directory process 0 is about to create
  if exists:
    raise FileExistsError(f"{directory} already exists; orbax will not overwrite a checkpoint")
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / "params", nnx.to_pure_dict(nnx.state(model, nnx.Param)))
  if jax.process_index() == 0:
    lora = getattr(model, "lora_config", None)
    meta = {"model": dataclasses.asdict(model.config), "lora": lora_config_dict(lora) if lora else None}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
  multihost.barrier("restreact.save_params.done")


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
