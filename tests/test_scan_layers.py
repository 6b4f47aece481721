"""Stacked layers: the scanned forward, the layer-by-layer forward and the cached (engine) forward give the same
logits, and the first two the same gradients, for depths with and without a tail of leftover layers; LoRA
adapters stack with their layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models_util import random_model
from restreact.models.gemma import stacking
from restreact.models.gemma.config import gemma3_layer_types
from restreact.models.lora import LoraConfig, apply_lora, merged_weight

TOKENS = np.random.default_rng(0).integers(0, 512, (2, 24))  # three windows of 8: local layers differ from global


def test_layers_are_stacked_by_position_in_the_pattern():
  types = gemma3_layer_types(26)  # Gemma 3 1B: five local layers and a global one, four times, then two more
  assert stacking.period(types) == 6
  assert stacking.location(types, 0) == (("stacks", 0), 0)
  assert stacking.location(types, 13) == (("stacks", 1), 2)
  assert stacking.location(types, 23) == (("stacks", 5), 3)
  assert stacking.location(types, 25) == (("tail", 1), 0)
  assert stacking.period(("global", "global")) == 1
  assert stacking.period(("local", "global", "global")) == 3
  with pytest.raises(IndexError):
    stacking.location(types, 26)


def _model(layers: int):
  return random_model("gemma3-tiny", num_layers=layers, layer_types=gemma3_layer_types(layers))


@pytest.mark.parametrize("layers", [6, 14])  # one period; two periods and a tail of two
def test_scanned_looped_and_cached_forwards_agree(layers):
  model = _model(layers)
  assert len(model.stacks) == 6 and len(model.tail) == layers % 6
  assert model.stacks[0].attn.q.w.get_value().shape[0] == layers // 6
  scanned = np.asarray(model(TOKENS))
  model.scan_layers = False
  looped = np.asarray(model(TOKENS))
  positions = jnp.broadcast_to(jnp.arange(TOKENS.shape[1]), TOKENS.shape)
  cached, _ = model(TOKENS, positions=positions, cache=model.init_cache(2, 32))
  np.testing.assert_allclose(looped, scanned, atol=1e-5, rtol=0)
  np.testing.assert_allclose(np.asarray(cached), scanned, atol=1e-4, rtol=0)
  first = model.layer(0)(model.embed(jnp.asarray(TOKENS)), positions)[0]  # one layer, sliced from its stack
  assert first.shape == (2, 24, 64)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scanned_and_looped_gradients_agree(remat):
  model = _model(14)
  model.remat = remat
  grad = nnx.jit(nnx.grad(lambda m: jnp.mean(m(TOKENS) ** 2)))  # compiled: eager op-by-op is slower here
  scanned = grad(model)
  model.scan_layers = False
  looped = grad(model)
  for (path, a), (_, b) in zip(nnx.to_flat_state(scanned), nnx.to_flat_state(looped)):
    np.testing.assert_allclose(np.asarray(b.get_value()), np.asarray(a.get_value()), atol=1e-6, rtol=1e-4,
                               err_msg="/".join(map(str, path)))
  assert float(jnp.abs(scanned["tail"][1]["mlp"]["down"]["w"].get_value()).max()) > 0  # the tail gets gradients


def test_lora_adapters_stack_with_their_layers():
  model = _model(14)
  apply_lora(model, LoraConfig(rank=2, alpha=4.0, targets=("q",)), rngs=nnx.Rngs(1))
  q = model.stacks[1].attn.q
  assert q.lora_a.get_value().shape == (2, 64, 2) and q.lora_b.get_value().shape == (2, 2, 4, 16)
  assert q.lora_a.get_metadata()["logical_axes"][0] == stacking.LAYERS_AXIS
  q.lora_b.set_value(jnp.ones_like(q.lora_b.get_value()))
  merged = merged_weight(model, ("stacks", 1, "attn", "q", "w"))
  for layer in range(2):  # layer 1 and layer 7: each its own adapter
    a, b = np.asarray(q.lora_a.get_value()[layer]), np.asarray(q.lora_b.get_value()[layer])
    expected = np.asarray(q.w.get_value()[layer]) + 2.0 * np.einsum("dr,rnh->dnh", a, b)
    np.testing.assert_allclose(np.asarray(merged[layer]), expected, atol=1e-5, rtol=0)
  before = np.asarray(model(TOKENS))
  model.scan_layers = False
  np.testing.assert_allclose(np.asarray(model(TOKENS)), before, atol=1e-5, rtol=0)
