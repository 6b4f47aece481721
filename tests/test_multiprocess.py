"""Two JAX processes on this machine (CPU, coordinator on 127.0.0.1) generate and train as one: the same text
in both, the same loss in both, and the same as one process with the same four devices."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import multiprocess_child as child
from restreact.agent.records import read_records
from restreact.train import read_metrics
from restreact.train.checkpoints import CHECKPOINTS
from train_util import mapping_tokenizer

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env() -> dict[str, str]:
  """Two CPU devices per process (four in the mesh); the parent's eight-device flag is replaced."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
  env = {k: v for k, v in os.environ.items() if not k.startswith("RESTREACT_")}
  return {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags + ["--xla_force_host_platform_device_count=2"]),
          "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}


def _start(tmp_path: Path, tokenizer: Path, workdir: Path, *extra: str) -> list[tuple[subprocess.Popen, Path, Path]]:
  """Process 0 joins with flags, process 1 with the RESTREACT_* variables (the two ways launch.py passes them)."""
  coordinator = f"127.0.0.1:{_free_port()}"
  base = [sys.executable, str(ROOT / "tests" / "multiprocess_child.py"), str(tokenizer), str(workdir), *extra]
  commands = [
      (base + [f"--coordinator={coordinator}", "--num_processes=2", "--process_id=0"], {}),
      (base, {"RESTREACT_COORDINATOR": coordinator, "RESTREACT_NUM_PROCESSES": "2", "RESTREACT_PROCESS_ID": "1"}),
  ]
  started = []
  for i, (command, extra) in enumerate(commands):
    out, err = tmp_path / f"child{i}.out", tmp_path / f"child{i}.err"  # files: a full pipe would block a child
    with open(out, "w") as o, open(err, "w") as e:
      started.append((subprocess.Popen(command, env={**_env(), **extra}, stdout=o, stderr=e, text=True), out, err))
  return started


def _wait(children) -> list[dict]:
  """Each child's JSON result; if one fails or time runs out, stop the others and fail with their stderr."""
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while any(p.poll() is None for p, _, _ in children):
      failed = any(p.returncode not in (None, 0) for p, _, _ in children)
      if failed or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p, _, _ in children:
      if p.poll() is None:
        p.kill()
        p.wait()
  if any(p.returncode != 0 for p, _, _ in children):
    report = "\n".join(f"--- process {i} (exit {p.returncode}) stderr:\n{err.read_text()[-4000:]}"
                       for i, (p, _, err) in enumerate(children))
    pytest.fail(f"a child process failed or ran past {TIMEOUT_S} s\n{report}")
  return [json.loads(out.read_text().strip().splitlines()[-1]) for _, out, _ in children]


def _losses(workdir: Path) -> list[float]:
  return [r["loss"] for r in read_metrics(workdir / "metrics.jsonl") if "loss" in r]


@pytest.mark.slow
def test_two_processes_generate_and_train_as_one(tmp_path):
  tokenizer = tmp_path / "tok.model"
  mapping_tokenizer(tokenizer)
  children = _start(tmp_path, tokenizer, tmp_path / "shared")
  # The single-process reference runs here meanwhile, on four of this process's eight devices.
  single = child.run(tokenizer, tmp_path / "single", devices=jax.devices()[:4])
  first, second = _wait(children)

  assert [first["process"], second["process"]] == [0, 1]
  assert first["devices"] == 4 and first["local_devices"] == 2
  # (a) Grow: both processes hold the same completions, text included.
  for key in ("greedy", "sampled"):
    assert first[key] == second[key]
  [greedy] = first["greedy"]
  assert greedy["text"] and len(greedy["tokens"]) == 8 and greedy["finish_reason"] == "length"
  assert len(first["sampled"]) == 2 and all(c["text"] for c in first["sampled"])
  # ... and the same as one process: tokens equal, log-probs up to rounding.
  for key in ("greedy", "sampled"):
    for multi, one in zip(first[key], single[key]):
      assert multi["tokens"] == one["tokens"] and multi["text"] == one["text"]
      np.testing.assert_allclose(multi["logprobs"], one["logprobs"], atol=1e-4)
  # (b) Improve: the same loss in both processes, and as one process within 1e-4.
  assert first["steps"] == second["steps"] == single["steps"] == 3
  assert first["final_loss"] == second["final_loss"]
  np.testing.assert_allclose(first["final_loss"], single["final_loss"], rtol=1e-4)
  np.testing.assert_allclose(_losses(tmp_path / "shared"), _losses(tmp_path / "single"), rtol=1e-4)
  # One checkpoint directory, written by both processes together.
  assert first["checkpoint"] == second["checkpoint"] == str(tmp_path / "shared" / CHECKPOINTS / "3")
  assert sorted(p.name for p in (tmp_path / "shared" / CHECKPOINTS).iterdir() if p.name.isdigit()) == ["2", "3"]


@pytest.mark.slow
def test_two_processes_roll_out_in_step_and_write_once(tmp_path):
  """Searches whose return order differs per process: process 0 alone searches, both advance the same
  trajectories in the same order with the same results, and the file holds each trajectory once."""
  children = _start(tmp_path, tmp_path / "unused.model", tmp_path / "shared", "--rollout")
  first, second = _wait(children)
  assert first["done"] == 16 and first["failed"] == 0 and first["searches"] > 16
  assert first["tool_calls"] == first["searches"] and second["tool_calls"] == 0
  assert first["records"] == second["records"]  # same order, same observations, same latencies
  written = [r.to_json() for r in read_records(tmp_path / "shared" / "trajectories.jsonl")]
  assert written == first["records"]


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_saved_step(tmp_path):
  """JAX's preemption service carries process 1's SIGTERM to process 0: both stop after the same step, saved
  once, together (a Python handler in process 1 alone would leave process 0 training, or waiting in a step)."""
  tokenizer = tmp_path / "tok.model"
  mapping_tokenizer(tokenizer)
  first, second = _wait(_start(tmp_path, tokenizer, tmp_path / "shared", "--preempt"))
  assert first["preempted"] and second["preempted"]
  assert second["python_handler"] is False  # JAX's notifier, not a Python handler, took the signal
  assert 3 <= first["steps"] == second["steps"] < child.PREEMPT_STEPS
  saved = tmp_path / "shared" / CHECKPOINTS
  assert first["checkpoint"] == second["checkpoint"] == str(saved / str(first["steps"]))
  assert [p.name for p in saved.iterdir() if p.name.isdigit()] == [str(first["steps"])]
