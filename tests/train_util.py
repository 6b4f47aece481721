"""Shared by the trainer tests: a small synthetic mapping task, a tiny model and teacher-forced accuracy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from models_util import random_model
from restreact.models import Tokenizer, make_mesh, train_tokenizer
from restreact.train import Example
from restreact.train.data import encode, make_batch

COLORS = ["red", "green", "blue", "amber", "violet", "silver", "coral", "ivory"]


def mapping_examples(n: int = 24, seed: int = 0) -> list[Example]:
  """'item N ->' maps to a fixed random color: nothing to infer, everything to learn."""
  rng = np.random.default_rng(seed)
  return [Example(f"item {i} ->", " " + COLORS[rng.integers(len(COLORS))]) for i in range(n)]


def mixed_examples() -> list[Example]:
  """Mapping examples plus some long enough for the second bucket of `resume_config`."""
  rng = np.random.default_rng(1)
  long = [Example(" and ".join(f"item {j}" for j in rng.integers(0, 64, 3)) + " ->", " " + COLORS[i % 8])
          for i in range(6)]
  return mapping_examples(20) + long


def mapping_tokenizer(path) -> Tokenizer:
  texts = [e.prompt + e.target for e in mapping_examples(64)] * 4 + COLORS
  return train_tokenizer(texts, path, vocab_size=400)


def tiny_model(seed: int = 0, **overrides):
  """gemma3-tiny cut to two layers (one local, one global): every feature, quick to compile."""
  return random_model("gemma3-tiny", seed, num_layers=2, layer_types=("local", "global"), **overrides)


def one_device_mesh():
  return make_mesh((1, 1, 1), devices=jax.devices()[:1])


@nnx.jit
def _predictions(model, inputs, positions, segments):
  return jnp.argmax(model(inputs, positions=positions, segment_ids=segments), axis=-1)


def accuracy(model, tokenizer: Tokenizer, examples: list[Example], length: int = 16) -> float:
  """Fraction of examples whose every target token (and EOS) is the model's argmax, teacher-forced."""
  items = [encode(tokenizer, e, length) for e in examples]
  batch = make_batch(items, [[i] for i in range(len(items))], length, tokenizer.pad_id)
  predicted = np.asarray(_predictions(model, batch.inputs, batch.positions, batch.segment_ids))
  correct = (predicted == batch.labels) | (batch.weights == 0)
  return float(correct.all(axis=1).mean())


def resume_config():
  """A short run with uneven checkpoints, accumulation and several epochs, for the resume tests."""
  from restreact.train import TrainConfig
  return TrainConfig(total_steps=12, batch_size=4, grad_accum=2, seq_len=16, buckets=(8, 16), warmup_steps=2,
                     learning_rate=3e-3, lora_rank=4, save_every=3, keep=2, eval_every=1, progress=False)
