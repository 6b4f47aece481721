"""Models: Gemma 2/3 decoders, HF checkpoints, tokenizer, LoRA, sharding rules."""

from etils import epy

with epy.lazy_api_imports(globals()):  # each name loads its module on first use: light imports stay light
  from restreact.models.export import export_hf
  from restreact.models.gemma import GemmaConfig, LayerCache, Transformer
  from restreact.models.gemma.hf_config import UnsupportedCheckpointError
  from restreact.models.lora import LoraConfig, apply_lora, load_lora, merge_lora, remove_lora, save_lora
  from restreact.models.pretrained import CheckpointMismatchError, from_pretrained, read_config, save_pretrained
  from restreact.models.sharding import make_mesh, shard_model
  from restreact.models.tokenizer import Tokenizer, train_tokenizer

__all__ = [
    "CheckpointMismatchError", "GemmaConfig", "LayerCache", "LoraConfig", "Tokenizer", "Transformer",
    "UnsupportedCheckpointError", "apply_lora", "export_hf", "from_pretrained", "load_lora", "make_mesh", "merge_lora",
    "read_config", "remove_lora", "save_lora", "save_pretrained", "shard_model", "train_tokenizer",
]
