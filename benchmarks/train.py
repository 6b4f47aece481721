"""Fine-tuning throughput: restreact's train step (JAX) against transformers + peft (PyTorch), same weights and batch.

CPU (default): a small Gemma 3 config in float32, LoRA (rank 8 on every projection) and full fine-tuning,
AdamW with gradient clipping on both sides; tokens/s of one optimizer step on one batch.
GPU (--gpu): a Gemma-3-1B-shaped model, full fine-tuning in bfloat16 (float32 masters and Adam moments);
tokens/s and MFU (model FLOPs = 3 x the forward count of benchmarks/forward.py).
Random weights are created with transformers and loaded by `from_pretrained`, so both sides start from
identical parameters; the first step's losses are checked to agree.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import peft
import torch
import transformers
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.forward import SMALL, forward_flops_per_token, mfu_cells  # noqa: E402
from benchmarks.report import append, interleaved, markdown_table, require_gpu, shape_parser  # noqa: E402
from restreact.models import GemmaConfig, from_pretrained  # noqa: E402
from restreact.models.gemma.hf_config import to_hf_config  # noqa: E402
from restreact.train import TrainConfig, prepare_model  # noqa: E402
from restreact.train.step import init_state, make_train_step, optimizer, trainable_filter  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def hf_model(cfg: GemmaConfig, dtype: torch.dtype) -> torch.nn.Module:
  hf_config = transformers.AutoConfig.for_model(**to_hf_config(cfg))
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
  with torch.no_grad():  # non-zero norms so that the loss comparison means something
    for name, p in model.named_parameters():
      if name.endswith("norm.weight"):
        p.normal_(0, 0.3)
  return model


def ours(model, config: TrainConfig, tokens: np.ndarray):
  """A jitted train step on `tokens` [batch, length + 1] (every position a target); returns step()."""
  model = prepare_model(model, config)
  graphdef, params, frozen = nnx.split(model, trainable_filter(config), ...)
  tx = optimizer(config)
  state = jax.jit(lambda p: init_state(p, config, tx), donate_argnums=0)(params)
  b, t = tokens.shape[0], tokens.shape[1] - 1
  batch = {"inputs": tokens[None, :, :-1], "labels": tokens[None, :, 1:], "weights": np.ones((1, b, t), np.float32),
           "positions": np.broadcast_to(np.arange(t, dtype=np.int32), (1, b, t)),
           "segment_ids": np.ones((1, b, t), np.int32)}
  batch = jax.device_put({k: jnp.asarray(v) for k, v in batch.items()})
  step_fn = jax.jit(make_train_step(graphdef, config, tx), donate_argnums=0)
  holder = {"state": state}

  def step() -> float:
    holder["state"], metrics = step_fn(holder["state"], frozen, batch)
    return float(metrics["loss"])  # waits for the step

  return step


def theirs(model: torch.nn.Module, lora: bool, tokens: np.ndarray, device: str, lr: float):
  """transformers (+ peft) with torch AdamW and clipping, the same loss; returns step()."""
  if lora:
    model = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, lora_dropout=0.0))
  model = model.to(device).train()
  params = [p for p in model.parameters() if p.requires_grad]
  opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
  inputs = torch.as_tensor(tokens[:, :-1], dtype=torch.long, device=device)
  labels = torch.as_tensor(tokens[:, 1:], dtype=torch.long, device=device)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def step() -> float:
    logits = model(input_ids=inputs, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), labels.flatten())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
    return float(loss)

  return step


def run(cfg: GemmaConfig, *, lora: bool, batch: int, seq_len: int, dtype: str, device: str, repeats: int) -> dict:
  torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
  hf = hf_model(cfg, torch_dtype)
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    model, _ = from_pretrained(tmp, dtype="float32" if dtype == "float32" else "bfloat16", progress=False)
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq_len + 1)).astype(np.int32)
  lr = 1e-4
  config = TrainConfig(total_steps=1000, batch_size=batch, seq_len=seq_len, learning_rate=lr, clip_norm=1.0,
                       lora_rank=8 if lora else None, lora_alpha=16.0, param_dtype=dtype)
  first, seconds = interleaved({"ours": ours(model, config, tokens), "theirs": theirs(hf, lora, tokens, device, lr)},
                               repeats)
  n = batch * seq_len
  return dict(ours=n / seconds["ours"], theirs=n / seconds["theirs"], t_ours=seconds["ours"],
              t_theirs=seconds["theirs"], loss_diff=abs(first["ours"] - first["theirs"]),
              flops=3 * forward_flops_per_token(cfg, seq_len) * n, attn=hf.config._attn_implementation)


def main():
  args = shape_parser(__doc__, "Gemma-3-1B shape, bfloat16 full fine-tuning on the GPU").parse_args()
  if args.gpu:
    require_gpu()
    cfg, dtype, device = GemmaConfig.preset("gemma3-1b"), "bfloat16", "cuda"
    runs = [("full", False, args.batch or 4, args.seq_len or 2048)]
  else:
    cfg, dtype, device = SMALL, "float32", "cpu"
    runs = [(mode, mode == "LoRA r=8", args.batch or 4, args.seq_len or 256) for mode in ("LoRA r=8", "full")]

  rows = []
  for mode, lora, batch, seq_len in runs:
    r = run(cfg, lora=lora, batch=batch, seq_len=seq_len, dtype=dtype, device=device, repeats=args.repeats)
    row = [mode, f"{batch}x{seq_len}", f"{r['ours']:,.0f}", f"{r['theirs']:,.0f} ({r['attn']})",
           f"{r['ours'] / r['theirs']:.2f}x", f"{r['loss_diff']:.1e}"]
    if args.gpu:
      row += mfu_cells(r["flops"], r["t_ours"], r["t_theirs"])
    rows.append(row)
    print(row, flush=True)
  header = ["fine-tuning", "batch x length", "restreact tokens/s", "transformers+peft tokens/s", "ratio",
            "first-step loss diff"]
  if args.gpu:
    header += ["restreact MFU", "transformers MFU"]
  size = f"{cfg.num_params / 1e6:.0f}M params"
  title = (f"Fine-tuning step, Gemma-3-1B shape ({size}), bfloat16, GPU" if args.gpu
           else f"Fine-tuning step, small Gemma 3 ({size}: 6 layers, d=512, vocab 16k), float32, CPU")
  notes = ("One optimizer step (forward, backward, global-norm clipping at 1.0, AdamW) on the same batch and the "
           f"same starting weights (created by transformers, loaded with `from_pretrained`); median of {args.repeats} "
           "steps after a warm-up step, the two sides timed in turn. restreact: `restreact.train.step` jitted, "
           "buffers donated, loss over every position. transformers: the model in train mode (+ peft "
           "`get_peft_model` for LoRA, rank 8, alpha 16, all seven projections, no dropout), torch AdamW, the same "
           "cross-entropy computed from the logits.")
  if args.gpu:
    notes += (" restreact keeps float32 master weights and Adam moments; transformers trains its bfloat16 weights "
              "in place. MFU = 3 x (2 x matmul params + 4 x layers x heads x head_dim x length) x tokens / time / "
              "peak dense bf16 FLOP/s (989 TFLOP/s for H100 SXM).")
  load = os.getloadavg()[0]
  notes += f" Load average when the run ended: {load:.1f} on {os.cpu_count()} cores (other work shared the machine)."
  append(title, markdown_table(header, rows), notes, path=args.append_to)


if __name__ == "__main__":
  main()
