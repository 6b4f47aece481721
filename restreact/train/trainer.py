"""`train`: fine-tune a Gemma model on (prompt, target) examples, resumable from its work directory."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from restreact.models import Tokenizer, Transformer, apply_lora, make_mesh, shard_model
from restreact.train.checkpoints import Checkpoints, Preemption, restore_trainable
from restreact.train.config import RESUMABLE_CHANGES, TrainConfig
from restreact.train.data import Example, PackedDataset
from restreact.train.metrics import MetricsWriter, read_metrics
from restreact.train.step import (TrainState, batch_sharding, init_state, make_train_step, optimizer,
                                  trainable_filter, tree_shardings)

log = logging.getLogger(__name__)
RUN_FILE = "run.json"


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradients became NaN or infinite; the run stopped without saving that state."""


@dataclasses.dataclass
class TrainResult:
  """What a run produced. `model` holds the final weights (the passed model, unless its dtype was converted)."""

  model: Transformer = dataclasses.field(repr=False)
  final_loss: float
  steps: int
  checkpoint: Path | None  # latest resume checkpoint
  best_checkpoint: Path | None  # trainable weights with the best eval score (None without eval_fn)
  best_score: float | None
  metrics_path: Path
  examples: int  # examples given (all processes)
  truncated: int  # kept with the prompt cut from the left
  dropped: int  # left out: the target alone was longer than seq_len
  preempted: bool = False  # stopped early by SIGTERM after saving


def prepare_model(model: Transformer, config: TrainConfig) -> Transformer:
  """The model to train: converted to config.param_dtype (a new model) and with LoRA adapters attached."""
  lora = config.lora
  existing = getattr(model, "lora_config", None)
  if existing is not None and lora is None:
    raise ValueError("the model has LoRA adapters but the config asks for full fine-tuning; "
                     "merge_lora or remove_lora first")
  if existing is not None and existing != lora:
    raise ValueError(f"the model's LoRA adapters {existing} differ from the config's {lora}")
  dtype = config.param_dtype
  if dtype is not None and (model.config.param_dtype != dtype or model.config.dtype != dtype):
    if existing is not None:
      raise ValueError("cannot change the dtype of a model with LoRA adapters attached; merge them first")
    cfg = model.config.replace(param_dtype=dtype, dtype=dtype)
    graphdef, state = nnx.split(nnx.eval_shape(lambda: Transformer(cfg, rngs=nnx.Rngs(0))))
    nnx.replace_by_pure_dict(state, jax.tree.map(lambda x: x.astype(dtype), nnx.to_pure_dict(nnx.state(model))))
    model = nnx.merge(graphdef, state)
  if lora is not None and existing is None:
    apply_lora(model, lora, rngs=nnx.Rngs(config.seed))
  model.remat, model.scan_layers = config.remat, config.scan_layers
  return model


def _check_inputs(model: Transformer, tokenizer: Tokenizer, examples: Sequence[Example], config: TrainConfig,
                  mesh: Mesh) -> None:
  """Everything that can be wrong with the inputs, found before tokenizing or compiling."""
  problems = []
  if len(examples) == 0:
    problems.append("the dataset is empty (no examples)")
  if not isinstance(model, Transformer):
    problems.append(f"model must be a restreact Transformer, got {type(model).__name__}")
  else:
    cfg = model.config
    if tokenizer.vocab_size > cfg.vocab_size:
      problems.append(f"the tokenizer has {tokenizer.vocab_size} pieces, the model's vocabulary only {cfg.vocab_size}")
    if config.seq_len > cfg.max_position_embeddings:
      problems.append(f"seq_len={config.seq_len} exceeds the model's max_position_embeddings="
                      f"{cfg.max_position_embeddings}")
  if config.micro_batch % jax.process_count():
    problems.append(f"micro-batch of {config.micro_batch} rows (batch_size / grad_accum) cannot be split over "
                    f"{jax.process_count()} processes")
  if set(mesh.axis_names) != {"data", "fsdp", "tensor"}:
    problems.append(f"mesh axes must be data, fsdp, tensor (restreact.models.make_mesh), got {mesh.axis_names}")
  if problems:
    raise ValueError("cannot train: " + "; ".join(problems))


def _fingerprint(examples: Sequence[Example]) -> str:
  digest = hashlib.sha256()
  for ex in examples:
    for text in (ex.prompt, ex.target):
      data = text.encode("utf-8")
      digest.update(len(data).to_bytes(8, "little") + data)
  return digest.hexdigest()[:16]


def _check_run_file(workdir: Path, config: TrainConfig, model: Transformer, data: str) -> None:
  """Record what this run trains; a resumed run must train the same thing (a few fields may change)."""
  path = workdir / RUN_FILE
  record = {"config": json.loads(config.to_json()), "model": json.loads(json.dumps(dataclasses.asdict(model.config))),
            "data": data}
  if path.exists():
    old = json.loads(path.read_text())
    changed = [f"config.{k}" for k in record["config"]
               if k not in RESUMABLE_CHANGES and old["config"].get(k) != record["config"][k]]
    changed += [f"model.{k}" for k in record["model"] if old["model"].get(k) != record["model"][k]]
    if old["data"] != data:
      changed.append("examples")
    if changed:
      raise ValueError(f"{workdir} holds a run with different {', '.join(changed)}; use a new workdir to start over")
  if jax.process_count() > 1:  # every process has read the old record before process 0 rewrites it
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("restreact.train.run_file")
  if jax.process_index() == 0:
    path.write_text(json.dumps(record, indent=2))


def _global_stats(dataset: PackedDataset) -> np.ndarray:
  counts = np.asarray([dataset.stats.total, dataset.stats.truncated, dataset.stats.dropped, len(dataset.items)])
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    counts = np.asarray(multihost_utils.process_allgather(counts)).sum(axis=0)
  return counts


def train(model: Transformer, tokenizer: Tokenizer, examples: Sequence[Example], config: TrainConfig,
          workdir: str | Path, *, mesh: Mesh | None = None,
          eval_fn: Callable[[Transformer], float] | None = None, chat: bool = False) -> TrainResult:
  """Fine-tune `model` on `examples` (LoRA or full, as `config` says), checkpointing into `workdir`.

  A workdir that holds checkpoints of the same run resumes from the latest one. `mesh` defaults to all
  devices on the fsdp axis. `eval_fn(model) -> score` runs every `eval_every` steps and at the end; the
  trainable weights with the best score are kept under workdir/best. Raises NonFiniteLossError when the
  loss or the gradients are NaN or infinite (checkpoints saved before stay). With `chat` (an instruction-tuned
  model) prompts are wrapped in its chat turns exactly as the engine wraps them (`restreact.models.chat`).
  """
  examples = list(examples)
  mesh = mesh if mesh is not None else make_mesh()
  _check_inputs(model, tokenizer, examples, config, mesh)
  workdir = Path(workdir).absolute()
  dataset = PackedDataset(tokenizer, examples, buckets=config.bucket_lengths,
                          rows_per_step=config.batch_size // jax.process_count(),
                          process_index=jax.process_index(), process_count=jax.process_count(), chat=chat)
  total, truncated, dropped, kept = (int(x) for x in _global_stats(dataset))
  if kept == 0:
    raise ValueError(f"no example fits: all {total} targets are longer than seq_len={config.seq_len} tokens")
  if truncated or dropped:
    log.warning("%d of %d examples had their prompt cut from the left; %d were dropped (target longer than "
                "seq_len=%d)", truncated, total, dropped, config.seq_len)

  model = prepare_model(model, config)
  workdir.mkdir(parents=True, exist_ok=True)
  _check_run_file(workdir, config, model, _fingerprint(examples) + ("+chat" if chat else ""))  # rows differ
  shard_model(model, mesh)
  graphdef, params, frozen = nnx.split(model, trainable_filter(config), ...)
  tx = optimizer(config)
  abstract_state = jax.eval_shape(lambda p: init_state(p, config, tx), params)
  state_shardings = tree_shardings(abstract_state, mesh)
  frozen_shardings = tree_shardings(frozen, mesh)
  replicated = NamedSharding(mesh, PartitionSpec())
  local_rows = config.micro_batch // jax.process_count()
  in_batch = batch_sharding(mesh, (config.grad_accum, config.micro_batch, config.seq_len))
  if in_batch.spec[1] is None and mesh.shape["data"] * mesh.shape["fsdp"] > 1:
    log.warning("micro-batch of %d rows does not divide over the %d data-parallel devices: every device computes "
                "all rows", config.micro_batch, mesh.shape["data"] * mesh.shape["fsdp"])
  step_fn = jax.jit(make_train_step(graphdef, config, tx), donate_argnums=(0,),
                    in_shardings=(state_shardings, frozen_shardings, in_batch),
                    out_shardings=(state_shardings, replicated))

  ckpts = Checkpoints(workdir, keep=config.keep, eval_mode=config.eval_mode)
  start = ckpts.latest_step()
  with jax.set_mesh(mesh):
    if start is None:
      state = jax.jit(lambda p: init_state(p, config, tx), out_shardings=state_shardings, donate_argnums=0)(params)
      position = {"epoch": -1, "index": 0, "epoch_key": None, "loss": None}
    else:
      state, position = ckpts.restore(start, abstract_state, state_shardings)
      log.info("resumed %s at step %d", workdir, start)
    del params
  step = int(state.step)
  writer = MetricsWriter(workdir, start_step=step, total_steps=config.total_steps, progress=config.progress)
  if step == 0:
    writer.write(0, {"examples": total, "truncated": truncated, "dropped": dropped}, prefix="data")

  last_loss = position["loss"]
  plan = dataset.epoch(position["epoch_key"]) if position["epoch_key"] is not None else []
  preempted = False

  def view() -> Transformer:
    return nnx.merge(graphdef, state.params, frozen)

  def evaluate(at: int) -> None:
    score = float(eval_fn(view()))
    ckpts.save_best(at, state.params, score)
    writer.write(at, {"score": score}, prefix="eval")  # written last: its record says the eval is complete

  def eval_due(at: int) -> bool:
    return eval_fn is not None and at > 0 and (at == config.total_steps
                                               or bool(config.eval_every and at % config.eval_every == 0))

  try:
    with Preemption() as preemption, jax.set_mesh(mesh):
      if eval_due(step) and not _evaluated(writer.path, step):  # killed between its checkpoint and its eval
        evaluate(step)
      tick = time.perf_counter()
      while step < config.total_steps:
        if position["index"] >= len(plan):  # next epoch: a fresh key from the carried PRNG state
          rng, key = jax.random.split(jax.random.wrap_key_data(state.rng))
          state = dataclasses.replace(state, rng=jax.device_put(jax.random.key_data(rng), replicated))
          position = {"epoch": position["epoch"] + 1, "index": 0,
                      "epoch_key": [int(x) for x in np.asarray(jax.random.key_data(key))], "loss": last_loss}
          plan = dataset.epoch(position["epoch_key"])
        planned = plan[position["index"]]
        local = dataset.batch(planned).arrays()
        batch = {k: jax.make_array_from_process_local_data(
            in_batch, v.reshape(config.grad_accum, local_rows, v.shape[-1]),
            (config.grad_accum, config.micro_batch, v.shape[-1])) for k, v in local.items()}
        state, metrics = step_fn(state, frozen, batch)
        step += 1
        position["index"] += 1
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        metrics["tokens_per_s"] = metrics["tokens"] / (time.perf_counter() - tick)
        _check_finite(metrics, step, writer, ckpts, workdir)
        last_loss = position["loss"] = metrics["loss"]
        last = step == config.total_steps
        if step % config.log_every == 0 or last:
          writer.write(step, metrics)
        writer.progress(step, last_loss)
        if step % config.save_every == 0 or last:
          ckpts.save(step, state, position)
        if eval_fn is not None and (last or (config.eval_every and step % config.eval_every == 0)):
          evaluate(step)
        if not last and preemption.requested(step):
          log.warning("SIGTERM: saving step %d in %s and stopping", step, workdir)
          if ckpts.latest_step() != step:
            ckpts.save(step, state, position)
          preempted = True
          break
        tick = time.perf_counter()  # tokens/s counts data and step time, not checkpoints or evals
      ckpts.wait()
  finally:
    writer.close()
    ckpts.wait()
    ckpts.close()
    nnx.update(model, state.params)  # the model holds the latest weights (the originals were donated)

  return TrainResult(model=model, final_loss=float("nan") if last_loss is None else last_loss, steps=step,
                     checkpoint=ckpts.latest_path(), best_checkpoint=ckpts.best_path(),
                     best_score=_best_score(ckpts), metrics_path=writer.path, examples=total,
                     truncated=truncated, dropped=dropped, preempted=preempted)


def _check_finite(metrics: dict, step: int, writer: MetricsWriter, ckpts: Checkpoints, workdir: Path) -> None:
  """Raise NonFiniteLossError (after logging the step) when the loss or the gradients are not finite."""
  finite = bool(metrics.pop("finite"))
  if finite:
    return
  writer.write(step, metrics)
  good = ckpts.latest_step()
  what = (f"loss is {metrics['loss']}" if not math.isfinite(metrics["loss"])
          else f"gradients became non-finite (norm {metrics['grad_norm']})")
  raise NonFiniteLossError(f"{what} at step {step}; training stopped. "
                           + (f"The last good checkpoint is step {good} in {workdir}." if good is not None
                              else "No checkpoint was saved before it."))


def _evaluated(metrics_path: Path, step: int) -> bool:
  """Whether the metrics file records an eval at `step` (process 0 reads it; every process gets its answer)."""
  done = jax.process_index() == 0 and metrics_path.exists() and any(
      r.get("step") == step and "score" in r for r in read_metrics(metrics_path))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    done = bool(multihost_utils.broadcast_one_to_all(np.int32(done)))
  return done


def _best_score(ckpts: Checkpoints) -> float | None:
  step = ckpts.best_step()
  if step is None:
    return None
  metrics = ckpts.best.metrics(step)
  return None if metrics is None else float(metrics["score"])


def load_trained(model: Transformer, checkpoint: str | Path, config: TrainConfig) -> Transformer:
  """Put the trainable weights of a checkpoint (workdir/best/<step> or workdir/checkpoints/<step>) into a
  model prepared as `train` prepares it (dtype converted, adapters attached); returns that model."""
  model = prepare_model(model, config)
  params = nnx.state(model, trainable_filter(config))
  shardings = jax.tree.map(lambda x: x.sharding, params)
  nnx.update(model, restore_trainable(checkpoint, params, shardings))
  return model
