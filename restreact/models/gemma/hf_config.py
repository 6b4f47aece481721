"""Hugging Face `config.json` <-> GemmaConfig, for configs written by transformers 4.x and 5.x.

4.x keys: rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern.
5.x keys: rope_parameters (per layer type for Gemma 3), layer_types.
Missing keys take transformers' defaults for that model type, as published configs rely on them
(the Gemma 3 4B+ `text_config` lists only a few keys).
"""

from __future__ import annotations

from typing import Any

from restreact.models.gemma.config import GLOBAL, LOCAL, GemmaConfig, gemma2_layer_types, gemma3_layer_types

# transformers' defaults (Gemma2Config, Gemma3TextConfig) for keys a config may leave out.
_DEFAULTS = {
    "gemma2": dict(vocab_size=256_000, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                   sliding_window=4096, rms_norm_eps=1e-6, max_position_embeddings=8192,
                   final_logit_softcapping=30.0, attn_logit_softcapping=50.0, rope_theta=10_000.0),
    "gemma3": dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                   num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                   sliding_window=4096, rms_norm_eps=1e-6, max_position_embeddings=131_072,
                   final_logit_softcapping=None, attn_logit_softcapping=None, rope_theta=1_000_000.0,
                   rope_local_base_freq=10_000.0, sliding_window_pattern=6),
}
_HF_LAYER_TYPES = {"sliding_attention": LOCAL, "full_attention": GLOBAL}
_SUPPORTED_ARCHS = ("Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")


class UnsupportedCheckpointError(ValueError):
  """The checkpoint is not a Gemma 2 / Gemma 3 text decoder this package can load."""


def text_config_and_family(hf: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
  """The text-decoder part of a config, its family, and whether it came wrapped in a multimodal config."""
  model_type = hf.get("model_type")
  archs = hf.get("architectures") or []
  if model_type == "gemma3" or "Gemma3ForConditionalGeneration" in archs:
    if "text_config" not in hf:
      raise UnsupportedCheckpointError("Gemma 3 multimodal config.json has no 'text_config'")
    return dict(hf["text_config"] or {}), "gemma3", True
  if model_type == "gemma3_text":
    return dict(hf), "gemma3", False
  if model_type == "gemma2":
    return dict(hf), "gemma2", False
  raise UnsupportedCheckpointError(
      f"unsupported architecture: model_type={model_type!r}, architectures={archs}; "
      f"restreact loads {', '.join(_SUPPORTED_ARCHS)}")


def _rope(text: dict[str, Any], family: str) -> dict[str, tuple[float, float]]:
  """(base, linear scale) for the local and the global layers."""
  out = {}
  params = text.get("rope_parameters")
  if params:
    per_type = params if ("full_attention" in params or "sliding_attention" in params) else None
    for hf_type, ours in _HF_LAYER_TYPES.items():
      p = dict(per_type.get(hf_type) or {}) if per_type else dict(params)
      out[ours] = (_theta(p, text, family, ours), _linear_factor(p, where=f"rope_parameters[{hf_type!r}]"))
    return out
  scaling = text.get("rope_scaling")
  global_scale = _linear_factor(dict(scaling), where="rope_scaling") if scaling else 1.0
  defaults = _DEFAULTS[family]
  theta = float(text.get("rope_theta", defaults["rope_theta"]))
  if family == "gemma3":
    local = float(text.get("rope_local_base_freq", defaults["rope_local_base_freq"]))
    return {LOCAL: (local, 1.0), GLOBAL: (theta, global_scale)}
  return {LOCAL: (theta, global_scale), GLOBAL: (theta, global_scale)}


def _theta(p: dict, text: dict, family: str, layer_type: str) -> float:
  if "rope_theta" in p:
    return float(p["rope_theta"])
  if family == "gemma3" and layer_type == LOCAL:
    return float(text.get("rope_local_base_freq", _DEFAULTS["gemma3"]["rope_local_base_freq"]))
  return float(text.get("rope_theta", _DEFAULTS[family]["rope_theta"]))


def _linear_factor(p: dict, *, where: str) -> float:
  kind = p.get("rope_type", p.get("type", "default"))
  if kind == "default":
    return 1.0
  if kind == "linear":
    return float(p["factor"])
  raise UnsupportedCheckpointError(f"{where}: RoPE type {kind!r} is not supported (only 'default' and 'linear')")


def from_hf_config(hf: dict[str, Any], *, param_dtype: str = "float32", dtype: str | None = None) -> GemmaConfig:
  """GemmaConfig from a parsed config.json."""
  text, family, _ = text_config_and_family(hf)
  c = {**_DEFAULTS[family], **{k: v for k, v in text.items() if v is not None or k.endswith("softcapping")}}
  n = int(c["num_hidden_layers"])
  if text.get("layer_types"):
    unknown = set(text["layer_types"]) - set(_HF_LAYER_TYPES)
    if unknown:
      raise UnsupportedCheckpointError(f"config.json layer_types has unknown entries {sorted(unknown)}")
    layer_types = tuple(_HF_LAYER_TYPES[t] for t in text["layer_types"])
  elif family == "gemma3":
    layer_types = gemma3_layer_types(n, int(c.get("sliding_window_pattern") or 6))
  else:
    layer_types = gemma2_layer_types(n)
  rope = _rope(text, family)
  return GemmaConfig(
      family=family, vocab_size=int(c["vocab_size"]), embed_dim=int(c["hidden_size"]),
      hidden_dim=int(c["intermediate_size"]), num_layers=n, num_heads=int(c["num_attention_heads"]),
      num_kv_heads=int(c["num_key_value_heads"]), head_dim=int(c["head_dim"]),
      query_pre_attn_scalar=float(c["query_pre_attn_scalar"]), sliding_window=int(c["sliding_window"]),
      layer_types=layer_types, local_rope_base=rope[LOCAL][0], local_rope_scale=rope[LOCAL][1],
      global_rope_base=rope[GLOBAL][0], global_rope_scale=rope[GLOBAL][1],
      attn_softcap=c.get("attn_logit_softcapping"), final_softcap=c.get("final_logit_softcapping"),
      use_qk_norm=family == "gemma3", rms_norm_eps=float(c["rms_norm_eps"]),
      max_position_embeddings=int(c["max_position_embeddings"]),
      pad_id=_int(c.get("pad_token_id"), 0), eos_id=_int(c.get("eos_token_id"), 1),
      bos_id=_int(c.get("bos_token_id"), 2), param_dtype=param_dtype, dtype=dtype or param_dtype)


def _int(value, default: int) -> int:
  if isinstance(value, list):
    value = value[0] if value else None
  return default if value is None else int(value)


def _whole(x: float) -> int | float:
  """transformers' strict configs want an int where the value is whole."""
  return int(x) if float(x).is_integer() else x


def to_hf_config(cfg: GemmaConfig, torch_dtype: str = "float32") -> dict[str, Any]:
  """A text-only config.json that transformers 4.x and 5.x both read (both key styles written)."""
  hf_types = {LOCAL: "sliding_attention", GLOBAL: "full_attention"}

  def rope_entry(base: float, scale: float) -> dict[str, Any]:
    entry = {"rope_type": "linear", "factor": scale} if scale != 1.0 else {"rope_type": "default"}
    return {**entry, "rope_theta": base}

  local = rope_entry(cfg.local_rope_base, cfg.local_rope_scale)
  glob = rope_entry(cfg.global_rope_base, cfg.global_rope_scale)
  out = {
      "architectures": ["Gemma3ForCausalLM" if cfg.family == "gemma3" else "Gemma2ForCausalLM"],
      "model_type": "gemma3_text" if cfg.family == "gemma3" else "gemma2",
      "vocab_size": cfg.vocab_size, "hidden_size": cfg.embed_dim, "intermediate_size": cfg.hidden_dim,
      "num_hidden_layers": cfg.num_layers, "num_attention_heads": cfg.num_heads,
      "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
      "query_pre_attn_scalar": _whole(cfg.query_pre_attn_scalar), "sliding_window": cfg.sliding_window,
      "layer_types": [hf_types[t] for t in cfg.layer_types],
      "attn_logit_softcapping": cfg.attn_softcap, "final_logit_softcapping": cfg.final_softcap,
      "rms_norm_eps": cfg.rms_norm_eps, "max_position_embeddings": cfg.max_position_embeddings,
      "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True,
      "pad_token_id": cfg.pad_id, "eos_token_id": cfg.eos_id, "bos_token_id": cfg.bos_id,
      "torch_dtype": torch_dtype, "dtype": torch_dtype,
  }
  if cfg.family == "gemma3":
    out["rope_parameters"] = {"sliding_attention": local, "full_attention": glob}
    out["rope_theta"], out["rope_local_base_freq"] = cfg.global_rope_base, cfg.local_rope_base
    out["rope_scaling"] = {"rope_type": "linear", "factor": cfg.global_rope_scale} if "factor" in glob else None
  else:
    if cfg.local_rope_base != cfg.global_rope_base or cfg.local_rope_scale != cfg.global_rope_scale:
      raise ValueError("Gemma 2 config.json has one RoPE setting for all layers; local and global differ here")
    out["rope_parameters"] = glob
    out["rope_theta"] = cfg.global_rope_base
  return out
