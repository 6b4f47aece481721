"""SFT runs end to end: learning with LoRA and full fine-tuning, sharded equals single device, resume after
SIGKILL and SIGTERM, NaN stops, bad input fails before compiling."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from restreact.models import make_mesh
from restreact.train import Example, NonFiniteLossError, TrainConfig, load_trained, read_metrics, train
from restreact.train.checkpoints import CHECKPOINTS
from train_util import (accuracy, mapping_examples, mapping_tokenizer, mixed_examples, one_device_mesh,
                        resume_config, tiny_model)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  return mapping_tokenizer(tmp_path_factory.mktemp("tok") / "map.model")


def _losses(path):
  return [r["loss"] for r in read_metrics(path) if "loss" in r]


@pytest.mark.slow
@pytest.mark.parametrize("lora", [8, None], ids=["lora", "full"])
def test_learns_a_synthetic_mapping(tok, tmp_path, lora):
  """24 prompts 'item N ->' each map to one of 8 colors; after 60 steps at least 23 of 24 are exact."""
  examples = mapping_examples()
  model = tiny_model()
  before = accuracy(model, tok, examples)
  config = TrainConfig(total_steps=60, batch_size=8, seq_len=32, buckets=(32,), warmup_steps=5,
                       learning_rate=1e-2 if lora else 3e-3, lora_rank=lora, save_every=30, eval_every=20,
                       progress=False)
  scores = []
  result = train(model, tok, examples, config, tmp_path, mesh=one_device_mesh(),
                 eval_fn=lambda m: scores.append(accuracy(m, tok, examples)) or scores[-1])
  after = accuracy(result.model, tok, examples)
  assert before < 0.3 and after >= 23 / 24, (before, after)
  assert result.steps == 60 and result.final_loss < 0.3 and not result.preempted
  # The best checkpoint is the eval callback's choice, and loads back with that score.
  by_step = dict(zip((20, 40, 60), scores))
  assert result.best_score == max(scores) == by_step[int(result.best_checkpoint.name)]
  assert accuracy(load_trained(tiny_model(), result.best_checkpoint, config), tok, examples) == result.best_score
  final = load_trained(tiny_model(), result.checkpoint, config)  # weights out of a whole resume checkpoint
  for a, b in zip(jax.tree.leaves(nnx.state(final, nnx.Param)), jax.tree.leaves(nnx.state(result.model, nnx.Param))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Metrics: JSONL per step and TensorBoard event files.
  records = read_metrics(result.metrics_path)
  steps = [r for r in records if "loss" in r]
  assert [r["step"] for r in steps] == list(range(1, 61))
  assert {"loss", "learning_rate", "grad_norm", "tokens_per_s"} <= steps[-1].keys()
  assert steps[0]["learning_rate"] == 0 and steps[10]["learning_rate"] > 0
  assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_sharded_run_matches_single_device(tok, tmp_path):
  """Full fine-tuning on a 2x2x2 mesh of 8 CPU devices: the loss curve matches one device within 1e-4 relative."""
  config = TrainConfig(total_steps=6, batch_size=8, grad_accum=2, seq_len=16, buckets=(8, 16), warmup_steps=1,
                       learning_rate=1e-3, lora_rank=None, save_every=6, progress=False)
  curves = []
  for name, mesh in (("single", one_device_mesh()), ("sharded", make_mesh((2, 2, 2)))):
    result = train(tiny_model(), tok, mixed_examples(), config, tmp_path / name, mesh=mesh)
    curves.append(_losses(result.metrics_path))
  assert len(jax.devices()) == 8 and len(curves[0]) == 6
  np.testing.assert_allclose(curves[1], curves[0], rtol=1e-4)
  assert curves[0][-1] < curves[0][0]


@pytest.fixture(scope="module")
def unbroken(tok, tmp_path_factory):
  """The reference: `resume_config` run start to end without interruption."""
  workdir = tmp_path_factory.mktemp("unbroken")
  result = train(tiny_model(), tok, mixed_examples(), resume_config(), workdir, mesh=one_device_mesh())
  return result, _losses(result.metrics_path)


@pytest.mark.slow
def test_resume_after_sigkill_ends_at_the_same_loss(tok, tmp_path, unbroken):
  """A subprocess is SIGKILLed once a checkpoint exists and restarted: same final loss (exactly) and curve."""
  tok.save(tmp_path / "tok.model")
  command = [sys.executable, str(ROOT / "tests" / "train_child.py"), str(tmp_path / "run"), str(tmp_path / "tok.model")]
  env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
         "TRAIN_CHILD_DELAY": "0.4"}
  child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  first = tmp_path / "run" / CHECKPOINTS / "3"
  deadline = time.monotonic() + 240
  while not first.exists() and child.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  child.send_signal(signal.SIGKILL)
  _, err = child.communicate()
  assert child.returncode == -signal.SIGKILL, err[-3000:]
  saved = sorted(int(p.name) for p in (tmp_path / "run" / CHECKPOINTS).iterdir() if p.name.isdigit())
  assert saved and max(saved) < 12, saved  # killed mid-run, after a checkpoint

  done = subprocess.run(command, env={**env, "TRAIN_CHILD_DELAY": "0"}, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  resumed = json.loads(done.stdout.strip().splitlines()[-1])
  reference, curve = unbroken
  assert resumed["steps"] == 12 and resumed["final_loss"] == reference.final_loss
  assert _losses(tmp_path / "run" / "metrics.jsonl") == curve  # each step once, same values


def test_sigterm_saves_and_the_resumed_run_ends_at_the_same_loss(tok, tmp_path, unbroken):
  calls = []

  def eval_fn(model):
    calls.append(1)
    if len(calls) == 5:  # during step 5, which is not a save_every multiple
      os.kill(os.getpid(), signal.SIGTERM)
    return 0.0

  stopped = train(tiny_model(), tok, mixed_examples(), resume_config(), tmp_path, mesh=one_device_mesh(),
                  eval_fn=eval_fn)
  assert stopped.preempted and stopped.steps == 5 and stopped.checkpoint.name == "5"
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
  resumed = train(tiny_model(), tok, mixed_examples(), resume_config(), tmp_path, mesh=one_device_mesh())
  reference, curve = unbroken
  assert resumed.steps == 12 and not resumed.preempted
  assert resumed.final_loss == reference.final_loss and _losses(resumed.metrics_path) == curve
  again = train(tiny_model(), tok, mixed_examples(), resume_config(), tmp_path, mesh=one_device_mesh())
  assert again.steps == 12 and again.final_loss == reference.final_loss  # a finished run returns at once


class _Killed(BaseException):
  """Stands in for a SIGKILL inside an eval: nothing after it runs."""


def test_a_kill_inside_an_eval_resumes_without_losing_or_repeating_it(tok, tmp_path):
  """Killed in the eval of step 5 (best/4 saved, latest checkpoint 3), then in the final eval (checkpoint 12 saved):
  each rerun resumes (no StepAlreadyExistsError) and the last one runs the final eval it missed, once."""
  def killed_at(n):
    calls = []

    def eval_fn(model):
      calls.append(1)
      if len(calls) == n:
        raise _Killed()
      return float(len(calls))
    return eval_fn

  for kill_at_call in (5, 12 - 3):  # the second run resumes at 3 and its 9th eval is step 12's
    with pytest.raises(_Killed):
      train(tiny_model(), tok, mixed_examples(), resume_config(), tmp_path, mesh=one_device_mesh(),
            eval_fn=killed_at(kill_at_call))
  assert (tmp_path / CHECKPOINTS / "12").is_dir()
  evals = []
  result = train(tiny_model(), tok, mixed_examples(), resume_config(), tmp_path, mesh=one_device_mesh(),
                 eval_fn=lambda m: evals.append(1) or 100.0)
  assert len(evals) == 1 and result.steps == 12 and result.best_score == 100.0
  assert result.best_checkpoint.name == "12"
  assert [r["step"] for r in read_metrics(result.metrics_path) if "score" in r] == list(range(1, 13))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tok, tmp_path):
  config = TrainConfig(total_steps=20, batch_size=4, seq_len=16, buckets=(16,), warmup_steps=3, learning_rate=1e10,
                       clip_norm=None, lora_rank=None, save_every=1, keep=3, progress=False)
  with pytest.raises(NonFiniteLossError, match=r"loss is nan at step (\d+); training stopped. The last good "
                                               r"checkpoint is step \d+") as info:
    train(tiny_model(), tok, mapping_examples(), config, tmp_path, mesh=one_device_mesh())
  bad = int(info.value.args[0].split("step ")[1].split(";")[0])
  saved = sorted(int(p.name) for p in (tmp_path / CHECKPOINTS).iterdir() if p.name.isdigit())
  assert saved and max(saved) == bad - 1
  records = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "loss" in r]
  assert all(np.isfinite(r["loss"]) for r in records[:-1]) and records[-1]["loss"] == "nan"


def test_bad_input_fails_before_compiling(tok, tmp_path):
  config = TrainConfig(total_steps=2, batch_size=2, seq_len=16, lora_rank=None, progress=False)
  model = tiny_model()
  cases = [
      ([], config, model, "the dataset is empty"),
      (mapping_examples(), config.replace(seq_len=4096), model, "exceeds the model's max_position_embeddings"),
      (mapping_examples(), config, tiny_model(vocab_size=256), "the tokenizer has"),
      ([Example("q", " red" * 40)], config, model, "no example fits"),
  ]
  compiles = []
  listener = lambda event, *a, **k: compiles.append(event) if "backend_compile" in event else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    for examples, cfg, m, message in cases:
      with pytest.raises(ValueError, match=message):
        train(m, tok, examples, cfg, tmp_path / "bad", mesh=one_device_mesh())
    assert not compiles and not (tmp_path / "bad").exists()
    train(model, tok, mapping_examples(), config, tmp_path / "run", mesh=one_device_mesh())
    assert compiles  # the listener does see compilations
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  with pytest.raises(ValueError, match="different config.learning_rate"):
    train(tiny_model(), tok, mapping_examples(), config.replace(learning_rate=1.0), tmp_path / "run",
          mesh=one_device_mesh())
  with pytest.raises(ValueError, match="different examples"):
    train(tiny_model(), tok, mapping_examples()[:-1], config, tmp_path / "run", mesh=one_device_mesh())
