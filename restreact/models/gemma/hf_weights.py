"""Names and layouts of Gemma weights in Hugging Face checkpoints, and how they map onto ours.

HF linear weights are [out_features, in_features]; ours are in_shape + out_shape (for example
q: [embed, heads, head_dim]). Each `TensorMap` converts one tensor both ways with numpy, so that
import and export handle one tensor at a time. A layer's tensor is one slice of a stacked parameter
(`stacking`): its map names the parameter and the index along the stack's leading axis.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np

from restreact.models.gemma import stacking
from restreact.models.gemma.config import GemmaConfig

Path = tuple  # a path into the model's state, e.g. ("stacks", 0, "attn", "q", "w")


@dataclasses.dataclass(frozen=True)
class TensorMap:
  """One HF tensor <-> one of our parameters."""

  hf_name: str
  path: Path
  hf_shape: tuple[int, ...]
  to_ours: Callable[[np.ndarray], np.ndarray]
  to_hf: Callable[[np.ndarray], np.ndarray]
  index: int | None = None  # a layer's slice of the stacked parameter at `path`; None: the whole parameter


def _identity(x):
  return x


def _linear(name: str, path: Path, in_shape: tuple[int, ...], out_shape: tuple[int, ...], index: int) -> TensorMap:
  n_in, n_out = int(np.prod(in_shape)), int(np.prod(out_shape))
  return TensorMap(
      name, path, (n_out, n_in),
      to_ours=lambda w: np.ascontiguousarray(w.T).reshape(in_shape + out_shape),
      to_hf=lambda w: np.ascontiguousarray(w.reshape(n_in, n_out).T), index=index)


def tensor_maps(cfg: GemmaConfig) -> list[TensorMap]:
  """Every text-decoder tensor of a `Gemma{2,3}ForCausalLM` checkpoint, in file order."""
  d, f, n, k, h = cfg.embed_dim, cfg.hidden_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
  maps = [TensorMap("model.embed_tokens.weight", ("embedding",), (cfg.vocab_size, d), _identity, _identity)]
  for i in range(cfg.num_layers):
    p = f"model.layers.{i}."
    ours, at = stacking.location(cfg.layer_types, i)
    maps += [
        _linear(p + "self_attn.q_proj.weight", ours + ("attn", "q", "w"), (d,), (n, h), at),
        _linear(p + "self_attn.k_proj.weight", ours + ("attn", "k", "w"), (d,), (k, h), at),
        _linear(p + "self_attn.v_proj.weight", ours + ("attn", "v", "w"), (d,), (k, h), at),
        _linear(p + "self_attn.o_proj.weight", ours + ("attn", "o", "w"), (n, h), (d,), at),
        _linear(p + "mlp.gate_proj.weight", ours + ("mlp", "gate", "w"), (d,), (f,), at),
        _linear(p + "mlp.up_proj.weight", ours + ("mlp", "up", "w"), (d,), (f,), at),
        _linear(p + "mlp.down_proj.weight", ours + ("mlp", "down", "w"), (f,), (d,), at),
    ]
    norms = {"input_layernorm": "pre_attn_norm", "post_attention_layernorm": "post_attn_norm",
             "pre_feedforward_layernorm": "pre_mlp_norm", "post_feedforward_layernorm": "post_mlp_norm"}
    maps += [TensorMap(p + f"{hf}.weight", ours + (our, "scale"), (d,), _identity, _identity, at)
             for hf, our in norms.items()]
    if cfg.use_qk_norm:
      maps += [TensorMap(p + f"self_attn.{x}_norm.weight", ours + ("attn", f"{x}_norm", "scale"), (h,),
                         _identity, _identity, at) for x in ("q", "k")]
  maps.append(TensorMap("model.norm.weight", ("final_norm", "scale"), (d,), _identity, _identity))
  return maps


# Text weights of multimodal checkpoints: "language_model.model.*" (transformers 4.x files) or
# "model.language_model.*" (5.x). Vision tower and projector are not ours and are skipped.
_TEXT_PREFIXES = (("language_model.model.", "model."), ("model.language_model.", "model."),
                  ("language_model.lm_head.", "lm_head."))
_IGNORED = re.compile(r"^(model\.)?(vision_tower|multi_modal_projector)\.")
TIED_OUTPUT = "lm_head.weight"  # tied to the embedding; a copy in the file is checked, not loaded


def canonical_name(name: str) -> str | None:
  """The `Gemma*ForCausalLM` name of a checkpoint tensor, or None for non-text (vision) weights."""
  if _IGNORED.match(name):
    return None
  for old, new in _TEXT_PREFIXES:
    if name.startswith(old):
      return new + name[len(old):]
  return name
