"""Logits equal transformers' Gemma2ForCausalLM / Gemma3ForCausalLM (the reference) within 1e-4, fp32."""

import json
import shutil

import numpy as np
import pytest
import transformers
from safetensors.numpy import load_file, save_file

import hf_reference as ref
from restreact.models import from_pretrained, read_config, save_pretrained

TOL = 1e-4
TOKENS = np.random.default_rng(0).integers(0, 512, (2, 24))  # 24 tokens: three times the window of 8

CASES = {
    "gemma2": lambda: ref.gemma2_config(),
    "gemma3": lambda: ref.gemma3_config(rope_factor=None),
    "gemma3-rope-scaled": lambda: ref.gemma3_config(rope_factor=8.0),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def hf_checkpoint(request, tmp_path_factory):
  model = ref.causal_lm(CASES[request.param]())
  directory = tmp_path_factory.mktemp(request.param)
  model.save_pretrained(directory)
  return request.param, model, directory


def test_logits_match_transformers(hf_checkpoint):
  _, hf_model, directory = hf_checkpoint
  model, tokenizer = from_pretrained(directory, progress=False)
  expected = ref.logits(hf_model, TOKENS)
  assert np.abs(expected).max() > 1.0  # logits are not trivially small
  np.testing.assert_allclose(np.asarray(model(TOKENS)), expected, atol=TOL, rtol=0)
  assert tokenizer is None  # transformers wrote no tokenizer.model


def test_transformers_4x_config_keys_give_the_same_model(hf_checkpoint, tmp_path):
  name, hf_model, directory = hf_checkpoint
  shutil.copytree(directory, tmp_path, dirs_exist_ok=True)
  raw = ref.rewrite_config_as_4x(tmp_path)
  assert "rope_parameters" not in raw and "layer_types" not in raw
  assert read_config(tmp_path) == read_config(directory)
  model, _ = from_pretrained(tmp_path, progress=False)
  np.testing.assert_allclose(np.asarray(model(TOKENS)), ref.logits(hf_model, TOKENS), atol=TOL, rtol=0)


def test_sharded_checkpoint_with_index(hf_checkpoint, tmp_path):
  _, hf_model, _ = hf_checkpoint
  hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
  assert (tmp_path / "model.safetensors.index.json").exists()
  model, _ = from_pretrained(tmp_path, progress=False)
  np.testing.assert_allclose(np.asarray(model(TOKENS)), ref.logits(hf_model, TOKENS), atol=TOL, rtol=0)


def test_export_reloads_in_transformers_with_equal_logits(hf_checkpoint, tmp_path):
  _, _, directory = hf_checkpoint
  model, _ = from_pretrained(directory, progress=False)
  save_pretrained(model, tmp_path, max_shard_bytes=200_000)  # several shards and an index
  assert (tmp_path / "model.safetensors.index.json").exists()
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
  np.testing.assert_allclose(ref.logits(reloaded, TOKENS), np.asarray(model(TOKENS)), atol=TOL, rtol=0)
  again, _ = from_pretrained(tmp_path, progress=False)
  np.testing.assert_array_equal(np.asarray(again(TOKENS)), np.asarray(model(TOKENS)))


def test_stacked_layers_with_a_tail_load_and_export(tmp_path):
  """14 Gemma 3 layers are stored as stacks of two and a tail of two: both ways through the HF layout."""
  hf_model = ref.causal_lm(ref.gemma3_config(layers=14, rope_factor=None))
  hf_model.save_pretrained(tmp_path / "in")
  model, _ = from_pretrained(tmp_path / "in", progress=False)
  assert model.stacks[0].mlp.up.w.get_value().shape[0] == 2 and len(model.tail) == 2
  np.testing.assert_allclose(np.asarray(model(TOKENS)), ref.logits(hf_model, TOKENS), atol=TOL, rtol=0)
  save_pretrained(model, tmp_path / "out")
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
  np.testing.assert_allclose(ref.logits(reloaded, TOKENS), np.asarray(model(TOKENS)), atol=TOL, rtol=0)


def test_rope_scaling_is_not_a_no_op(tmp_path):
  """Negative control: the rope-scaled reference differs from the same weights without scaling."""
  hf_model = ref.causal_lm(ref.gemma3_config(rope_factor=8.0))
  hf_model.save_pretrained(tmp_path)
  raw = json.loads((tmp_path / "config.json").read_text())
  raw["rope_parameters"]["full_attention"] = {"rope_type": "default", "rope_theta": 1_000_000.0}
  (tmp_path / "config.json").write_text(json.dumps(raw))
  model, _ = from_pretrained(tmp_path, progress=False)
  assert np.abs(np.asarray(model(TOKENS)) - ref.logits(hf_model, TOKENS)).max() > 1e-2


@pytest.mark.parametrize("layout", ["transformers-4", "transformers-5"])
def test_multimodal_gemma3_checkpoint_loads_text_weights(layout, tmp_path):
  mm = ref.multimodal(ref.gemma3_config(rope_factor=8.0))
  mm.save_pretrained(tmp_path)
  raw = json.loads((tmp_path / "config.json").read_text())
  assert raw["architectures"] == ["Gemma3ForConditionalGeneration"]
  tensors = load_file(tmp_path / "model.safetensors")
  assert any(k.startswith(("vision_tower.", "model.vision_tower.")) for k in tensors)
  if layout == "transformers-5":  # text under model.language_model.*, vision under model.vision_tower.*
    renamed = {}
    for k, v in tensors.items():
      k = k.replace("language_model.model.", "model.language_model.")
      renamed[k if k.startswith(("model.", "lm_head")) else "model." + k] = v
    save_file(renamed, tmp_path / "model.safetensors", metadata={"format": "pt"})
  else:
    ref.rewrite_config_as_4x(tmp_path)
  model, _ = from_pretrained(tmp_path, progress=False)
  np.testing.assert_allclose(np.asarray(model(TOKENS)), ref.logits(mm, TOKENS), atol=TOL, rtol=0)


def test_bfloat16_is_as_close_to_the_fp32_reference_as_transformers_bf16(hf_checkpoint, tmp_path):
  """bf16 parameters and compute: our error against the fp32 reference is no worse than transformers' own bf16."""
  import torch
  _, hf_model, _ = hf_checkpoint
  exact = ref.logits(hf_model, TOKENS)
  hf_bf16 = ref.causal_lm(hf_model.config).to(torch.bfloat16)
  hf_bf16.load_state_dict(hf_model.state_dict())
  hf_bf16.save_pretrained(tmp_path)
  model, _ = from_pretrained(tmp_path, dtype="bfloat16", progress=False)
  assert model.embedding.get_value().dtype == np.dtype("bfloat16")
  ours = np.abs(np.asarray(model(TOKENS)) - exact).max()
  theirs = np.abs(ref.logits(hf_bf16, TOKENS) - exact).max()
  assert 0 < ours <= 1.5 * theirs + 1e-2, (ours, theirs)
