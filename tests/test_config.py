"""Presets match the published sizes; config.json files as published parse like transformers parses them."""

import pytest
import transformers

from restreact.models import GemmaConfig
from restreact.models.gemma.config import GLOBAL, LOCAL
from restreact.models.gemma.hf_config import UnsupportedCheckpointError, from_hf_config, to_hf_config

# config.json of published checkpoints (transformers 4.x keys; the multimodal one lists few text keys).
GEMMA3_4B_IT = {
    "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "boi_token_index": 255999,
    "eoi_token_index": 256000, "image_token_index": 262144, "mm_tokens_per_image": 256,
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                      "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
                      "patch_size": 14, "vision_use_head": False},
}
GEMMA3_1B_IT = {
    "architectures": ["Gemma3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": None, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": [1, 106],
    "final_logit_softcapping": None, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152,
    "initializer_range": 0.02, "intermediate_size": 6912, "max_position_embeddings": 32768,
    "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
    "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
    "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 262144,
}
GEMMA2_2B = {
    "architectures": ["Gemma2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid", "eos_token_id": 1,
    "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
    "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "float32",
    "use_cache": True, "vocab_size": 256000,
}


@pytest.mark.parametrize("raw,preset", [(GEMMA3_4B_IT, "gemma3-4b"), (GEMMA3_1B_IT, "gemma3-1b"),
                                        (GEMMA2_2B, "gemma2-2b")])
def test_published_configs_parse_to_the_presets(raw, preset):
  ours = from_hf_config(raw)
  expected = GemmaConfig.preset(preset)
  fields = ("vocab_size", "embed_dim", "hidden_dim", "num_layers", "num_heads", "num_kv_heads", "head_dim",
            "query_pre_attn_scalar", "sliding_window", "layer_types", "local_rope_base", "global_rope_base",
            "local_rope_scale", "global_rope_scale", "attn_softcap", "final_softcap", "use_qk_norm")
  assert {f: getattr(ours, f) for f in fields} == {f: getattr(expected, f) for f in fields}


@pytest.mark.parametrize("raw", [GEMMA3_4B_IT, GEMMA3_1B_IT, GEMMA2_2B])
def test_published_configs_parse_like_transformers(raw):
  """The reference's own reading of the same file: layer types and per-type RoPE agree."""
  hf = transformers.AutoConfig.for_model(**raw)
  text = hf.get_text_config()
  ours = from_hf_config(raw)
  assert [{"sliding_attention": LOCAL, "full_attention": GLOBAL}[t] for t in text.layer_types] == \
      list(ours.layer_types)
  rope = text.rope_parameters
  if "full_attention" in rope:
    assert rope["full_attention"]["rope_theta"] == ours.global_rope_base
    assert rope["sliding_attention"]["rope_theta"] == ours.local_rope_base
    assert rope["full_attention"].get("factor", 1.0) == ours.global_rope_scale
  else:
    assert rope["rope_theta"] == ours.global_rope_base == ours.local_rope_base
  assert text.vocab_size == ours.vocab_size and text.num_key_value_heads == ours.num_kv_heads


@pytest.mark.parametrize("preset,billions", [("gemma3-270m", 0.27), ("gemma3-1b", 1.0), ("gemma3-4b", 3.88),
                                             ("gemma3-12b", 11.77), ("gemma3-27b", 27.0), ("gemma2-2b", 2.61),
                                             ("gemma2-9b", 9.24), ("gemma2-27b", 27.2)])
def test_preset_parameter_counts(preset, billions):
  assert GemmaConfig.preset(preset).num_params / 1e9 == pytest.approx(billions, rel=0.03)


def test_layer_patterns():
  assert GemmaConfig.preset("gemma3-1b").layer_types[:6] == (LOCAL,) * 5 + (GLOBAL,)
  assert GemmaConfig.preset("gemma2-2b").layer_types[:4] == (LOCAL, GLOBAL, LOCAL, GLOBAL)


def test_round_trip_through_hf_config():
  for name in ("gemma3-4b", "gemma3-tiny", "gemma2-9b"):
    cfg = GemmaConfig.preset(name)
    back = from_hf_config(to_hf_config(cfg))
    assert back.replace(max_position_embeddings=cfg.max_position_embeddings) == cfg


def test_invalid_configs_are_clear():
  with pytest.raises(ValueError, match="num_heads=6 is not a multiple of num_kv_heads=4"):
    GemmaConfig.preset("gemma3-tiny", num_heads=6, num_kv_heads=4)
  with pytest.raises(ValueError, match="param_dtype='float16'"):
    GemmaConfig.preset("gemma3-tiny", param_dtype="float16")
  with pytest.raises(ValueError, match="unknown preset 'gemma4-1b'"):
    GemmaConfig.preset("gemma4-1b")
  with pytest.raises(UnsupportedCheckpointError, match="text_config"):
    from_hf_config({"model_type": "gemma3"})


def test_null_values_take_the_defaults_and_eos_lists_are_kept():
  raw = dict(GEMMA3_1B_IT, rope_theta=None, rope_local_base_freq=None, attn_logit_softcapping=None)
  cfg = from_hf_config(raw)
  assert (cfg.global_rope_base, cfg.local_rope_base, cfg.attn_softcap) == (1e6, 1e4, None)
  assert cfg.eos_ids == (1, 106)
  assert to_hf_config(cfg)["eos_token_id"] == [1, 106]
  wrapped = dict(GEMMA3_4B_IT, eos_token_id=[1, 106])  # multimodal: token ids at the top level
  assert from_hf_config(wrapped).eos_ids == (1, 106)


def test_gemma2_rope_scaling_is_written_for_transformers_4x_readers():
  cfg = GemmaConfig.preset("gemma2-tiny", local_rope_scale=4.0, global_rope_scale=4.0)
  hf = to_hf_config(cfg)
  assert hf["rope_scaling"] == {"rope_type": "linear", "factor": 4.0}
  legacy = {k: v for k, v in hf.items() if k not in ("rope_parameters", "layer_types")}
  assert from_hf_config(legacy) == cfg


def test_gemma3_layer_pattern_is_written_for_transformers_4x_readers():
  cfg = GemmaConfig.preset("gemma3-1b")
  legacy = {k: v for k, v in to_hf_config(cfg).items() if k not in ("rope_parameters", "layer_types")}
  assert legacy["sliding_window_pattern"] == 6 and from_hf_config(legacy) == cfg.replace(eos_ids=cfg.eos_ids)


def test_bad_numbers_are_rejected():
  with pytest.raises(ValueError, match="attn_softcap must be positive"):
    GemmaConfig.preset("gemma2-tiny", attn_softcap=0.0)
  with pytest.raises(ValueError, match="global_rope_scale must be positive"):
    GemmaConfig.preset("gemma3-tiny", global_rope_scale=0.0)
