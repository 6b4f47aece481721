"""On 8 simulated CPU devices (mesh 2x2x2) the forward pass and a gradient step match one device."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

import hf_reference as ref
from models_util import forward, random_model
from restreact.models import LoraConfig, apply_lora, from_pretrained, make_mesh, shard_model
from restreact.models.sharding import axis_rules, logical_to_spec

TOKENS = np.random.default_rng(0).integers(0, 512, (8, 20))


@pytest.fixture(scope="module")
def mesh():
  assert jax.device_count() == 8, "conftest.py sets --xla_force_host_platform_device_count=8"
  return make_mesh((2, 2, -1))


def test_mesh_from_config():
  assert dict(make_mesh((1, -1, 2)).shape) == {"data": 1, "fsdp": 4, "tensor": 2}
  with pytest.raises(ValueError, match="at most one"):
    make_mesh((-1, -1, 2))
  with pytest.raises(ValueError, match="does not fit"):
    make_mesh((3, 1, 1))


def test_parameters_are_sharded_as_the_rules_say(mesh):
  model = shard_model(random_model("gemma3-tiny"), mesh)
  block = model.stacks[0]  # stacked layers: a leading "layers" axis, never sharded
  assert model.embedding.get_value().sharding.spec == P("tensor", "fsdp")
  assert block.attn.q.w.get_value().sharding.spec == P(None, "fsdp", "tensor", None)
  assert block.attn.k.w.get_value().sharding.spec == P(None, "fsdp", "tensor", None)
  assert block.attn.o.w.get_value().sharding.spec == P(None, "tensor", None, "fsdp")
  assert block.mlp.gate.w.get_value().sharding.spec == P(None, "fsdp", "tensor")
  assert block.mlp.down.w.get_value().sharding.spec == P(None, "tensor", "fsdp")
  assert block.pre_attn_norm.scale.get_value().sharding.spec == P(None, None)
  shard = block.mlp.gate.w.get_value().addressable_shards[0].data
  assert shard.shape == (1, 32, 64)  # [1, 64, 128] split 2 ways on fsdp and 2 on tensor


def test_indivisible_axes_are_replicated():
  assert logical_to_spec(("embed", "kv_heads", "head_dim"), (64, 1, 16), {"data": 2, "fsdp": 2, "tensor": 2}) \
      == P("fsdp", None, None)
  assert logical_to_spec(("act_batch", "act_length"), (2, 5), {"data": 2, "fsdp": 2, "tensor": 2}) == P("data", None)
  with pytest.raises(KeyError, match="no sharding rule"):
    logical_to_spec(("nonsense",))


@pytest.mark.parametrize("preset", ["gemma2-tiny", "gemma3-tiny"])
def test_sharded_forward_matches_single_device(mesh, preset):
  single = np.asarray(forward(random_model(preset), TOKENS))
  model = shard_model(random_model(preset), mesh)
  with jax.set_mesh(mesh):
    sharded = forward(model, TOKENS)
  assert len(sharded.sharding.device_set) == 8
  np.testing.assert_allclose(np.asarray(sharded), single, atol=1e-5, rtol=0)


def _train_step(model, tokens, *, lora):
  wrt = nnx.LoRAParam if lora else nnx.Param
  optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=wrt)  # Adam would amplify rounding in ~0 grads

  def loss_fn(model):
    logits = model(tokens[:, :-1])
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), tokens[:, 1:, None], axis=-1))

  @nnx.jit
  def step(model, optimizer):
    loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt))(model)
    optimizer.update(model, grads)
    return loss

  loss = step(model, optimizer)
  return float(loss), float(loss_fn(model))


@pytest.mark.parametrize("lora", [False, True])
def test_gradient_step_matches_single_device(mesh, lora):
  def build():
    model = random_model("gemma3-tiny")
    if lora:
      apply_lora(model, LoraConfig(rank=4), rngs=nnx.Rngs(1))
    return model

  single = build()
  want = _train_step(single, jnp.asarray(TOKENS), lora=lora)
  sharded = shard_model(build(), mesh)
  with jax.set_mesh(mesh):
    got = _train_step(sharded, jnp.asarray(TOKENS), lora=lora)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(single, nnx.Param)),
                               nnx.to_flat_state(nnx.state(sharded, nnx.Param))):
    np.testing.assert_allclose(np.asarray(b.get_value()), np.asarray(a.get_value()), atol=1e-5, err_msg=str(path))


def test_from_pretrained_streams_onto_the_mesh(mesh, tmp_path):
  hf = ref.causal_lm(ref.gemma3_config())
  hf.save_pretrained(tmp_path)
  model, _ = from_pretrained(tmp_path, mesh=mesh, progress=False)
  assert model.stacks[0].mlp.up.w.get_value().sharding.spec == P(None, "fsdp", "tensor")
  with jax.set_mesh(mesh):
    logits = forward(model, TOKENS)
  np.testing.assert_allclose(np.asarray(logits), ref.logits(hf, TOKENS), atol=1e-4, rtol=0)


def test_axis_rules_change_the_table_inside_their_block(mesh):
  with axis_rules((("mlp", "fsdp"), ("embed", None))):  # as Pipeline.run applies config.sharding_rules
    model = shard_model(random_model("gemma3-tiny"), mesh)
    assert logical_to_spec(("embed", "mlp")) == P(None, "fsdp")
  assert model.stacks[0].mlp.gate.w.get_value().sharding.spec == P(None, None, "fsdp")
  assert model.embedding.get_value().sharding.spec == P("tensor", None)
  assert logical_to_spec(("embed", "mlp")) == P("fsdp", "tensor")  # the default table again
  with pytest.raises(ValueError, match="'mpl' is not a logical axis"):
    with axis_rules((("mpl", "fsdp"),)):
      pass
