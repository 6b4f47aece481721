"""Gemma 2 / Gemma 3 text-decoder hyperparameters, with a preset per published size."""

from __future__ import annotations

import dataclasses
from typing import Literal

LOCAL, GLOBAL = "local", "global"
Family = Literal["gemma2", "gemma3"]
DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class GemmaConfig:
  """One decoder: sizes, attention pattern, RoPE, soft-capping and dtypes."""

  family: Family
  vocab_size: int
  embed_dim: int
  hidden_dim: int  # MLP width
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  query_pre_attn_scalar: float
  sliding_window: int
  layer_types: tuple[str, ...]  # LOCAL (sliding window) or GLOBAL, one per layer
  local_rope_base: float = 10_000.0
  global_rope_base: float = 10_000.0
  local_rope_scale: float = 1.0  # linear RoPE scaling factor (positions divided by it)
  global_rope_scale: float = 1.0
  attn_softcap: float | None = None
  final_softcap: float | None = None
  use_qk_norm: bool = False
  rms_norm_eps: float = 1e-6
  max_position_embeddings: int = 8192
  pad_id: int = 0
  eos_ids: tuple[int, ...] = (1,)  # instruction-tuned checkpoints add <end_of_turn>
  bos_id: int = 2
  param_dtype: str = "float32"
  dtype: str = "float32"  # compute dtype

  def __post_init__(self):
    problems = []
    if self.family not in ("gemma2", "gemma3"):
      problems.append(f"family must be 'gemma2' or 'gemma3', got {self.family!r}")
    if len(self.layer_types) != self.num_layers:
      problems.append(f"layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
    if bad := set(self.layer_types) - {LOCAL, GLOBAL}:
      problems.append(f"unknown layer types {sorted(bad)}; use {LOCAL!r} or {GLOBAL!r}")
    if self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
      problems.append(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
    for name in ("param_dtype", "dtype"):
      if getattr(self, name) not in DTYPES:
        problems.append(f"{name}={getattr(self, name)!r}; choose one of {DTYPES}")
    for name in ("vocab_size", "embed_dim", "hidden_dim", "num_layers", "num_heads", "head_dim", "sliding_window",
                 "query_pre_attn_scalar", "local_rope_base", "global_rope_base", "local_rope_scale",
                 "global_rope_scale", "rms_norm_eps", "max_position_embeddings"):
      if not getattr(self, name) > 0:
        problems.append(f"{name} must be positive, got {getattr(self, name)}")
    for name in ("attn_softcap", "final_softcap"):
      if getattr(self, name) is not None and not getattr(self, name) > 0:
        problems.append(f"{name} must be positive or None, got {getattr(self, name)}")
    if problems:
      raise ValueError("invalid GemmaConfig: " + "; ".join(problems))

  def replace(self, **changes) -> GemmaConfig:
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  @property
  def num_params(self) -> int:
    """Parameter count (tied embedding counted once)."""
    attn = self.embed_dim * self.head_dim * (2 * self.num_heads + 2 * self.num_kv_heads)
    mlp = 3 * self.embed_dim * self.hidden_dim
    norms = 4 * self.embed_dim + (2 * self.head_dim if self.use_qk_norm else 0)
    return self.vocab_size * self.embed_dim + self.num_layers * (attn + mlp + norms) + self.embed_dim

  @classmethod
  def preset(cls, name: str, **overrides) -> GemmaConfig:
    """A named preset ('gemma3-1b', 'gemma2-2b', 'gemma3-tiny', ...), optionally overridden."""
    if name not in PRESETS:
      raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]().replace(**overrides)


def gemma3_layer_types(num_layers: int, pattern: int = 6) -> tuple[str, ...]:
  """Gemma 3: (pattern - 1) local layers, then one global, repeated."""
  return tuple(GLOBAL if (i + 1) % pattern == 0 else LOCAL for i in range(num_layers))


def gemma2_layer_types(num_layers: int) -> tuple[str, ...]:
  """Gemma 2: local and global layers alternate, starting with local."""
  return gemma3_layer_types(num_layers, pattern=2)


def _gemma3(*, vocab=262_144, embed, hidden, layers, heads, kv_heads, head_dim=256, window=1024,
            qpas=None, scale=8.0, max_pos=131_072) -> GemmaConfig:
  return GemmaConfig(
      family="gemma3", vocab_size=vocab, embed_dim=embed, hidden_dim=hidden, num_layers=layers,
      num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
      query_pre_attn_scalar=qpas or head_dim, sliding_window=window,
      layer_types=gemma3_layer_types(layers), local_rope_base=10_000.0, global_rope_base=1_000_000.0,
      global_rope_scale=scale, use_qk_norm=True, max_position_embeddings=max_pos)


def _gemma2(*, embed, hidden, layers, heads, kv_heads, head_dim=256, qpas=None) -> GemmaConfig:
  return GemmaConfig(
      family="gemma2", vocab_size=256_000, embed_dim=embed, hidden_dim=hidden, num_layers=layers,
      num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
      query_pre_attn_scalar=qpas or head_dim, sliding_window=4096,
      layer_types=gemma2_layer_types(layers), attn_softcap=50.0, final_softcap=30.0,
      max_position_embeddings=8192)


# Sizes as published in the checkpoints' config.json files. 4B and up are multimodal checkpoints
# whose text embedding has 262,208 rows; the loader takes the row count from the checkpoint.
PRESETS = {
    "gemma3-270m": lambda: _gemma3(embed=640, hidden=2048, layers=18, heads=4, kv_heads=1, window=512,
                                   scale=1.0, max_pos=32_768),
    "gemma3-1b": lambda: _gemma3(embed=1152, hidden=6912, layers=26, heads=4, kv_heads=1, window=512,
                                 scale=1.0, max_pos=32_768),
    "gemma3-4b": lambda: _gemma3(vocab=262_208, embed=2560, hidden=10240, layers=34, heads=8, kv_heads=4),
    "gemma3-12b": lambda: _gemma3(vocab=262_208, embed=3840, hidden=15360, layers=48, heads=16, kv_heads=8),
    "gemma3-27b": lambda: _gemma3(vocab=262_208, embed=5376, hidden=21504, layers=62, heads=32, kv_heads=16,
                                  head_dim=128, qpas=168),
    "gemma2-2b": lambda: _gemma2(embed=2304, hidden=9216, layers=26, heads=8, kv_heads=4),
    "gemma2-9b": lambda: _gemma2(embed=3584, hidden=14336, layers=42, heads=16, kv_heads=8),
    "gemma2-27b": lambda: _gemma2(embed=4608, hidden=36864, layers=46, heads=32, kv_heads=16, head_dim=128,
                                  qpas=144),
    # Tiny decoders for tests and CPU demos: every feature of the family, a short window.
    "gemma3-tiny": lambda: _gemma3(vocab=512, embed=64, hidden=128, layers=6, heads=4, kv_heads=2,
                                   head_dim=16, window=8, scale=8.0, max_pos=1024),
    "gemma2-tiny": lambda: _gemma2(embed=64, hidden=128, layers=4, heads=4, kv_heads=2, head_dim=16,
                                   qpas=24).replace(vocab_size=512, sliding_window=8, max_position_embeddings=1024),
}
