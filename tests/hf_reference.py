"""Tiny random Gemma 2 / Gemma 3 models built with transformers, the reference implementation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import transformers

TEXT = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_attention_heads=4, num_key_value_heads=2,
            head_dim=16, max_position_embeddings=1024, sliding_window=8)


def gemma3_config(*, layers: int = 6, rope_factor: float | None = 8.0) -> transformers.Gemma3TextConfig:
  rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
          "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0}}
  if rope_factor:
    rope["full_attention"] = {"rope_type": "linear", "factor": rope_factor, "rope_theta": 1_000_000.0}
  return transformers.Gemma3TextConfig(**TEXT, num_hidden_layers=layers, query_pre_attn_scalar=16,
                                       rope_parameters=rope, attn_implementation="eager")


def gemma2_config(*, layers: int = 4) -> transformers.Gemma2Config:
  return transformers.Gemma2Config(**TEXT, num_hidden_layers=layers, query_pre_attn_scalar=24,
                                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                                   attn_implementation="eager")


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
  """Weights large enough that logits are O(1-10) and every norm weight is non-zero."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
      elif p.ndim == 2:
        p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))
  return model.eval()


def causal_lm(config, seed: int = 0) -> torch.nn.Module:
  torch.manual_seed(seed)
  return randomize(transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32), seed)


def multimodal(text_config: transformers.Gemma3TextConfig, seed: int = 0) -> torch.nn.Module:
  """A tiny Gemma3ForConditionalGeneration (vision tower included) around `text_config`."""
  vision = transformers.SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=28, patch_size=14)
  config = transformers.Gemma3Config(text_config=text_config, vision_config=vision, mm_tokens_per_image=4,
                                     image_token_index=text_config.vocab_size - 1,
                                     boi_token_index=text_config.vocab_size - 3,
                                     eoi_token_index=text_config.vocab_size - 2)
  config._attn_implementation = "eager"
  torch.manual_seed(seed)
  model = transformers.Gemma3ForConditionalGeneration(config).to(torch.float32)
  return randomize(model, seed)


def logits(model: torch.nn.Module, tokens: np.ndarray) -> np.ndarray:
  with torch.no_grad():
    return model(input_ids=torch.as_tensor(np.asarray(tokens), dtype=torch.long)).logits.float().numpy()


def rewrite_config_as_4x(directory: Path) -> dict:
  """Replace transformers 5.x keys of a saved config.json by the 4.x keys that published checkpoints carry."""
  path = directory / "config.json"
  raw = json.loads(path.read_text())
  text = raw.get("text_config", raw)
  text.pop("layer_types", None)
  rope = text.pop("rope_parameters")
  if raw.get("model_type") == "gemma2" or text.get("model_type") == "gemma2":
    text["rope_theta"] = rope["rope_theta"]
  else:
    text["rope_theta"] = rope["full_attention"]["rope_theta"]
    text["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    text["sliding_window_pattern"] = 6
    full = rope["full_attention"]
    text["rope_scaling"] = {"rope_type": "linear", "factor": full["factor"]} if "factor" in full else None
  path.write_text(json.dumps(raw, indent=2))
  return raw
