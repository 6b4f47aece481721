"""Supervised fine-tuning on per-step examples: LoRA or full, sharded, preemption-safe."""

from etils import epy

with epy.lazy_api_imports(globals()):  # each name loads its module on first use: light imports stay light
  from restreact.train.checkpoints import restore_params, save_params
  from restreact.train.config import TrainConfig
  from restreact.train.data import Example
  from restreact.train.metrics import read_metrics
  from restreact.train.trainer import NonFiniteLossError, TrainResult, load_trained, prepare_model, train

__all__ = ["Example", "NonFiniteLossError", "TrainConfig", "TrainResult", "load_trained", "prepare_model",
           "read_metrics", "restore_params", "save_params", "train"]
