"""TrainConfig: every knob of one SFT run, checked before anything is tokenized or compiled."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
  from restreact.models.lora import LoraConfig

SCHEDULES = ("cosine", "linear", "constant")
PARAM_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One fine-tuning run. `batch_size` rows of `seq_len` tokens make one optimizer step, split into `grad_accum`
  micro-batches; `lora_rank=None` means full fine-tuning."""

  total_steps: int = 1000
  batch_size: int = 8  # packed rows per optimizer step (global, all processes together)
  seq_len: int = 1024  # tokens per packed row (the longest bucket)
  buckets: tuple[int, ...] | None = None  # row lengths; None: seq_len/4, seq_len/2, seq_len
  learning_rate: float = 1e-4  # peak, reached after warmup
  warmup_steps: int = 0
  schedule: Literal["cosine", "linear", "constant"] = "cosine"  # decay after warmup
  end_lr_fraction: float = 0.0  # final learning rate / peak
  weight_decay: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  clip_norm: float | None = 1.0  # global gradient-norm clipping; None: off
  grad_accum: int = 1  # micro-batches per optimizer step
  lora_rank: int | None = 8  # None: full fine-tuning
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
  remat: Literal["none", "dots", "full"] = "none"  # what each layer keeps for the backward pass (model.REMAT_POLICIES)
  scan_layers: bool = True  # the layers as one jax.lax.scan (compile time independent of depth); False: one by one
  param_dtype: Literal["float32", "bfloat16"] | None = None  # None: the model's; bfloat16: bf16 weights and
  # compute with float32 Adam moments and float32 master weights
  save_every: int = 500  # steps between checkpoints (also saved at the end and on SIGTERM)
  keep: int = 2  # latest checkpoints kept for resuming
  eval_every: int | None = None  # steps between eval_fn calls (and at the end); None: at the end only
  eval_mode: Literal["max", "min"] = "max"  # whether a higher eval_fn score is better
  log_every: int = 1  # steps between metric records
  seed: int = 0
  progress: bool = True  # tqdm bar on process 0

  def __post_init__(self):
    problems = []
    for name in ("total_steps", "batch_size", "seq_len", "grad_accum", "save_every", "keep", "log_every"):
      if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
        problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
    if not 0 < self.learning_rate < float("inf"):
      problems.append(f"learning_rate must be positive and finite, got {self.learning_rate}")
    if not 0 <= self.warmup_steps <= self.total_steps:
      problems.append(f"warmup_steps={self.warmup_steps} must be in [0, total_steps={self.total_steps}]")
    if self.schedule not in SCHEDULES:
      problems.append(f"schedule={self.schedule!r}; choose one of {SCHEDULES}")
    if not 0 <= self.end_lr_fraction <= 1:
      problems.append(f"end_lr_fraction must be in [0, 1], got {self.end_lr_fraction}")
    if self.weight_decay < 0:
      problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
    if self.clip_norm is not None and not self.clip_norm > 0:
      problems.append(f"clip_norm must be positive or None, got {self.clip_norm}")
    if self.param_dtype is not None and self.param_dtype not in PARAM_DTYPES:
      problems.append(f"param_dtype={self.param_dtype!r}; choose one of {PARAM_DTYPES}")
    if not isinstance(self.scan_layers, bool):
      problems.append(f"scan_layers must be True or False, got {self.scan_layers!r}")
    if self.remat not in ("none", "dots", "full"):
      problems.append(f"remat={self.remat!r}; choose 'none', 'dots' or 'full'")
    if self.eval_mode not in ("max", "min"):
      problems.append(f"eval_mode={self.eval_mode!r}; choose 'max' or 'min'")
    if self.eval_every is not None and self.eval_every <= 0:
      problems.append(f"eval_every must be positive or None, got {self.eval_every}")
    if isinstance(self.batch_size, int) and isinstance(self.grad_accum, int) and self.grad_accum > 0 \
        and self.batch_size % self.grad_accum:
      problems.append(f"batch_size={self.batch_size} is not divisible by grad_accum={self.grad_accum}")
    if self.buckets is not None:
      if not self.buckets or any(not isinstance(b, int) or b <= 0 for b in self.buckets):
        problems.append(f"buckets must be positive integers, got {self.buckets}")
      elif max(self.buckets) != self.seq_len:
        problems.append(f"the longest bucket must equal seq_len={self.seq_len}, got buckets {self.buckets}")
    if self.lora_rank is not None:
      try:
        self.lora
      except ValueError as e:
        problems.append(str(e))
    if problems:
      raise ValueError("invalid TrainConfig: " + "; ".join(problems))

  @property
  def micro_batch(self) -> int:
    """Rows per micro-batch (one forward/backward pass)."""
    return self.batch_size // self.grad_accum

  @property
  def lora(self) -> LoraConfig | None:
    """The adapters to train, or None for full fine-tuning."""
    if self.lora_rank is None:
      return None
    from restreact.models.lora import LoraConfig  # imports jax: not needed to check a config
    return LoraConfig(self.lora_rank, self.lora_alpha, tuple(self.lora_targets))

  @property
  def bucket_lengths(self) -> tuple[int, ...]:
    """Row lengths, shortest first: the only sequence lengths the train step is compiled for."""
    if self.buckets is not None:
      return tuple(sorted(set(self.buckets)))
    return tuple(sorted({max(1, self.seq_len // 4), max(1, self.seq_len // 2), self.seq_len}))

  def replace(self, **changes) -> TrainConfig:
    """A copy with some fields changed (validated again)."""
    return dataclasses.replace(self, **changes)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)


# Fields that may change between a run and its resumption without changing what is being trained.
RESUMABLE_CHANGES = frozenset({"save_every", "keep", "eval_every", "log_every", "progress"})
