"""LoRA: only adapters train, the base is not copied, merging is exact, adapters save alone and export merged."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import transformers
from flax import nnx

import hf_reference as ref
from models_util import forward, random_model
from restreact.models import LoraConfig, apply_lora, load_lora, merge_lora, save_lora, save_pretrained

TOKENS = np.random.default_rng(0).integers(0, 512, (2, 20))


def _with_trained_adapters(preset="gemma3-tiny", **lora):
  model = random_model(preset)
  apply_lora(model, LoraConfig(**lora), rngs=nnx.Rngs(1))
  rng = np.random.default_rng(5)
  for _, var in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)):  # as if trained: B no longer zero
    var.set_value(jnp.asarray(rng.normal(0, 0.1, var.get_value().shape), jnp.float32))
  return model


def _loss(model, tokens):
  logits = model(tokens[:, :-1])
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], axis=-1))


def test_fresh_adapters_leave_the_model_unchanged():
  model = random_model("gemma2-tiny")
  before = np.asarray(forward(model, TOKENS))
  apply_lora(model, LoraConfig(rank=4, alpha=8), rngs=nnx.Rngs(1))
  np.testing.assert_array_equal(np.asarray(forward(model, TOKENS)), before)


def test_targets_rank_and_alpha_come_from_config():
  model = random_model("gemma3-tiny")
  apply_lora(model, LoraConfig(rank=3, alpha=12, targets=("q", "down")), rngs=nnx.Rngs(1))
  block = model.stacks[0]  # layer 0 alone: gemma3-tiny's 6 layers are one period of the pattern
  assert block.attn.q.lora_a.get_value().shape == (1, 64, 3)  # one adapter per stacked layer
  assert block.attn.q.lora_b.get_value().shape == (1, 3, 4, 16)
  assert block.mlp.down.lora_a.get_value().shape == (1, 128, 3)
  assert block.attn.k.lora_a is None and block.mlp.up.lora_a is None
  assert block.attn.q.lora_scale == 4.0
  with pytest.raises(ValueError, match="unknown LoRA targets"):
    LoraConfig(targets=("qkv",))


def test_only_adapters_train_and_the_base_is_not_copied():
  model = random_model("gemma3-tiny")
  base = {p: v.get_value() for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}
  apply_lora(model, LoraConfig(rank=4), rngs=nnx.Rngs(1))
  for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.LoRAParam))):
    assert v.get_value() is base[p]  # attaching adapters copies no base weight
  base = {p: np.asarray(a) for p, a in base.items()}
  optimizer = nnx.Optimizer(model, optax.adamw(1e-2), wrt=nnx.LoRAParam)
  opt_leaves = jax.tree.leaves(nnx.state(optimizer, nnx.OptState))
  lora_count = sum(v.get_value().size for _, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)))
  assert sum(x.size for x in opt_leaves if x.ndim) == 2 * lora_count  # Adam moments of adapters only

  @nnx.jit
  def step(model, optimizer, tokens):
    loss, grads = nnx.value_and_grad(_loss, argnums=nnx.DiffState(0, nnx.LoRAParam))(model, tokens)
    assert {type(v) for _, v in nnx.to_flat_state(grads)} == {nnx.LoRAParam}  # no gradient for the base
    optimizer.update(model, grads)
    return loss

  adapters_before = {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam))}
  losses = [float(step(model, optimizer, jnp.asarray(TOKENS))) for _ in range(5)]
  assert losses[-1] < losses[0]
  for p, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.LoRAParam))):
    np.testing.assert_array_equal(np.asarray(v.get_value()), base[p])  # the base never moves
  changed = [p for p, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam))
             if not np.array_equal(np.asarray(v.get_value()), adapters_before[p])]
  assert changed


def test_merged_equals_unmerged():
  model = _with_trained_adapters(rank=4, alpha=8)
  unmerged = np.asarray(forward(model, TOKENS))
  assert np.abs(unmerged - np.asarray(forward(random_model("gemma3-tiny"), TOKENS))).max() > 1e-2
  merge_lora(model)
  assert not jax.tree.leaves(nnx.state(model, nnx.LoRAParam))
  np.testing.assert_allclose(np.asarray(forward(model, TOKENS)), unmerged, atol=1e-4, rtol=0)


def test_adapters_save_and_load_alone(tmp_path):
  model = _with_trained_adapters(rank=2, targets=("q", "v"))
  save_lora(model, tmp_path / "adapters.safetensors")
  size = (tmp_path / "adapters.safetensors").stat().st_size
  base_bytes = sum(v.get_value().nbytes for _, v in nnx.to_flat_state(nnx.state(model, nnx.Not(nnx.LoRAParam))))
  assert size < base_bytes / 10
  fresh = random_model("gemma3-tiny")
  load_lora(fresh, tmp_path / "adapters.safetensors")
  np.testing.assert_array_equal(np.asarray(forward(fresh, TOKENS)), np.asarray(forward(model, TOKENS)))
  other = random_model("gemma3-tiny", embed_dim=32)
  with pytest.raises(ValueError, match="shape"):
    load_lora(other, tmp_path / "adapters.safetensors")


def test_export_merges_adapters_into_hf_weights(tmp_path):
  model = _with_trained_adapters("gemma2-tiny", rank=4)
  save_pretrained(model, tmp_path)
  hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
  np.testing.assert_allclose(ref.logits(hf, TOKENS), np.asarray(forward(model, TOKENS)), atol=1e-4, rtol=0)


def test_failed_load_leaves_the_model_unchanged(tmp_path):
  model = _with_trained_adapters(rank=2)
  save_lora(model, tmp_path / "adapters.safetensors")
  other = random_model("gemma3-tiny", embed_dim=32)
  before = np.asarray(forward(other, TOKENS))
  with pytest.raises(ValueError, match="shape"):
    load_lora(other, tmp_path / "adapters.safetensors")
  assert not jax.tree.leaves(nnx.state(other, nnx.LoRAParam)) and not hasattr(other, "lora_config")
  np.testing.assert_array_equal(np.asarray(forward(other, TOKENS)), before)


def test_adapters_are_float32_on_a_bfloat16_model():
  model = random_model("gemma3-tiny", param_dtype="bfloat16", dtype="bfloat16")
  apply_lora(model, LoraConfig(rank=2), rngs=nnx.Rngs(0))
  assert {v.get_value().dtype for _, v in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam))} == {np.dtype("float32")}
  assert forward(model, TOKENS).dtype == np.float32


def test_orbax_round_trip_keeps_the_adapters(tmp_path):
  from restreact.train import restore_params, save_params
  model = _with_trained_adapters(rank=2, targets=("q", "up"))
  save_params(model, tmp_path / "ckpt")
  restored = restore_params(tmp_path / "ckpt")
  assert restored.lora_config == model.lora_config
  np.testing.assert_array_equal(np.asarray(forward(restored, TOKENS)), np.asarray(forward(model, TOKENS)))
