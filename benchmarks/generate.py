"""Sampling-engine throughput against transformers' `generate`, on the same weights, in one run.

- Decode tokens/s at batch 1, 8 and 64 and prefill tokens/s, small Gemma 3 (7.8M parameters), CPU.
- Time to first token for a 2,000-token preamble + 200-token suffix, with and without prefix reuse.
- KV-cache bytes at a 32k context for the Gemma-3-1B shape: ring buffers against a full cache.
Both sides decode greedily with EOS disabled, so they produce the same number of tokens; the
script checks that they also produce the same tokens.
"""

from __future__ import annotations

import argparse
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
from benchmarks.report import append, markdown_table  # noqa: E402
from restreact.generate import Engine  # noqa: E402
from benchmarks.small_gemma import SMALL  # noqa: E402
from restreact.models import GemmaConfig, Transformer, from_pretrained  # noqa: E402
from restreact.models.gemma.hf_config import to_hf_config  # noqa: E402


def same_weights(cfg: GemmaConfig):
  """A transformers model and the restreact model loaded from its saved directory."""
  torch.manual_seed(0)
  hf = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**to_hf_config(cfg)),
                                                     dtype=torch.float32).eval()
  with torch.no_grad():
    for name, p in hf.named_parameters():
      if name.endswith("norm.weight"):
        p.normal_(0, 0.3)
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    model, _ = from_pretrained(tmp, progress=False)
  return hf, model


def timed(fn):
  start = time.perf_counter()
  out = fn()
  return time.perf_counter() - start, out


def hf_generate(hf, prompts: np.ndarray, new: int):
  with torch.inference_mode():
    return hf.generate(torch.as_tensor(prompts, dtype=torch.long), max_new_tokens=new, min_new_tokens=new,
                       do_sample=False, eos_token_id=None, pad_token_id=0,
                       attention_mask=torch.ones(prompts.shape, dtype=torch.long))


def decode_rows(hf, model, batches, prompt_len: int, new: int):
  rows = []
  rng = np.random.default_rng(0)
  for batch in batches:
    prompts = rng.integers(3, SMALL.vocab_size, (batch, prompt_len))
    # cache_blocks=0: the timed run repeats the warm-up's prompts, which the prefix cache would not recompute.
    engine = Engine(model, None, num_slots=batch, max_len=prompt_len + new, eos_ids=(), steps_per_round=16,
                    prefill_chunk=64, prefill_buckets=(16,), cache_blocks=0)
    run = lambda: engine.generate(prompts.tolist(), max_new_tokens=new)
    run()  # compile
    t_ours, out = timed(run)
    hf_generate(hf, prompts[:, :8], 2)  # warm-up
    t_hf, hf_out = timed(lambda: hf_generate(hf, prompts, new))
    same = np.mean([c[0].tokens == hf_out[i, prompt_len:].tolist() for i, c in enumerate(out)])
    ours, theirs = batch * new / t_ours, batch * new / t_hf
    rows.append([f"decode, batch {batch}", f"{ours:,.0f}", f"{theirs:,.0f}", f"{ours / theirs:.2f}x",
                 f"{same:.0%}"])
    print(rows[-1], flush=True)
  return rows


def prefill_row(hf, model, batch: int, prompt_len: int):
  prompts = np.random.default_rng(1).integers(3, SMALL.vocab_size, (batch, prompt_len))
  engine = Engine(model, None, num_slots=batch, max_len=prompt_len + 1, eos_ids=(), prefill_chunk=256,
                  prefill_buckets=(64,), cache_blocks=0)  # the timed run repeats the warm-up's prompts
  run = lambda: engine.generate(prompts.tolist(), max_new_tokens=1)
  run()
  t_ours, out = timed(run)
  hf_generate(hf, prompts[:, :8], 1)
  t_hf, hf_out = timed(lambda: hf_generate(hf, prompts, 1))
  same = np.mean([c[0].tokens == hf_out[i, prompt_len:].tolist() for i, c in enumerate(out)])
  ours, theirs = batch * prompt_len / t_ours, batch * prompt_len / t_hf
  return [f"prefill, {batch} x {prompt_len} tokens (+1 new)", f"{ours:,.0f}", f"{theirs:,.0f}",
          f"{ours / theirs:.2f}x", f"{same:.0%}"]


def ttft_rows(model, preamble_len: int = 2000, suffix_len: int = 200, repeats: int = 7):
  rng = np.random.default_rng(2)
  preamble = rng.integers(3, SMALL.vocab_size, preamble_len).tolist()
  # Without the prefix cache every prompt prefills from scratch; with it, the preamble's blocks are copied in.
  make = lambda blocks: Engine(model, None, num_slots=4, max_len=preamble_len + suffix_len + 8, eos_ids=(),
                               prefill_chunk=256, prefill_buckets=(16, 64), cache_blocks=blocks)
  engines = {"plain": make(0), "reused": make(None)}
  suffixes = [rng.integers(3, SMALL.vocab_size, suffix_len).tolist() for _ in range(repeats + 1)]
  first = lambda e, s: e.generate([preamble + s], max_new_tokens=1)[0][0].tokens
  first(engines["plain"], suffixes[0])  # compile the plain path
  plain = [timed(lambda s=s: first(engines["plain"], s)) for s in suffixes[1:]]
  engines["reused"].register_prefix(preamble)
  first(engines["reused"], suffixes[0])  # compile the reuse path
  reused = [timed(lambda s=s: first(engines["reused"], s)) for s in suffixes[1:]]
  assert [o for _, o in plain] == [o for _, o in reused], "prefix reuse changed the first token"
  t_plain, t_reused = np.median([t for t, _ in plain]), np.median([t for t, _ in reused])
  return [[f"time to first token, {preamble_len}-token preamble + {suffix_len}-token suffix",
           f"{t_plain * 1e3:,.0f} ms", f"{t_reused * 1e3:,.0f} ms", f"{t_plain / t_reused:.1f}x"]]


def kv_bytes_rows(context: int = 32_768, prefill_chunk: int = 256):
  cfg = GemmaConfig.preset("gemma3-1b", param_dtype="bfloat16", dtype="bfloat16")
  abstract = nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0)))
  sizes = {}
  for name, local in (("full cache", context), ("ring buffers", cfg.sliding_window + prefill_chunk - 1)):
    cache = jax.eval_shape(lambda local=local: abstract.init_cache(1, context, local_length=local))
    sizes[name] = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(cache))
  return [[f"KV cache per sequence, Gemma-3-1B shape, {context:,} context, bf16",
           f"{sizes['full cache'] / 2**20:,.0f} MiB", f"{sizes['ring buffers'] / 2**20:,.0f} MiB",
           f"{sizes['full cache'] / sizes['ring buffers']:.1f}x"]]


HBM_BYTES_PER_S = {"H100": 3.35e12, "H200": 4.8e12, "A100": 2.0e12}  # NVIDIA data sheets (SXM)


def gpu_rows(batches=(1, 128), prompt_len: int = 128, new: int = 256):
  """Gemma-3-1B shape in bfloat16 on the GPU: decode tokens/s, batch 1 against the HBM roofline, transformers."""
  cfg = GemmaConfig.preset("gemma3-1b", param_dtype="bfloat16", dtype="bfloat16")
  torch.manual_seed(0)
  hf = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**to_hf_config(cfg)),
                                                     dtype=torch.bfloat16).eval()
  with tempfile.TemporaryDirectory() as tmp:
    hf.save_pretrained(tmp)
    model, _ = from_pretrained(tmp, dtype="bfloat16", progress=False)
  hf = hf.to("cuda")
  kind = jax.devices()[0].device_kind
  bandwidth = next((v for k, v in HBM_BYTES_PER_S.items() if k in kind), None)
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(nnx.state(model)))
  rows = []
  for batch in batches:
    prompts = np.random.default_rng(0).integers(3, cfg.vocab_size, (batch, prompt_len))
    engine = Engine(model, None, num_slots=batch, max_len=prompt_len + new, eos_ids=(), steps_per_round=32)
    run = lambda: engine.generate(prompts.tolist(), max_new_tokens=new)
    run()
    t_ours, _ = timed(run)
    t_prefill, _ = timed(lambda: engine.generate(prompts.tolist(), max_new_tokens=1))
    step = (t_ours - t_prefill) / (new - 1)  # seconds per decode step, prefill excluded
    with torch.inference_mode():
      cuda = lambda: (hf.generate(torch.as_tensor(prompts, device="cuda"), max_new_tokens=new, min_new_tokens=new,
                                  do_sample=False, eos_token_id=None, pad_token_id=0), torch.cuda.synchronize())
      cuda()
      t_hf, _ = timed(cuda)
    kv_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(engine.cache))
    roofline = (param_bytes + kv_bytes) / bandwidth if bandwidth else None
    rows.append([f"decode, batch {batch}", f"{batch * new / t_ours:,.0f}", f"{batch * new / t_hf:,.0f}",
                 f"{t_hf / t_ours:.2f}x", f"{roofline / step:.0%}" if roofline and batch == 1 else ""])
    print(rows[-1], flush=True)
  return markdown_table(["Gemma-3-1B shape, bf16, greedy", "restreact tokens/s", "transformers tokens/s", "ratio",
                         "batch-1 step vs HBM roofline"], rows)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
  parser.add_argument("--prompt-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=128)
  parser.add_argument("--append-to", default=None, help="file to append to (default BENCHMARKS.md)")
  parser.add_argument("--gpu", action="store_true", help="only the GPU table (Gemma-3-1B shape, bfloat16)")
  args = parser.parse_args()
  if args.gpu:
    if jax.devices()[0].platform != "gpu" or not torch.cuda.is_available():
      raise SystemExit("--gpu needs a GPU visible to both JAX and PyTorch")
    notes = ("128-token prompts, 256 new tokens. Roofline: (parameter bytes + KV-cache bytes) / HBM bandwidth "
             "(3.35 TB/s H100 SXM) per decode step, divided by the measured step time (prefill excluded).")
    append("Generation engine, Gemma-3-1B shape, bfloat16, GPU", gpu_rows(), notes, path=args.append_to)
    return
  hf, model = same_weights(SMALL)
  print(f"small Gemma 3: {SMALL.num_params / 1e6:.1f}M parameters", flush=True)
  rows = decode_rows(hf, model, args.batches, args.prompt_len, args.new_tokens)
  rows.append(prefill_row(hf, model, batch=8, prompt_len=512))
  print(rows[-1], flush=True)
  throughput = markdown_table(["greedy, float32", "restreact tokens/s", "transformers generate tokens/s", "ratio",
                               "same tokens"], rows)
  reuse = markdown_table(["", "without reuse", "with prefix reuse", "speed-up"], ttft_rows(model))
  memory = markdown_table(["", "full cache", "ring buffers (local layers)", "ratio"], kv_bytes_rows())
  notes = (f"Decode: {args.prompt_len}-token prompts, {args.new_tokens} new tokens each, time of the whole "
           "`Engine.generate` / `model.generate` call after a warm-up (prefill included, compilation excluded); "
           "the engine has as many slots as the batch, 16 decode steps per host round trip. transformers runs "
           "greedy `generate` under `torch.inference_mode()` with its default attention and cache. "
           "'same tokens' is the share of sequences whose greedy tokens are identical. Time to first token: "
           "median of 7 after a warm-up of each path, prefill pieces of 256/64/16 tokens. KV bytes from the cache's "
           "shapes (keys, values and positions), 256-token prefill chunks.")
  append(f"Generation engine, small Gemma 3 ({SMALL.num_params / 1e6:.1f}M params), CPU",
         throughput + "\n\n" + reuse + "\n\n" + memory, notes, path=args.append_to)


if __name__ == "__main__":
  main()
