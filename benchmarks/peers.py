"""The engine against the samplers a JAX user would pick instead, on the same weights, in one run.

Peers: DeepMind's `gemma` library (`gm.text.Sampler`) and tunix (`tunix.generate.sampler.Sampler`). All three
load one random small Gemma 3 (7.8M parameters, `benchmarks/small_gemma.py`) from one HF-layout checkpoint
directory and decode greedily with every stop token disabled, so each produces exactly `new` tokens; the
script checks that the tokens are the same. Rows: decode tokens/s at batch 1, 8 and 64 (32-token prompts,
128 new tokens), and time to first token for a 2,000-token shared prefix + a 200-token suffix.

The peers need Python >= 3.12 and pins of their own, so this runs in its own environment:
  bash benchmarks/peers_env.sh          # builds .venv-peers (the project's own pins stay as they are)
  .venv-peers/bin/python benchmarks/peers.py
"""

from __future__ import annotations

import argparse
import enum
import glob
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.report import append, interleaved, markdown_table  # noqa: E402
from benchmarks.small_gemma import SMALL, random_model  # noqa: E402
from restreact.generate import Engine  # noqa: E402
from restreact.models import from_pretrained, save_pretrained  # noqa: E402

try:
  from gemma import gm
  from safetensors.numpy import load_file
  from tunix.generate import sampler as tunix_sampler
  from tunix.models.gemma3 import model as tunix_gemma3
  from tunix.models.gemma3 import params_safetensors as tunix_params
except ImportError as e:
  raise SystemExit(f"{e}: the peers live in their own environment; run `bash benchmarks/peers_env.sh`, then "
                   "`.venv-peers/bin/python benchmarks/peers.py`") from e

BOS = SMALL.bos_id
NEVER = -1  # a stop token id that no model samples: every sequence runs its full length


# ---------------------------------------------------------------- the gemma library


class _NoStopTokens(gm.text.SpecialTokens, enum.IntEnum):
  """Gemma 3's special ids, with every id the sampler stops at set to one that is never sampled."""
  PAD = 0
  EOS = NEVER
  BOS = 2
  UNK = 3
  MASK = 4
  CUSTOM = 6
  START_OF_TURN = -2
  END_OF_TURN = -3
  IMAGE_PLACEHOLDER = -4
  START_OF_IMAGE = -5
  END_OF_IMAGE = -6
  BEGIN_OF_TOOL_RESPONSE = -7


class _GemmaIdTokenizer(gm.text.Tokenizer):
  """Prompts are token ids written as text ("5 17 9"), so every side sees the same ids."""

  @property
  def special_tokens(self):
    return _NoStopTokens

  def encode(self, text, *, add_bos=False, add_eos=False):
    return ([BOS] if add_bos else []) + [int(t) for t in text.split()]

  def decode(self, ids):
    return " ".join(str(int(i)) for i in np.asarray(ids).reshape(-1))


def gemma_lib_model(cfg, tensors: dict[str, np.ndarray]):
  """The gemma library's Transformer for `cfg` and its params, mapped from HF-layout tensors."""
  types = {"local": gm.nn.config.AttentionType.LOCAL_SLIDING, "global": gm.nn.config.AttentionType.GLOBAL}
  config = gm.nn.config.TransformerConfig(
      num_embed=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim, num_heads=cfg.num_heads,
      head_dim=cfg.head_dim, num_kv_heads=cfg.num_kv_heads, final_logit_softcap=cfg.final_softcap,
      use_post_attn_norm=True, use_post_ffw_norm=True, use_qk_norm=cfg.use_qk_norm,
      attention_types=tuple(types[t] for t in cfg.layer_types), attn_logits_soft_cap=cfg.attn_softcap,
      sliding_window_size=cfg.sliding_window, transpose_gating_einsum=True,
      local_base_frequency=int(cfg.local_rope_base), global_base_frequency=int(cfg.global_rope_base),
      vision_encoder=None)
  assert cfg.query_pre_attn_scalar == cfg.head_dim, "the mapping below assumes 1/sqrt(head_dim) query scaling"
  n, k, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.embed_dim
  heads = lambda w, count: w.reshape(count, h, d).transpose(0, 2, 1)  # [count*h, d] -> [count, d, h]
  params = {"embedder": {"input_embedding": tensors["model.embed_tokens.weight"]},
            "final_norm": {"scale": tensors["model.norm.weight"]}}
  for i in range(cfg.num_layers):
    t = lambda name: tensors[f"model.layers.{i}.{name}.weight"]
    params[f"layer_{i}"] = {
        "attn": {"q_einsum": {"w": heads(t("self_attn.q_proj"), n)},
                 "kv_einsum": {"w": np.stack([heads(t("self_attn.k_proj"), k), heads(t("self_attn.v_proj"), k)])},
                 "attn_vec_einsum": {"w": t("self_attn.o_proj").T.reshape(n, h, d)},
                 "_query_norm": {"scale": t("self_attn.q_norm")}, "_key_norm": {"scale": t("self_attn.k_norm")}},
        "mlp": {"gating_einsum": np.stack([t("mlp.gate_proj"), t("mlp.up_proj")]), "linear": t("mlp.down_proj").T},
        "pre_attention_norm": {"scale": t("input_layernorm")},
        "post_attention_norm": {"scale": t("post_attention_layernorm")},
        "pre_ffw_norm": {"scale": t("pre_feedforward_layernorm")},
        "post_ffw_norm": {"scale": t("post_feedforward_layernorm")}}
  model = gm.nn.Transformer(config=config)
  expected = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32)))["params"]
  if jax.tree.map(lambda x: x.shape, expected) != jax.tree.map(np.shape, params):
    raise SystemExit("the gemma library's parameter tree changed; update gemma_lib_model's mapping")
  return model, jax.tree.map(jnp.asarray, params)


class GemmaLibSide:
  name = "gemma library"

  def __init__(self, cfg, tensors):
    self.model, self.params = gemma_lib_model(cfg, tensors)
    self.samplers = {}

  def generate(self, prompts: np.ndarray, new: int) -> np.ndarray:
    """Greedy tokens [batch, new]; a sampler per length, reused (its cache and output lengths are static)."""
    key = (prompts.shape[1] + 1 + new, new)
    if key not in self.samplers:
      self.samplers[key] = gm.text.Sampler(model=self.model, params=self.params, tokenizer=_GemmaIdTokenizer(path=""),
                                           cache_length=key[0], max_out_length=new, pad_length=None)
    out = self.samplers[key].sample([" ".join(map(str, p)) for p in prompts], max_new_tokens=new, return_state=True)
    return np.asarray(out.state.predicted_tokens)[:, :new]


# ---------------------------------------------------------------- tunix


class _TunixIdTokenizer:
  """The five methods tunix's TokenizerAdapter asks of a tokenizer."""

  def encode(self, text, **_):
    return [int(t) for t in text.split()]

  def decode(self, ids, **_):
    return " ".join(str(int(i)) for i in ids)

  def bos_id(self):
    return BOS

  def eos_id(self):
    return NEVER

  def pad_id(self):
    return SMALL.pad_id


class TunixSide:
  name = "tunix"

  def __init__(self, cfg, path: str):
    config = tunix_gemma3.ModelConfig(
        num_layers=cfg.num_layers, num_embed=cfg.vocab_size, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim,
        num_heads=cfg.num_heads, head_dim=cfg.head_dim, num_kv_heads=cfg.num_kv_heads,
        sliding_window_size=cfg.sliding_window, local_base_frequency=int(cfg.local_rope_base),
        global_base_frequency=int(cfg.global_rope_base), param_dtype=jnp.float32)
    # tunix places the global layer by index (every sixth); the benchmark's pattern must be that one.
    assert cfg.layer_types == tuple("global" if (i + 1) % 6 == 0 else "local" for i in range(cfg.num_layers))
    self.cfg = cfg
    self.model = tunix_params.create_model_from_safe_tensors(path, config, dtype=jnp.float32)
    self.samplers = {}

  def generate(self, prompts: np.ndarray, new: int) -> np.ndarray:
    length = prompts.shape[1] + 1
    key = length + new
    if key not in self.samplers:  # a sampler per cache size, reused: its jitted steps are per instance
      self.samplers[key] = tunix_sampler.Sampler(self.model, _TunixIdTokenizer(), tunix_sampler.CacheConfig(
          cache_size=key, num_layers=self.cfg.num_layers, num_kv_heads=self.cfg.num_kv_heads,
          head_dim=self.cfg.head_dim))
    out = self.samplers[key]([" ".join(map(str, p)) for p in prompts], max_generation_steps=new,
                             max_prompt_length=length, eos_tokens=[NEVER], echo=False)
    return np.stack([np.asarray(t)[:new] for t in out.tokens])


# ---------------------------------------------------------------- restreact


class EngineSide:
  name = "restreact"

  def __init__(self, model, cache_blocks: int | None = 0):
    self.model, self.cache_blocks, self.engines = model, cache_blocks, {}

  def generate(self, prompts: np.ndarray, new: int) -> np.ndarray:
    length = prompts.shape[1] + 1
    key = (len(prompts), length + new)
    if key not in self.engines:
      self.engines[key] = Engine(self.model, None, num_slots=len(prompts), max_len=length + new, eos_ids=(),
                                 steps_per_round=16, prefill_chunk=256, prefill_buckets=(16, 64),
                                 cache_blocks=self.cache_blocks)
    out = self.engines[key].generate([[BOS] + p.tolist() for p in prompts], max_new_tokens=new)
    return np.array([c[0].tokens for c in out])


# ---------------------------------------------------------------- the table


def machine_peaks() -> tuple[float, float]:
  """This machine's float32 matmul FLOP/s (2048^3) and read bandwidth (bytes/s summing 512 MiB), measured."""
  a = jnp.ones((2048, 2048), jnp.float32)
  big = jnp.ones((128 << 20,), jnp.float32)
  matmul, total = jax.jit(lambda a: a @ a), jax.jit(jnp.sum)
  t_mm, _ = timed(lambda: matmul(a).block_until_ready(), 5)
  t_sum, _ = timed(lambda: total(big).block_until_ready(), 5)
  return 2 * 2048 ** 3 / t_mm, big.nbytes / t_sum


def bound_tokens_per_s(cfg, batch: int, prompt: int, new: int, peaks: tuple[float, float]) -> float:
  """The fastest a decode call could go here: each decode step reads every weight once (bandwidth) and does
  2 FLOPs per weight per sequence (matmul peak), whichever takes longer; the prefill at matmul peak.
  Attention over the short contexts is left out, so the bound is a little optimistic."""
  flop_rate, byte_rate = peaks
  body = cfg.num_params - cfg.vocab_size * cfg.embed_dim  # weights of the layers
  head = cfg.vocab_size * cfg.embed_dim  # the tied output projection, applied once per decoded token
  step = max(batch * 2 * (body + head) / flop_rate, 4 * cfg.num_params / byte_rate)
  return batch * new / (batch * prompt * 2 * body / flop_rate + new * step)


def timed(fn, repeats: int):
  """Median seconds of `repeats` calls after a warm-up call (compilation excluded), and the last result."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), out


def decode_rows(sides, batches, prompt_len: int, new: int, repeats: int, peaks):
  rows, rng = [], np.random.default_rng(0)
  for batch in batches:
    prompts = rng.integers(3, SMALL.vocab_size, (batch, prompt_len))
    outs, seconds = interleaved({s.name: lambda s=s: s.generate(prompts, new) for s in sides}, repeats)
    results = {name: (seconds[name], outs[name]) for name in outs}
    ours_t, ours = results["restreact"]
    bound = bound_tokens_per_s(SMALL, batch, prompt_len + 1, new, peaks)
    row = [f"decode, batch {batch}", f"{bound:,.0f}", f"{batch * new / ours_t:,.0f} ({batch * new / ours_t / bound:.0%})"]
    for s in sides[1:]:
      t, out = results[s.name]
      row += [f"{batch * new / t:,.0f} ({batch * new / t / bound:.0%})", f"{t / ours_t:.2f}x", f"{np.mean((out == ours).all(axis=1)):.0%}"]
    rows.append(row)
    print(row, flush=True)
  return rows


def ttft_rows(sides, cached: EngineSide, prefix_len: int, suffix_len: int, repeats: int):
  """First token of prefix + suffix, a new suffix each call (the engine's prefix cache keeps the prefix)."""
  rng = np.random.default_rng(2)
  prefix = rng.integers(3, SMALL.vocab_size, prefix_len)
  suffixes = [rng.integers(3, SMALL.vocab_size, suffix_len) for _ in range(repeats + 1)]
  calls = {s: iter(suffixes) for s in [*sides, cached]}  # every side sees the same prompts in the same order
  outs, seconds = interleaved({s: lambda s=s: s.generate(np.concatenate([prefix, next(calls[s])])[None], 1)
                               for s in calls}, repeats)
  results = {s: (seconds[s], outs[s]) for s in calls}
  ours_t, ours = results[sides[0]]
  cached_t, cached_out = results[cached]
  row = [f"time to first token, {prefix_len:,}-token shared prefix + {suffix_len}-token suffix", "",
         f"{ours_t * 1e3:,.0f} ms ({cached_t * 1e3:,.0f} ms with its prefix cache)"]
  for s in sides[1:]:
    t, out = results[s]
    row += [f"{t * 1e3:,.0f} ms", f"{t / ours_t:.2f}x ({t / cached_t:.1f}x)",
            f"{float(out[0, 0] == ours[0, 0] == cached_out[0, 0]):.0%}"]
  print(row, flush=True)
  return [row]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
  parser.add_argument("--prompt-len", type=int, default=32)
  parser.add_argument("--new-tokens", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--append-to", default=None, help="file to append to (default BENCHMARKS.md)")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    save_pretrained(random_model(SMALL), tmp)
    tensors = {k: v for f in sorted(glob.glob(f"{tmp}/*.safetensors")) for k, v in load_file(f).items()}
    model, _ = from_pretrained(tmp, progress=False)
    sides = [EngineSide(model), GemmaLibSide(SMALL, tensors), TunixSide(SMALL, tmp)]
  peaks = machine_peaks()
  print(f"small Gemma 3: {SMALL.num_params / 1e6:.1f}M parameters; this machine: {peaks[0] / 1e9:.0f} GFLOP/s "
        f"float32 matmul, {peaks[1] / 1e9:.0f} GB/s read", flush=True)
  rows = decode_rows(sides, args.batches, args.prompt_len, args.new_tokens, args.repeats, peaks)
  rows += ttft_rows(sides, EngineSide(model, cache_blocks=None), 2000, 200, args.repeats + 2)
  header = ["greedy, float32", "bound (tokens/s)", "restreact (share of bound)"]
  for s in sides[1:]:
    header += [s.name, f"restreact vs {s.name}", f"same tokens as {s.name}"]
  notes = (f"Decode: {args.prompt_len}-token prompts (+ BOS), {args.new_tokens} new tokens each; tokens/s of the "
           f"whole call (prefill included), median of {args.repeats} after a warm-up call that compiles, the sides "
           "timed in turn so that background load hits all alike. Every "
           "side decodes greedily with its stop tokens set to an id that is never sampled. restreact: `Engine` "
           "with as many slots as the batch, 16 decode steps per host round trip, prefix cache off (the timed "
           "calls repeat prompts). gemma library: `gm.text.Sampler` (`cache_length` = prompt + new, no "
           "padding). tunix: `tunix.generate.sampler.Sampler` on `tunix.models.gemma3` loaded from the same "
           "safetensors. Both peers keep the decode loop on device in one call. Time to first token: one prompt "
           "of a fixed 2,000-token prefix and a new 200-token suffix each call; the peers have no cross-request "
           "prefix cache, so the first ratio is prefill against prefill and the one in brackets is against the "
           "engine with its automatic prefix cache (the prefix's blocks reused). 'same tokens': share of "
           "sequences whose tokens are identical to restreact's. Environment: `bash benchmarks/peers_env.sh` "
           "(Python 3.12, gemma 4.0.1, google-tunix 0.1.7, the project's jax and flax pins). Bound: the "
           f"fastest a call could go on this machine, measured here at {peaks[0] / 1e9:.0f} GFLOP/s (float32 "
           f"2048^3 matmul) and {peaks[1] / 1e9:.0f} GB/s (summing 512 MiB): each decode step reads every "
           "weight once or does 2 FLOPs per weight per sequence, whichever takes longer, and the prefill runs "
           "at matmul peak (attention left out). Batch 1 is bandwidth-bound and batch 64 compute-bound, so "
           "the bound caps any sampler's lead over another at bound / the other's speed.")
  platform = jax.devices()[0].platform.upper()
  append(f"The engine against the gemma library's and tunix's samplers, small Gemma 3 (7.8M params), {platform}",
         markdown_table(header, rows), notes, path=args.append_to)


if __name__ == "__main__":
  main()
