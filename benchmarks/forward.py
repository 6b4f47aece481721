"""Forward-pass throughput: restreact (JAX) against transformers (PyTorch) on the same weights.

CPU (default): a small Gemma 3 config in float32, both frameworks in one run.
GPU (--gpu): a Gemma-3-1B-shaped model in bfloat16; tokens/s and MFU, transformers on the same GPU.
Random weights are created with transformers, saved as a HF directory, and loaded by restreact's
`from_pretrained`, so both sides compute with identical parameters. Outputs are checked to agree.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import torch
import transformers
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import append, markdown_table, require_gpu, shape_parser  # noqa: E402
from restreact.models import from_pretrained  # noqa: E402
from restreact.models.gemma.hf_config import to_hf_config  # noqa: E402
from restreact.models import GemmaConfig  # noqa: E402
from restreact.models.gemma.config import gemma3_layer_types  # noqa: E402

PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense, from NVIDIA's data sheets


def mfu_cells(flops: float, *seconds: float) -> list[str]:
  """Model FLOPs utilisation of each timing against the GPU's dense bf16 peak ("n/a" for an unknown GPU)."""
  kind = jax.devices()[0].device_kind
  peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in kind), None)
  return [f"{flops / t / peak:.1%}" if peak else "n/a" for t in seconds]

SMALL = GemmaConfig.preset("gemma3-1b").replace(vocab_size=16_384, embed_dim=512, hidden_dim=2048, num_layers=6,
                                                  num_heads=8, num_kv_heads=4, head_dim=64, sliding_window=128,
                                                  query_pre_attn_scalar=64, layer_types=gemma3_layer_types(6))


def forward_flops_per_token(cfg: GemmaConfig, seq_len: int) -> float:
  """PaLM-style count: 2 x matmul parameters (output projection included) + 4 x layers x heads x head_dim x T.

  Attention is counted over the full (causal-masked) length on every layer, as the kernels compute it.
  """
  attn_proj = cfg.embed_dim * cfg.head_dim * (2 * cfg.num_heads + 2 * cfg.num_kv_heads)
  mlp = 3 * cfg.embed_dim * cfg.hidden_dim
  matmul_params = cfg.num_layers * (attn_proj + mlp) + cfg.vocab_size * cfg.embed_dim
  return 2 * matmul_params + 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq_len


def time_it(fn, repeats: int) -> float:
  """Median seconds of `fn()` after one warm-up call (compilation excluded)."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def run(cfg: GemmaConfig, *, batch: int, seq_len: int, dtype: str, device: str, repeats: int):
  torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
  hf_config = transformers.AutoConfig.for_model(**to_hf_config(cfg))
  torch.manual_seed(0)
  hf_model = transformers.AutoModelForCausalLM.from_config(hf_config, dtype=torch_dtype).eval()
  with torch.no_grad():  # non-zero norms so the comparison below means something
    for name, p in hf_model.named_parameters():
      if name.endswith("norm.weight"):
        p.normal_(0, 0.3)
  with tempfile.TemporaryDirectory() as tmp:
    hf_model.save_pretrained(tmp)
    model, _ = from_pretrained(tmp, dtype=dtype, progress=False)
  hf_model = hf_model.to(device)
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, seq_len)).astype(np.int32)

  graphdef, state = nnx.split(model)
  jax_forward = jax.jit(lambda state, t: nnx.merge(graphdef, state)(t))
  jax_tokens = jax.device_put(tokens)
  ours = lambda: jax.block_until_ready(jax_forward(state, jax_tokens))
  t_tokens = torch.as_tensor(tokens, dtype=torch.long, device=device)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def theirs():
    with torch.inference_mode():
      out = hf_model(input_ids=t_tokens, use_cache=False).logits
    sync()
    return out

  diff = float(np.abs(np.asarray(ours(), np.float32) - theirs().float().cpu().numpy()).max())
  t_ours, t_theirs = time_it(ours, repeats), time_it(theirs, repeats)
  n = batch * seq_len
  return dict(ours=n / t_ours, theirs=n / t_theirs, diff=diff, flops=forward_flops_per_token(cfg, seq_len) * n,
              t_ours=t_ours, t_theirs=t_theirs, attn=hf_model.config._attn_implementation)


def main():
  args = shape_parser(__doc__, "Gemma-3-1B shape in bfloat16 on the GPU").parse_args()
  if args.gpu:
    require_gpu()
    cfg, dtype, device = GemmaConfig.preset("gemma3-1b"), "bfloat16", "cuda"
    shapes = [(args.batch or 8, args.seq_len or 2048), (args.batch or 32, args.seq_len or 512)]
  else:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg, dtype, device = SMALL, "float32", "cpu"
    shapes = [(args.batch or 2, args.seq_len or 512), (args.batch or 8, args.seq_len or 128)]

  rows = []
  for batch, seq_len in shapes:
    r = run(cfg, batch=batch, seq_len=seq_len, dtype=dtype, device=device, repeats=args.repeats)
    row = [f"{batch}x{seq_len}", f"{r['ours']:,.0f}", f"{r['theirs']:,.0f} ({r['attn']})",
           f"{r['ours'] / r['theirs']:.2f}x", f"{r['diff']:.1e}"]
    if args.gpu:
      row += mfu_cells(r["flops"], r["t_ours"], r["t_theirs"])
    rows.append(row)
    print(row, flush=True)
  header = ["batch x length", "restreact tokens/s", "transformers tokens/s", "ratio", "max abs logit diff"]
  if args.gpu:
    header += ["restreact MFU", "transformers MFU"]
  size = f"{cfg.num_params / 1e6:.0f}M params"
  title = (f"Forward pass, Gemma-3-1B shape ({size}), bfloat16, GPU" if args.gpu
           else f"Forward pass, small Gemma 3 ({size}: 6 layers, d=512, vocab 16k), float32, CPU")
  notes = ("Same weights in both (created by transformers, loaded with `from_pretrained`); median of "
           f"{args.repeats} timed calls after a warm-up; restreact is one jitted call, transformers runs "
           "under `torch.inference_mode()` with its default attention and `use_cache=False`.")
  if args.gpu:
    notes += (" MFU = (2 x matmul params + 4 x layers x heads x head_dim x length) x tokens / time / peak dense "
              "bf16 FLOP/s (989 TFLOP/s for H100 SXM).")
  append(title, markdown_table(header, rows), notes, path=args.append_to)


if __name__ == "__main__":
  main()
