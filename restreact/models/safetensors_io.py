"""Reading and writing (possibly sharded) safetensors checkpoints one tensor at a time."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class CheckpointReader(contextlib.AbstractContextManager):
  """Lazy access to every tensor of a HF checkpoint directory; nothing is read until asked for."""

  def __init__(self, directory: str | os.PathLike):
    self.directory = Path(directory)
    if (self.directory / INDEX).exists():
      weight_map = json.loads((self.directory / INDEX).read_text())["weight_map"]
      files = sorted(set(weight_map.values()))
    elif (self.directory / SINGLE).exists():
      files = [SINGLE]
    else:
      raise FileNotFoundError(f"{self.directory}: no {SINGLE} or {INDEX}")
    self._stack = contextlib.ExitStack()
    self._where: dict[str, object] = {}
    for name in files:
      if not (self.directory / name).exists():
        raise FileNotFoundError(f"{self.directory}: {INDEX} names {name}, which is missing")
      handle = self._stack.enter_context(safe_open(str(self.directory / name), framework="numpy"))
      for key in handle.keys():
        self._where[key] = handle

  def __exit__(self, *exc):
    self._stack.close()

  def names(self) -> list[str]:
    """All tensor names in the checkpoint."""
    return list(self._where)

  def shape(self, name: str) -> tuple[int, ...]:
    """A tensor's shape, from the file header (no data read)."""
    return tuple(self._where[name].get_slice(name).get_shape())

  def read(self, name: str) -> np.ndarray:
    """One tensor as a numpy array (bfloat16 through ml_dtypes)."""
    return self._where[name].get_tensor(name)


def write_sharded(directory: str | os.PathLike, tensors: Iterable[tuple[str, tuple[int, ...], int]],
                  produce, *, max_shard_bytes: int = 2 << 30, metadata: dict[str, str] | None = None) -> list[str]:
  """Write tensors into shards of at most `max_shard_bytes`, holding one shard in memory at a time.

  `tensors` lists (name, shape, itemsize) up front so file names can carry the shard count;
  `produce(name)` returns the array. Files are written under a temporary name and renamed, so an
  interrupted export never leaves a truncated file that looks complete.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  plan, current, size = [], [], 0
  for name, shape, itemsize in tensors:
    nbytes = int(np.prod(shape)) * itemsize
    if current and size + nbytes > max_shard_bytes:
      plan.append(current)
      current, size = [], 0
    current.append(name)
    size += nbytes
  if current:
    plan.append(current)
  files = [SINGLE] if len(plan) == 1 else [f"model-{i + 1:05d}-of-{len(plan):05d}.safetensors"
                                          for i in range(len(plan))]
  weight_map, total = {}, 0
  for file, names in zip(files, plan):
    shard = {name: np.ascontiguousarray(produce(name)) for name in names}
    total += sum(a.nbytes for a in shard.values())
    _atomic(directory / file, lambda tmp: save_file(shard, str(tmp), metadata={"format": "pt", **(metadata or {})}))
    weight_map.update({name: file for name in names})
    del shard
  if len(files) > 1:
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    _atomic(directory / INDEX, lambda tmp: tmp.write_text(json.dumps(index, indent=2)))
  elif (directory / INDEX).exists():
    (directory / INDEX).unlink()  # a stale index from an earlier sharded export would shadow the new file
  return files


def _atomic(target: Path, write) -> None:
  tmp = target.with_name(target.name + ".tmp")
  write(tmp)
  os.replace(tmp, target)

