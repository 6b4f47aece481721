"""`from_pretrained` / `save_pretrained`: Hugging Face checkpoint directories in and out.

Import streams parameters one at a time from the safetensors files onto their target shardings (a
stacked parameter gathers its layers' tensors first), so the host holds about one parameter, never the
model. Export gathers and writes one tensor at a time (LoRA adapters merged in), shard by shard.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh
from tqdm.auto import tqdm

from restreact.models.gemma.config import GemmaConfig
from restreact.models.gemma.hf_config import from_hf_config, to_hf_config
from restreact.models.gemma.hf_weights import TIED_OUTPUT, canonical_name, tensor_maps
from restreact.models.gemma.model import Transformer
from restreact.models.lora import merged_weight
from restreact.models.safetensors_io import NP_DTYPES, CheckpointReader, write_sharded
from restreact.models.sharding import param_shardings
from restreact.models.tokenizer import TOKENIZER_FILE, Tokenizer

log = logging.getLogger(__name__)


class CheckpointMismatchError(ValueError):
  """A checkpoint's tensors do not match the architecture its config describes."""


def read_config(path: str | os.PathLike, *, dtype: str = "float32") -> GemmaConfig:
  """The GemmaConfig of a HF checkpoint directory."""
  config_file = Path(path) / "config.json"
  if not config_file.exists():
    raise FileNotFoundError(f"{path}: no config.json (expected a Hugging Face checkpoint directory)")
  try:
    raw = json.loads(config_file.read_text(encoding="utf-8"))
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{config_file}: not valid JSON ({e})") from None
  return from_hf_config(raw, param_dtype=dtype)


def from_pretrained(path: str | os.PathLike, *, dtype: str = "float32", mesh: Mesh | None = None,
                    progress: bool = True) -> tuple[Transformer, Tokenizer | None]:
  """Load a Gemma 2/3 HF checkpoint directory as (model, tokenizer); tokenizer is None without tokenizer.model.

  `dtype` is the parameter and compute dtype; with a `mesh`, parameters land sharded by the rules.
  """
  if dtype not in NP_DTYPES:
    raise ValueError(f"dtype={dtype!r}; choose one of {sorted(NP_DTYPES)}")
  cfg = read_config(path, dtype=dtype)
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  shardings = dict(nnx.to_flat_state(param_shardings(abstract, mesh))) if mesh is not None else {}
  graphdef, state = nnx.split(abstract)
  flat = dict(nnx.to_flat_state(state))
  maps = tensor_maps(cfg)
  with CheckpointReader(path) as reader:
    names = _match_names(reader, maps, cfg, path)
    target = NP_DTYPES[dtype]
    by_path: dict[tuple, list] = {}
    for m in maps:
      by_path.setdefault(m.path, []).append(m)
    bar = tqdm(total=len(maps), desc=f"loading {Path(path).name}", unit="tensor", disable=not progress)
    for param_path, parts in by_path.items():
      host = [m.to_ours(reader.read(names[m.hf_name])).astype(target, copy=False) for m in parts]
      host = host[0] if parts[0].index is None else np.stack([host[i] for i in np.argsort([m.index for m in parts])])
      if mesh is None:
        value = jnp.asarray(host)
      else:
        value = jax.make_array_from_callback(host.shape, shardings[param_path], lambda index, a=host: a[index])
      flat[param_path] = flat[param_path].replace(value)
      bar.update(len(parts))
      del host
    bar.close()
  model = nnx.merge(graphdef, nnx.from_flat_state(flat))
  tokenizer_file = Path(path) / TOKENIZER_FILE
  tokenizer = Tokenizer(tokenizer_file) if tokenizer_file.exists() else None
  if tokenizer is None:
    log.warning("%s has no %s; returning tokenizer=None", path, TOKENIZER_FILE)
  return model, tokenizer


def _match_names(reader: CheckpointReader, maps, cfg: GemmaConfig, path) -> dict[str, str]:
  """canonical HF name -> name in the file, after checking nothing is missing, extra or misshapen."""
  names: dict[str, str] = {}
  for stored in reader.names():
    canonical = canonical_name(stored)
    if canonical is not None:
      names[canonical] = stored
  expected = {m.hf_name for m in maps}
  missing = sorted(expected - names.keys())
  unexpected = sorted(names.keys() - expected - {TIED_OUTPUT})
  problems = []
  if missing:
    problems.append(f"missing tensors: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else ""))
  if unexpected:
    problems.append(f"unexpected tensors: {', '.join(unexpected[:10])}" + (" ..." if len(unexpected) > 10 else ""))
  for m in maps:
    if m.hf_name in names and reader.shape(names[m.hf_name]) != m.hf_shape:
      problems.append(f"tensor {names[m.hf_name]} has shape {reader.shape(names[m.hf_name])}, "
                      f"config.json implies {m.hf_shape}")
  if TIED_OUTPUT in names and reader.shape(names[TIED_OUTPUT]) != (cfg.vocab_size, cfg.embed_dim):
    problems.append(f"tensor {names[TIED_OUTPUT]} has shape {reader.shape(names[TIED_OUTPUT])}, "
                    f"the tied embedding is {(cfg.vocab_size, cfg.embed_dim)}")
  if problems:
    raise CheckpointMismatchError(f"{path}: " + "; ".join(problems))
  return names


def save_pretrained(model: Transformer, path: str | os.PathLike, *, dtype: str | None = None,
                    tokenizer: Tokenizer | None = None, max_shard_bytes: int = 2 << 30) -> None:
  """Write `model` as a HF checkpoint directory (config.json + safetensors) that transformers loads.

  LoRA adapters are merged into the exported weights. `dtype` defaults to the parameter dtype.
  On multi-host runs every process must call this; process 0 writes.
  """
  cfg = model.config
  dtype = dtype or cfg.param_dtype
  if dtype not in NP_DTYPES:
    raise ValueError(f"dtype={dtype!r}; choose one of {sorted(NP_DTYPES)}")
  target = NP_DTYPES[dtype]
  maps = {m.hf_name: m for m in tensor_maps(cfg)}
  writer = jax.process_index() == 0

  bar = tqdm(total=len(maps), desc=f"saving {Path(path).name}", unit="tensor", disable=not writer)

  def produce(name: str) -> np.ndarray:
    bar.update(1)
    m = maps[name]
    value = merged_weight(model, m.path)
    if m.index is not None:
      value = value[m.index]
    host = multihost_utils.process_allgather(value, tiled=True) if jax.process_count() > 1 else value
    return m.to_hf(np.asarray(jax.device_get(host)).astype(np.float32)).astype(target)

  if not writer:
    for name in maps:  # take part in the collective gathers
      produce(name)
    bar.close()
    multihost_utils.sync_global_devices("restreact.save_pretrained")
    return
  Path(path).mkdir(parents=True, exist_ok=True)
  itemsize = np.dtype(target).itemsize
  listing = [(name, m.hf_shape, itemsize) for name, m in maps.items()]
  write_sharded(path, listing, produce, max_shard_bytes=max_shard_bytes)
  bar.close()
  (Path(path) / "config.json").write_text(json.dumps(to_hf_config(cfg, torch_dtype=dtype), indent=2))
  if tokenizer is not None:
    tokenizer.save(Path(path) / TOKENIZER_FILE)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("restreact.save_pretrained")
