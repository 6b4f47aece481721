"""What the server serves: a Hugging Face Gemma 2/3 folder, or a model that a ReST run fine-tuned.

- A folder with config.json (Google's `-it` checkpoints, a pipeline's `export/<size>/`, anything `hf download`
  wrote) loads with `from_pretrained`; it must hold tokenizer.model.
- A run's train stage, `RUN/<generation>/train_<size>` (its best checkpoint by dev auto-eval) or one checkpoint
  under it (`.../train/best/<step>`, `.../train/checkpoints/<step>`), loads as the pipeline loads it: the run's
  config from `RUN/runs.jsonl`, its tokenizer, the size's base model with the trained weights put in.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import ml_collections

from restreact.generate import Engine
from restreact.models import Tokenizer, Transformer, from_pretrained
from restreact.models.chat import detect_chat
from restreact.runner import pretrain
from restreact.runner.config_check import checkpoint_problems
from restreact.runner.launch_record import RECORD_FILE
from restreact.runner.model_store import ModelStore
from restreact.runner.plan import GENERATIONS, SIZES
from restreact.runner.setup import tokenizer_path


@dataclasses.dataclass
class Loaded:
  """A model ready to serve, its tokenizer, the name it is served under, and whether it was tuned on chat turns."""

  model: Transformer
  tokenizer: Tokenizer
  name: str
  chat: bool


def load(path: str | Path, *, dtype: str = "bfloat16", mesh=None) -> Loaded:
  """Load a checkpoint folder or a run's trained model (module docstring); ValueError saying what is wrong."""
  path = Path(path).absolute()
  if not path.is_dir():
    raise ValueError(f"--checkpoint {path}: not a folder")
  if (path / "config.json").is_file():
    if problems := checkpoint_problems(str(path)):
      raise ValueError(f"--checkpoint {path}: {'; '.join(problems)}")
    model, tokenizer = from_pretrained(path, dtype=dtype, mesh=mesh)
    return Loaded(model, tokenizer, path.name, detect_chat(path)[0])
  root = next((p for p in (path, *path.parents) if (p / RECORD_FILE).is_file()), None)
  if root is None:
    raise ValueError(f"--checkpoint {path}: neither a Hugging Face checkpoint folder (config.json, *.safetensors, "
                     f"tokenizer.model) nor inside a run folder (one with {RECORD_FILE})")
  return _from_run(root, path, mesh)


def _from_run(root: Path, path: Path, mesh) -> Loaded:
  parts = path.relative_to(root).parts
  if len(parts) < 2 or parts[0] not in GENERATIONS or parts[1][len("train_"):] not in SIZES \
      or not parts[1].startswith("train_"):
    raise ValueError(f"--checkpoint {path}: inside run {root}, point at a train stage, "
                     f"{root}/<{'|'.join(GENERATIONS)}>/train_<{'|'.join(SIZES)}>, or a checkpoint under it")
  ref, size, stage = f"{parts[0]}:{parts[1][len('train_'):]}", parts[1][len("train_"):], root / parts[0] / parts[1]
  if len(parts) > 2:
    checkpoint = path
    if not path.name.isdigit():
      raise ValueError(f"--checkpoint {path}: a checkpoint is a step folder (train/best/<step> or "
                       "train/checkpoints/<step>)")
  else:
    result = stage / "result.json"
    if not result.is_file():
      raise ValueError(f"--checkpoint {path}: {result} is missing; has the stage finished?")
    checkpoint = stage / json.loads(result.read_text())["checkpoint"]
  config = _run_config(root)
  tokenizer = Tokenizer(tokenizer_path(config, root / "setup"))
  store = ModelStore(config, tokenizer, mesh=mesh)
  if (pretrained := pretrain.finished(config, root, size)) is not None:
    store.pretrained[size] = pretrained
  store.trained[ref] = checkpoint
  return Loaded(store.load(ref), tokenizer, f"{root.name}/{ref}", store.chat(size))


def _run_config(root: Path) -> ml_collections.ConfigDict:
  """The resolved config of the run's last launch, as its run record holds it."""
  starts = [json.loads(line) for line in (root / RECORD_FILE).read_text().splitlines() if '"event": "start"' in line]
  if not starts:
    raise ValueError(f"{root / RECORD_FILE} holds no launch record")
  config = ml_collections.ConfigDict(starts[-1]["config"])
  for spec in config.models.values():  # JSON gave lists; model configs hold tuples (they are hashed)
    spec.overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.overrides.items()}
  return config


def make_engine(loaded: Loaded, *, num_slots: int, max_len: int | None = None, mesh=None, **options) -> Engine:
  """An engine for the server: prompts taken as given (each route wraps its own), a reply ending at EOS or at
  <end_of_turn> (which in a Gemma tokenizer only ever ends a turn). `max_len` defaults to min(8192, the model's)."""
  cfg, tok = loaded.model.config, loaded.tokenizer
  eos = set(cfg.eos_ids) | {tok.eos_id} | ({tok.end_of_turn_id} if tok.end_of_turn_id is not None else set())
  max_len = max_len or min(8192, cfg.max_position_embeddings)
  return Engine(loaded.model, tok, num_slots=num_slots, max_len=max_len, eos_ids=sorted(eos), mesh=mesh,
                chat=False, **options)
