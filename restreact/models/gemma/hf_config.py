"""Hugging Face `config.json` <-> GemmaConfig, for configs written by transformers 4.x and 5.x.

4.x keys: rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern.
5.x keys: rope_parameters (per layer type for Gemma 3), layer_types.
Missing or null keys take transformers' defaults for that model type, as published configs rely on
them (the Gemma 3 4B+ `text_config` lists only a few keys). Variants this decoder does not implement
(untied output head, bidirectional attention, another activation) are errors, never silent.
"""

from __future__ import annotations

import logging
from typing import Any

from restreact.models.gemma.config import GLOBAL, LOCAL, GemmaConfig, gemma2_layer_types, gemma3_layer_types

log = logging.getLogger(__name__)

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
_SOFTCAPS = ("final_logit_softcapping", "attn_logit_softcapping")  # null means "off", not "default"
_HF_LAYER_TYPES = {"sliding_attention": LOCAL, "full_attention": GLOBAL}
_SUPPORTED_ARCHS = ("Gemma2ForCausalLM", "Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")


class UnsupportedCheckpointError(ValueError):
  """The checkpoint is not a Gemma 2 / Gemma 3 text decoder this package can load."""


def text_config_and_family(hf: dict[str, Any]) -> tuple[dict[str, Any], str]:
  """The text-decoder part of a config (top-level token ids and tying folded in) and its family."""
  model_type = hf.get("model_type")
  archs = hf.get("architectures") or []
  if unknown := [a for a in archs if a not in _SUPPORTED_ARCHS]:
    raise UnsupportedCheckpointError(
        f"unsupported architecture {unknown}; restreact loads {', '.join(_SUPPORTED_ARCHS)}")
  if model_type == "gemma3" or "Gemma3ForConditionalGeneration" in archs:
    if not isinstance(hf.get("text_config"), dict):
      raise UnsupportedCheckpointError("Gemma 3 multimodal config.json has no 'text_config'")
    outer = {k: hf[k] for k in ("tie_word_embeddings", "eos_token_id", "bos_token_id", "pad_token_id")
             if hf.get(k) is not None}
    return {**outer, **{k: v for k, v in hf["text_config"].items() if v is not None or k in _SOFTCAPS}}, "gemma3"
  if model_type in ("gemma3_text", "gemma2"):
    return dict(hf), "gemma3" if model_type == "gemma3_text" else "gemma2"
  raise UnsupportedCheckpointError(
      f"unsupported architecture: model_type={model_type!r}, architectures={archs}; "
      f"restreact loads {', '.join(_SUPPORTED_ARCHS)}")


def _linear_factor(p: dict, *, where: str) -> float:
  kind = p.get("rope_type", p.get("type")) or "default"
  if kind == "default":
    return 1.0
  if kind == "linear":
    if p.get("factor") is None:
      raise UnsupportedCheckpointError(f"{where}: linear RoPE scaling without a 'factor'")
    return float(p["factor"])
  raise UnsupportedCheckpointError(f"{where}: RoPE type {kind!r} is not supported (only 'default' and 'linear')")


def _rope(c: dict[str, Any], family: str) -> dict[str, tuple[float, float]]:
  """(base, linear scale) for the local and the global layers."""
  params = c.get("rope_parameters")
  if params and ("full_attention" in params or "sliding_attention" in params):  # 5.x, per layer type
    local = {"rope_theta": c.get("rope_local_base_freq", _DEFAULTS["gemma3"]["rope_local_base_freq"]),
             **(params.get("sliding_attention") or {})}
    glob = {"rope_theta": c["rope_theta"], **(params.get("full_attention") or {})}
  elif params:  # 5.x, one setting for all layers
    if family == "gemma3":
      raise UnsupportedCheckpointError("Gemma 3 config.json: rope_parameters must be given per layer type "
                                       "('sliding_attention', 'full_attention'); transformers ignores a flat dict")
    local = glob = {"rope_theta": c["rope_theta"], **params}
  else:  # 4.x: rope_scaling applies to the global layers of Gemma 3, to every layer of Gemma 2
    glob = {"rope_theta": c["rope_theta"], **(c.get("rope_scaling") or {})}
    local = {"rope_theta": c["rope_local_base_freq"]} if family == "gemma3" else glob
  return {name: (float(p.get("rope_theta") or c["rope_theta"]), _linear_factor(p, where=f"{name} RoPE"))
          for name, p in ((LOCAL, local), (GLOBAL, glob))}


def _layer_types(c: dict[str, Any], family: str, n: int) -> tuple[str, ...]:
  if c.get("layer_types"):
    if unknown := set(c["layer_types"]) - set(_HF_LAYER_TYPES):
      raise UnsupportedCheckpointError(f"config.json layer_types has unknown entries {sorted(unknown)}")
    if len(c["layer_types"]) != n:
      raise UnsupportedCheckpointError(f"config.json lists {len(c['layer_types'])} layer_types for {n} layers")
    return tuple(_HF_LAYER_TYPES[t] for t in c["layer_types"])
  if family == "gemma3":
    return gemma3_layer_types(n, int(c.get("sliding_window_pattern") or 6))
  return gemma2_layer_types(n)


def _ids(value) -> tuple[int, ...]:
  values = value if isinstance(value, list) else [value]
  return tuple(int(v) for v in values if v is not None)


def from_hf_config(hf: dict[str, Any], *, param_dtype: str = "float32", dtype: str | None = None) -> GemmaConfig:
  """GemmaConfig from a parsed config.json."""
  text, family = text_config_and_family(hf)
  c = {**_DEFAULTS[family], **{k: v for k, v in text.items() if v is not None or k in _SOFTCAPS}}
  if c.get("tie_word_embeddings") is False:
    raise UnsupportedCheckpointError("tie_word_embeddings=false: Gemma ties its output head to the embedding; "
                                     "a separate lm_head is not supported")
  if c.get("use_bidirectional_attention"):
    raise UnsupportedCheckpointError("use_bidirectional_attention=true (an encoder such as EmbeddingGemma) is "
                                     "not a causal decoder")
  activation = c.get("hidden_activation") or c.get("hidden_act") or "gelu_pytorch_tanh"
  if activation != "gelu_pytorch_tanh":
    raise UnsupportedCheckpointError(f"hidden_activation={activation!r}; Gemma uses 'gelu_pytorch_tanh'")
  if "sliding_window" in text and text["sliding_window"] is None:
    raise UnsupportedCheckpointError("config.json sets sliding_window to null, but Gemma has sliding layers")
  n = int(c["num_hidden_layers"])
  rope = _rope(c, family)
  return GemmaConfig(
      family=family, vocab_size=int(c["vocab_size"]), embed_dim=int(c["hidden_size"]),
      hidden_dim=int(c["intermediate_size"]), num_layers=n, num_heads=int(c["num_attention_heads"]),
      num_kv_heads=int(c["num_key_value_heads"]), head_dim=int(c["head_dim"]),
      query_pre_attn_scalar=float(c["query_pre_attn_scalar"]), sliding_window=int(c["sliding_window"]),
      layer_types=_layer_types(c, family, n), local_rope_base=rope[LOCAL][0], local_rope_scale=rope[LOCAL][1],
      global_rope_base=rope[GLOBAL][0], global_rope_scale=rope[GLOBAL][1],
      attn_softcap=c.get("attn_logit_softcapping"), final_softcap=c.get("final_logit_softcapping"),
      use_qk_norm=family == "gemma3", rms_norm_eps=float(c["rms_norm_eps"]),
      max_position_embeddings=int(c["max_position_embeddings"]),
      pad_id=(_ids(c.get("pad_token_id")) or (0,))[0], eos_ids=_ids(c.get("eos_token_id")) or (1,),
      bos_id=(_ids(c.get("bos_token_id")) or (2,))[0], param_dtype=param_dtype, dtype=dtype or param_dtype)


def _whole(x: float) -> int | float:
  """transformers' strict configs want an int where the value is whole."""
  return int(x) if float(x).is_integer() else x


def _pattern(cfg: GemmaConfig) -> int | None:
  """The 4.x `sliding_window_pattern` that reproduces cfg.layer_types, if one does."""
  for p in range(1, cfg.num_layers + 1):
    if gemma3_layer_types(cfg.num_layers, p) == cfg.layer_types:
      return p
  return None


def to_hf_config(cfg: GemmaConfig, torch_dtype: str = "float32") -> dict[str, Any]:
  """A text-only config.json with both key styles: transformers 5.x reads the first, 4.x the second."""
  hf_types = {LOCAL: "sliding_attention", GLOBAL: "full_attention"}

  def rope_entry(base: float, scale: float) -> dict[str, Any]:
    entry = {"rope_type": "linear", "factor": scale} if scale != 1.0 else {"rope_type": "default"}
    return {**entry, "rope_theta": base}

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
      "pad_token_id": cfg.pad_id, "eos_token_id": list(cfg.eos_ids) if len(cfg.eos_ids) > 1 else cfg.eos_ids[0],
      "bos_token_id": cfg.bos_id, "torch_dtype": torch_dtype, "dtype": torch_dtype,
  }
  glob = rope_entry(cfg.global_rope_base, cfg.global_rope_scale)
  scaling = {"rope_type": "linear", "factor": cfg.global_rope_scale} if cfg.global_rope_scale != 1.0 else None
  legacy_ok = True
  if cfg.family == "gemma3":
    out["rope_parameters"] = {"sliding_attention": rope_entry(cfg.local_rope_base, cfg.local_rope_scale),
                              "full_attention": glob}
    out.update(rope_theta=cfg.global_rope_base, rope_local_base_freq=cfg.local_rope_base, rope_scaling=scaling)
    out["sliding_window_pattern"] = _pattern(cfg)
    legacy_ok = cfg.local_rope_scale == 1.0 and out["sliding_window_pattern"] is not None
  else:
    if (cfg.local_rope_base, cfg.local_rope_scale) != (cfg.global_rope_base, cfg.global_rope_scale):
      raise ValueError("Gemma 2 config.json has one RoPE setting for all layers; local and global differ here")
    out.update(rope_parameters=glob, rope_theta=cfg.global_rope_base, rope_scaling=scaling)
    legacy_ok = _pattern(cfg) == 2
  if not legacy_ok:
    log.warning("this config (layer pattern or local RoPE scaling) cannot be written in transformers 4.x keys; "
                "transformers < 4.53 will misread the exported config.json")
  return out
