"""A tour of restreact.models on a CPU in about a minute.

Trains a tiny tokenizer, builds a tiny random Gemma 3, writes it as a Hugging Face checkpoint, loads it
back with `from_pretrained`, decodes greedily with the KV cache (checked against the full forward),
attaches LoRA adapters and merges them. With --checkpoint DIR it loads a real Gemma checkpoint instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from restreact.models import (GemmaConfig, LoraConfig, Transformer, apply_lora, from_pretrained, merge_lora,
                              save_pretrained, train_tokenizer)

TEXTS = [f"The river {name} flows through the city of {city}." for name in ("Arno", "Seine", "Tagus", "Elbe")
         for city in ("Florence", "Paris", "Lisbon", "Dresden", "Pisa")] * 10


@nnx.jit
def _step(model, tokens, positions, cache):
  return model(tokens, positions=positions, cache=cache)


def greedy(model, prompt: list[int], steps: int) -> list[int]:
  """Greedy continuation with the KV cache: one prefill, then one token per call."""
  cache = model.init_cache(1, len(prompt) + steps)
  tokens = jnp.asarray([prompt], jnp.int32)
  logits, cache = _step(model, tokens, jnp.arange(len(prompt))[None], cache)
  out = []
  for t in range(len(prompt), len(prompt) + steps):
    nxt = int(jnp.argmax(logits[0, -1]))
    out.append(nxt)
    logits, cache = _step(model, jnp.asarray([[nxt]], jnp.int32), jnp.asarray([[t]]), cache)
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", help="a Hugging Face Gemma 2/3 checkpoint directory")
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    if args.checkpoint:
      model, tokenizer = from_pretrained(args.checkpoint, dtype=args.dtype)
    else:
      tokenizer = train_tokenizer(TEXTS, Path(tmp) / "tokenizer.model", vocab_size=320)
      cfg = GemmaConfig.preset("gemma3-tiny", vocab_size=tokenizer.vocab_size, param_dtype=args.dtype,
                               dtype=args.dtype)
      save_pretrained(Transformer(cfg, rngs=nnx.Rngs(0)), Path(tmp) / "hf", tokenizer=tokenizer)
      print(f"wrote a tiny Gemma 3 ({cfg.num_params:,} parameters) to a Hugging Face directory")
      model, tokenizer = from_pretrained(Path(tmp) / "hf", dtype=args.dtype)
  if tokenizer is None:
    raise SystemExit("the checkpoint has no tokenizer.model")
  cfg = model.config
  print(f"loaded {cfg.family}: {cfg.num_layers} layers ({cfg.layer_types.count('local')} local, window "
        f"{cfg.sliding_window}), d={cfg.embed_dim}, vocab {cfg.vocab_size}")

  prompt = tokenizer.encode("The river Arno flows through", add_bos=True)
  new = greedy(model, prompt, steps=12)
  full = np.asarray(model(jnp.asarray([prompt + new[:-1]])))
  assert [int(i) for i in full[0, len(prompt) - 1:].argmax(-1)] == new, "cache and full forward disagree"
  print(f"greedy with KV cache (matches the full forward): {tokenizer.decode(new)!r}")

  apply_lora(model, LoraConfig(rank=4, alpha=8, targets=("q", "v")), rngs=nnx.Rngs(1))
  n_lora = sum(v.get_value().size for _, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)))
  print(f"attached LoRA: {n_lora:,} trainable parameters of {cfg.num_params + n_lora:,}")
  merge_lora(model)
  print("merged LoRA back into the base weights; done.")


if __name__ == "__main__":
  main()
