"""SFT train step: packed loss equals unpacked, accumulation is exact, LoRA moves only adapters, bf16 keeps
f32 masters."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from models_util import random_model
from restreact.train import TrainConfig, prepare_model
from restreact.train.data import Encoded, first_fit, make_batch
from restreact.train.step import (batch_loss, init_state, learning_rate_schedule, make_train_step, optimizer,
                                  trainable_filter)

RNG = np.random.default_rng(0)


def tiny(**overrides):
  """gemma3-tiny cut to two layers (one local, one global): every feature, quicker to compile."""
  return random_model("gemma3-tiny", num_layers=2, layer_types=("local", "global"), **overrides)


def _items(n=7):
  """Random examples with prompts of 2-9 tokens and targets of 1-5 tokens (ids < 512)."""
  items = []
  for _ in range(n):
    p, t = RNG.integers(4, 500, RNG.integers(2, 10)), RNG.integers(4, 500, RNG.integers(1, 6))
    items.append(Encoded(np.concatenate([[2], p, t, [1]]).astype(np.int32), len(p), False))
  return items


def _device(batch, accum=None):
  arrays = {k: jnp.asarray(v) for k, v in batch.arrays().items()}
  return arrays if accum is None else {k: v.reshape(accum, -1, v.shape[-1]) for k, v in arrays.items()}


loss_and_grad = nnx.jit(nnx.value_and_grad(lambda m, b: (lambda s: s[0] / s[1])(batch_loss(m, b))))


def test_packed_batch_has_the_loss_and_gradient_of_the_same_examples_unpacked():
  model = tiny()
  items = _items()
  packed = make_batch(items, first_fit([e.length for e in items], 32), 32, 0)
  assert packed.inputs.shape[0] < len(items)
  unpacked = make_batch(items, [[i] for i in range(len(items))], 16, 0)
  (loss_p, grad_p), (loss_u, grad_u) = loss_and_grad(model, _device(packed)), loss_and_grad(model, _device(unpacked))
  np.testing.assert_allclose(float(loss_p), float(loss_u), rtol=1e-6)
  for (path, a), (_, b) in zip(nnx.to_flat_state(grad_p), nnx.to_flat_state(grad_u)):
    np.testing.assert_allclose(np.asarray(a.get_value()), np.asarray(b.get_value()), atol=2e-6, err_msg=str(path))


def _one_step(config, model, batch, tx=None):
  model = prepare_model(model, config)
  graphdef, params, frozen = nnx.split(model, trainable_filter(config), ...)
  tx = tx or optimizer(config)
  state = jax.jit(lambda p: init_state(p, config, tx))(params)
  new, metrics = jax.jit(make_train_step(graphdef, config, tx))(state, frozen, batch)
  return state, new, metrics


def test_gradient_accumulation_equals_one_big_batch():
  items = _items(8)
  batch = make_batch(items, [[i] for i in range(8)], 16, 0)
  results = []
  for accum in (1, 4):
    config = TrainConfig(total_steps=10, batch_size=8, grad_accum=accum, seq_len=16, lora_rank=None,
                         warmup_steps=0, learning_rate=1e-3)
    # Plain SGD with rate 1: the update is the gradient itself (Adam's first step, ~lr x sign(g), would hide it).
    _, new, metrics = _one_step(config, tiny(), _device(batch, accum), tx=optax.sgd(1.0))
    results.append((new, metrics))
  (a, ma), (b, mb) = results
  np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-6)
  np.testing.assert_allclose(float(ma["grad_norm"]), float(mb["grad_norm"]), rtol=1e-5)
  assert float(ma["target_tokens"]) == sum(e.length - e.num_prompt for e in items)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6)


def test_lora_updates_only_adapters_and_keeps_moments_for_them_only():
  config = TrainConfig(total_steps=10, batch_size=2, seq_len=16, lora_rank=4, warmup_steps=0, learning_rate=1e-2)
  batch = make_batch(_items(2), [[0], [1]], 16, 0)
  model = tiny()
  base = {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  state, new, _ = _one_step(config, model, _device(batch, 1))
  assert {type(v) for _, v in nnx.to_flat_state(new.params)} == {nnx.LoRAParam}
  adapters = sum(x.size for x in jax.tree.leaves(new.params))
  assert sum(x.size for x in jax.tree.leaves(new.opt_state) if x.ndim) == 2 * adapters  # Adam mu and nu
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
  for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.LoRAParam))):
    np.testing.assert_array_equal(np.asarray(v.get_value()), base[p])


def test_bfloat16_weights_keep_float32_masters_and_moments():
  config = TrainConfig(total_steps=10, batch_size=2, seq_len=16, lora_rank=None, param_dtype="bfloat16",
                       warmup_steps=0, learning_rate=1e-5, clip_norm=None)
  batch = make_batch(_items(2), [[0], [1]], 16, 0)
  state, new, metrics = _one_step(config, tiny(), _device(batch, 1))
  assert {x.dtype for x in jax.tree.leaves(new.params)} == {jnp.dtype(jnp.bfloat16)}
  assert {x.dtype for x in jax.tree.leaves(new.master)} == {jnp.dtype(jnp.float32)}
  assert {x.dtype for x in jax.tree.leaves(new.opt_state) if x.ndim} == {jnp.dtype(jnp.float32)}
  # A 1e-5 step is below bfloat16 resolution for most weights, yet the masters move and stay the truth.
  moved_master = sum(int((np.asarray(a) != np.asarray(b)).sum()) for a, b in zip(jax.tree.leaves(state.master),
                                                                                   jax.tree.leaves(new.master)))
  moved_bf16 = sum(int((np.asarray(a) != np.asarray(b)).sum()) for a, b in zip(jax.tree.leaves(state.params),
                                                                                 jax.tree.leaves(new.params)))
  assert moved_master > 10 * moved_bf16
  for m, p in zip(jax.tree.leaves(new.master), jax.tree.leaves(new.params)):
    np.testing.assert_array_equal(np.asarray(m.astype(jnp.bfloat16)), np.asarray(p))
  assert np.isfinite(float(metrics["loss"]))


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_warmup_then_decay(schedule):
  config = TrainConfig(total_steps=110, warmup_steps=10, learning_rate=1e-3, schedule=schedule, end_lr_fraction=0.1)
  lr = learning_rate_schedule(config)
  np.testing.assert_allclose([float(lr(s)) for s in (0, 5, 10, 60, 110)],
                             [0, 5e-4, 1e-3, 5.5e-4, 1e-4], rtol=1e-5, atol=1e-9)
  mid = float(lr(35))  # a quarter into the decay
  assert mid == pytest.approx(1e-4 + 9e-4 * (0.75 if schedule == "linear" else (1 + np.cos(np.pi / 4)) / 2), rel=1e-5)



@pytest.mark.parametrize("lora_rank", [None, 4])
def test_remat_policies_give_the_same_step(lora_rank):
  """Remat changes what the backward pass keeps, never its result: one step, full and LoRA, for each policy."""
  batch = _device(make_batch(_items(6), [[i] for i in range(6)], 16, 0), 1)
  results = {}
  for remat in ("none", "dots", "full"):
    config = TrainConfig(total_steps=10, batch_size=6, seq_len=16, lora_rank=lora_rank, warmup_steps=0,
                         learning_rate=1e-3, remat=remat)
    _, new, metrics = _one_step(config, tiny(), batch, tx=optax.sgd(1.0))
    results[remat] = (new, metrics)
  (ref, ref_metrics) = results["none"]
  for remat in ("dots", "full"):
    new, metrics = results[remat]
    np.testing.assert_allclose(float(metrics["loss"]), float(ref_metrics["loss"]), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(ref_metrics["grad_norm"]), rtol=1e-5)
    for x, y in zip(jax.tree.leaves(new.params), jax.tree.leaves(ref.params)):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, err_msg=remat)
  with pytest.raises(ValueError, match="remat='some'"):
    TrainConfig(remat="some")

