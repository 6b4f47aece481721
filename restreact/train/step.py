"""The jitted train step: masked token loss, gradient accumulation, AdamW with clipping and a schedule.

The model is split into what trains (`nnx.LoRAParam` adapters, or every `nnx.Param`) and what stays
frozen. With bfloat16 weights the optimizer keeps float32 master copies of the trainable ones (and
float32 moments), so updates smaller than a bfloat16 ulp are not lost; the bf16 weights the model
computes with are the masters rounded after every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from restreact.models.sharding import logical_to_spec
from restreact.train.config import TrainConfig

BATCH_AXES = (None, "act_batch", "act_length")  # [micro-batches, rows, positions]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything a resumed run needs on devices: step, trainable weights, masters, optimizer state, PRNG key."""

  step: jax.Array  # int32 scalar: optimizer steps taken
  params: nnx.State  # trainable variables, in the model's dtype
  master: nnx.State | None  # float32 copies of `params` when those are not float32
  opt_state: Any
  rng: jax.Array  # uint32[2]: the key that shuffles each epoch's data


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
  """Linear warmup from 0 to the peak, then cosine or linear decay to end_lr_fraction x peak (or constant)."""
  peak, end = config.learning_rate, config.learning_rate * config.end_lr_fraction
  decay_steps = max(1, config.total_steps - config.warmup_steps)
  if config.schedule == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=config.end_lr_fraction)
  elif config.schedule == "linear":
    decay = optax.linear_schedule(peak, end, decay_steps)
  else:
    decay = optax.constant_schedule(peak)
  if config.warmup_steps == 0:
    return decay
  warmup = optax.linear_schedule(0.0, peak, config.warmup_steps)
  return optax.join_schedules([warmup, decay], [config.warmup_steps])


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
  """Global-norm clipping then AdamW; weight decay skips vectors (norm scales)."""
  decay_mask = lambda params: jax.tree.map(lambda p: p.ndim > 1, params)
  adamw = optax.adamw(learning_rate_schedule(config), b1=config.b1, b2=config.b2,
                      weight_decay=config.weight_decay, mask=decay_mask)
  return optax.chain(optax.clip_by_global_norm(config.clip_norm), adamw) if config.clip_norm else adamw


def trainable_filter(config: TrainConfig):
  """What trains: the adapters for LoRA, every parameter for full fine-tuning."""
  return nnx.LoRAParam if config.lora_rank is not None else nnx.Param


def _to_float32(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float32), tree)


def init_state(params: nnx.State, config: TrainConfig, tx: optax.GradientTransformation) -> TrainState:
  """A fresh state (call under jit so that outputs land on their shardings)."""
  needs_master = any(x.dtype != jnp.float32 for x in jax.tree.leaves(params))
  master = _to_float32(params) if needs_master else None
  opt_state = tx.init(master if needs_master else params)
  return TrainState(jnp.zeros((), jnp.int32), params, master, opt_state,
                    jax.random.key_data(jax.random.key(config.seed)))


def token_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Sum of weighted next-token cross-entropies and sum of weights (float32 logits [B, T, V])."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return jnp.sum(ce * weights), jnp.sum(weights)


def batch_loss(model: nnx.Module, batch: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """(sum of target-token losses, number of target tokens) of one micro-batch [rows, positions].

  Logits are computed at the target predictions only (`loss_positions`), not over whole rows.
  """
  hidden, _ = model.hidden_states(batch["inputs"], positions=batch["positions"], segment_ids=batch["segment_ids"])
  hidden = jnp.take_along_axis(hidden, batch["loss_positions"][..., None], axis=1)  # [rows, capacity, embed]
  return token_loss(model.logits(hidden), batch["loss_labels"], batch["loss_weights"])


def make_train_step(graphdef: nnx.GraphDef, config: TrainConfig, tx: optax.GradientTransformation
                    ) -> Callable[[TrainState, nnx.State, dict[str, jax.Array]], tuple[TrainState, dict]]:
  """step(state, frozen, batch) -> (state, metrics); batch arrays are [grad_accum, micro_batch, length].

  The loss is the mean over every target token of the whole step (not a mean of micro-batch means), so
  splitting a batch into micro-batches changes the gradient by rounding only.
  """
  schedule = learning_rate_schedule(config)

  def scaled(params, frozen, micro, denom):
    total, count = batch_loss(nnx.merge(graphdef, params, frozen), micro)
    return total / denom, count

  grad_fn = jax.value_and_grad(scaled, has_aux=True)

  def step(state: TrainState, frozen: nnx.State, batch: dict[str, jax.Array]):
    denom = jnp.maximum(jnp.sum(batch["weights"]), 1.0)  # target tokens of the whole step, known up front

    def accumulate(carry, micro):
      grads, loss, count = carry
      (l, c), g = grad_fn(state.params, frozen, micro, denom)
      return (jax.tree.map(lambda a, b: a + b.astype(jnp.float32), grads, g), loss + l, count + c), None

    if config.grad_accum == 1:  # no scan: spares a zeroed float32 copy of the gradients and an add
      (loss, count), grads = grad_fn(state.params, frozen, jax.tree.map(lambda x: x[0], batch), denom)
      grads = jax.tree.map(lambda g: g.astype(jnp.float32), grads)
    else:
      zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params)
      (grads, loss, count), _ = jax.lax.scan(accumulate, (zeros, jnp.float32(0), jnp.float32(0)), batch)
    weights = state.master if state.master is not None else state.params  # float32 either way
    updates, opt_state = tx.update(grads, state.opt_state, weights)
    weights = optax.apply_updates(weights, updates)
    if state.master is not None:
      params, master = jax.tree.map(lambda m, p: m.astype(p.dtype), weights, state.params), weights
    else:
      params, master = weights, None
    grad_norm = optax.tree.norm(grads)
    # Finite loss and gradients give finite Adam updates, so the new weights are finite too: no pass over them.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    metrics = {"finite": finite, "loss": loss, "target_tokens": count,
               "tokens": jnp.sum(batch["segment_ids"] > 0), "grad_norm": grad_norm,
               "learning_rate": schedule(state.step)}
    return TrainState(state.step + 1, params, master, opt_state, state.rng), metrics

  return step


def tree_shardings(tree, mesh: Mesh):
  """NamedShardings with the structure of `tree`: variables by their logical axes, anything else replicated."""
  mesh_shape = dict(mesh.shape)

  def one(x):
    if isinstance(x, nnx.Variable):
      value = x.get_value()
      names = x.get_metadata().get("logical_axes") or (None,) * value.ndim
      return x.replace(NamedSharding(mesh, logical_to_spec(names, value.shape, mesh_shape)))
    return NamedSharding(mesh, PartitionSpec())

  return jax.tree.map(one, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def batch_sharding(mesh: Mesh, shape: tuple[int, int, int]) -> NamedSharding:
  """Rows split over the data-parallel mesh axes by the same rules as the activations."""
  return NamedSharding(mesh, logical_to_spec(BATCH_AXES, shape, dict(mesh.shape)))
