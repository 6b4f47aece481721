"""Bad checkpoints fail with errors that name the tensor (and both shapes) or the architecture."""

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hf_reference as ref
from restreact.models import CheckpointMismatchError, UnsupportedCheckpointError, from_pretrained


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  directory = tmp_path_factory.mktemp("gemma3")
  ref.causal_lm(ref.gemma3_config(layers=2)).save_pretrained(directory)
  return directory


def _copy_with(saved, tmp_path, edit):
  tensors = load_file(saved / "model.safetensors")
  edit(tensors)
  save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
  (tmp_path / "config.json").write_text((saved / "config.json").read_text())
  return tmp_path


def test_missing_tensor_is_named(saved, tmp_path):
  d = _copy_with(saved, tmp_path, lambda t: t.pop("model.layers.1.mlp.up_proj.weight"))
  with pytest.raises(CheckpointMismatchError, match=r"missing tensors: model\.layers\.1\.mlp\.up_proj\.weight"):
    from_pretrained(d, progress=False)


def test_unexpected_tensor_is_named(saved, tmp_path):
  d = _copy_with(saved, tmp_path, lambda t: t.update({"model.layers.7.extra.weight": np.zeros(3, np.float32)}))
  with pytest.raises(CheckpointMismatchError, match=r"unexpected tensors: model\.layers\.7\.extra\.weight"):
    from_pretrained(d, progress=False)


def test_misshapen_tensor_names_both_shapes(saved, tmp_path):
  def shrink(t):
    t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:16]
  d = _copy_with(saved, tmp_path, shrink)
  with pytest.raises(CheckpointMismatchError,
                     match=r"model\.layers\.0\.self_attn\.k_proj\.weight has shape \(16, 64\).*\(32, 64\)"):
    from_pretrained(d, progress=False)


def test_unknown_architecture(saved, tmp_path):
  d = _copy_with(saved, tmp_path, lambda t: None)
  raw = json.loads((saved / "config.json").read_text())
  raw.update(model_type="llama", architectures=["LlamaForCausalLM"])
  (d / "config.json").write_text(json.dumps(raw))
  with pytest.raises(UnsupportedCheckpointError, match=r"unsupported architecture.*LlamaForCausalLM"):
    from_pretrained(d, progress=False)


def test_unsupported_rope_type(saved, tmp_path):
  d = _copy_with(saved, tmp_path, lambda t: None)
  raw = json.loads((saved / "config.json").read_text())
  raw["rope_parameters"]["full_attention"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6}
  (d / "config.json").write_text(json.dumps(raw))
  with pytest.raises(UnsupportedCheckpointError, match="yarn"):
    from_pretrained(d, progress=False)


def test_missing_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    from_pretrained(tmp_path, progress=False)
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma2"}))
  with pytest.raises(FileNotFoundError, match="model.safetensors"):
    from_pretrained(tmp_path, progress=False)


@pytest.mark.parametrize("change,message", [
    ({"tie_word_embeddings": False}, "tie_word_embeddings=false"),
    ({"use_bidirectional_attention": True}, "bidirectional"),
    ({"hidden_activation": "relu"}, "hidden_activation='relu'"),
    ({"rope_parameters": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}}, "per layer type"),
    ({"rope_parameters": {"full_attention": {"rope_type": "linear"}}}, "without a 'factor'"),
    ({"layer_types": ["full_attention"]}, "1 layer_types for 2 layers"),
])
def test_unsupported_variants_are_errors_not_silent(saved, tmp_path, change, message):
  d = _copy_with(saved, tmp_path, lambda t: None)
  raw = json.loads((saved / "config.json").read_text())
  raw.update(change)
  (d / "config.json").write_text(json.dumps(raw))
  with pytest.raises(UnsupportedCheckpointError, match=message):
    from_pretrained(d, progress=False)


def test_tensor_in_two_shards_is_an_error(saved, tmp_path):
  tensors = load_file(saved / "model.safetensors")
  save_file(tensors, tmp_path / "a.safetensors", metadata={"format": "pt"})
  save_file({"model.norm.weight": tensors["model.norm.weight"]}, tmp_path / "b.safetensors", metadata={"format": "pt"})
  weight_map = {name: "a.safetensors" for name in tensors}
  index = {"weight_map": {**weight_map, "x": "b.safetensors"}}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
  (tmp_path / "config.json").write_text((saved / "config.json").read_text())
  with pytest.raises(ValueError, match="model.norm.weight appears in more than one file"):
    from_pretrained(tmp_path, progress=False)


def test_a_truncated_shard_and_a_bad_config_are_named(saved, tmp_path):
  d = _copy_with(saved, tmp_path, lambda tensors: None)
  shard = d / "model.safetensors"
  shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # a download cut short
  with pytest.raises(ValueError, match=r"model.safetensors: truncated.*download it again"):
    from_pretrained(d, progress=False)
  (d / "config.json").write_text("{not json")
  with pytest.raises(ValueError, match=r"config.json: not valid JSON"):
    from_pretrained(d, progress=False)
