"""Reading and writing (possibly sharded) safetensors checkpoints one tensor at a time."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors.numpy import save_file

from restreact.files import atomic_path, write_atomic

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
NP_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16}  # the parameter dtypes a model may load in


# safetensors dtype tags -> numpy dtypes (bfloat16 through ml_dtypes).
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class _File:
  """One safetensors file: its JSON header, and tensors as read-only memory maps of the file (no copy)."""

  def __init__(self, path: Path):
    self.path = path
    with open(path, "rb") as f:
      size = int.from_bytes(f.read(8), "little")
      if size <= 0 or size > 100 << 20:
        raise ValueError(f"{path} is not a safetensors file (header size {size})")
      try:
        header = json.loads(f.read(size))
      except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: unreadable safetensors header ({e})") from None
    self.data_start = 8 + size
    header.pop("__metadata__", None)
    self.entries = header
    self.file_size = path.stat().st_size
    ends = [e["data_offsets"][1] for e in header.values() if isinstance(e, dict) and "data_offsets" in e]
    if ends and self.data_start + max(ends) > self.file_size:  # a download cut short
      raise ValueError(f"{path}: truncated: its header describes {self.data_start + max(ends):,} bytes, the file "
                       f"has {self.file_size:,}; download it again")

  def shape(self, name: str) -> tuple[int, ...]:
    return tuple(self.entries[name]["shape"])

  def read(self, name: str) -> np.ndarray:
    entry = self.entries[name]
    if entry["dtype"] not in _DTYPES:
      raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {entry['dtype']}")
    dtype, shape = np.dtype(_DTYPES[entry["dtype"]]), tuple(entry["shape"])
    begin, end = entry["data_offsets"]
    if end - begin != int(np.prod(shape)) * dtype.itemsize:
      raise ValueError(f"{self.path}: tensor {name} has {end - begin} bytes for shape {shape} of {dtype}")
    if not shape or end == begin:
      with open(self.path, "rb") as f:
        f.seek(self.data_start + begin)
        return np.frombuffer(f.read(end - begin), dtype).reshape(shape)
    return np.memmap(self.path, dtype=dtype, mode="r", offset=self.data_start + begin, shape=shape)


class CheckpointReader(contextlib.AbstractContextManager):
  """Lazy access to every tensor of a HF checkpoint directory; a tensor is read only when asked for.

  Tensors come back as memory maps of the files, so the host holds the pages of the tensor in use,
  not the checkpoint.
  """

  def __init__(self, directory: str | os.PathLike):
    self.directory = Path(directory)
    if (self.directory / INDEX).exists():
      weight_map = json.loads((self.directory / INDEX).read_text())["weight_map"]
      files = sorted(set(weight_map.values()))
    elif (self.directory / SINGLE).exists():
      files = [SINGLE]
    else:
      raise FileNotFoundError(f"{self.directory}: no {SINGLE} or {INDEX}")
    if missing := [name for name in files if not (self.directory / name).exists()]:
      raise FileNotFoundError(f"{self.directory}: {INDEX} names {missing}, which are missing")
    self._where: dict[str, _File] = {}
    for name in files:
      handle = _File(self.directory / name)
      for key in handle.entries:
        if key in self._where:
          raise ValueError(f"{self.directory}: tensor {key} appears in more than one file")
        self._where[key] = handle

  def __exit__(self, *exc):
    self._where.clear()

  def names(self) -> list[str]:
    """All tensor names in the checkpoint."""
    return list(self._where)

  def shape(self, name: str) -> tuple[int, ...]:
    """A tensor's shape, from the file header (no data read)."""
    return self._where[name].shape(name)

  def read(self, name: str) -> np.ndarray:
    """One tensor, memory-mapped from its file (read-only)."""
    return self._where[name].read(name)


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
    with atomic_path(directory / file) as tmp:
      save_file(shard, str(tmp), metadata={"format": "pt", **(metadata or {})})
    weight_map.update({name: file for name in names})
    del shard
  if len(files) > 1:
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write_atomic(directory / INDEX, json.dumps(index, indent=2))
  elif (directory / INDEX).exists():
    (directory / INDEX).unlink()  # a stale index from an earlier sharded export would shadow the new file
  return files

