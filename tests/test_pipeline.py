"""The ReST loop end to end through `python -m restreact.launch` (the `quick` demo: tiny random models,
synthetic world): two generations of grow -> rank -> mixture -> improve -> eval, the delivered model exported
for transformers, a rerun that skips everything, and a run SIGKILLed five times (mid-training, then at four
random moments; it starts from the finished run's pilot) that, rerun, ends with the same outputs and no
duplicates."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restreact.agent.records import read_records
from restreact.rest import read_card, read_rankings
from restreact.runner.stages import STAGE_FILE

from pipeline_util import CONFIG, ROOT, launch

pytestmark = pytest.mark.slow


def stage(workdir: Path, name: str) -> dict:
  return json.loads((workdir / name / STAGE_FILE).read_text())


def _strip_timing(value):
  if isinstance(value, dict):
    return {k: _strip_timing(v) for k, v in value.items() if "latency" not in k and "seconds" not in k}
  if isinstance(value, list):
    return [_strip_timing(v) for v in value]
  return value


def trajectories(path: Path) -> dict:
  records = list(read_records(path))
  keys = [r.key for r in records]
  assert len(keys) == len(set(keys)), f"duplicate trajectories in {path}"
  return {r.key: _strip_timing(json.loads(r.to_json())) for r in records}


def outputs(workdir: Path) -> dict:
  """Everything a run produced that must not depend on interruptions (timings left out)."""
  out = {}
  for path in sorted(workdir.rglob("*.jsonl")):
    rel = str(path.relative_to(workdir))
    if "/parts/" in rel or "/dev/" in rel or rel.endswith("metrics.jsonl") or rel == "runs.jsonl":  # times
      continue
    if "trajectories" in path.name:
      out[rel] = trajectories(path)
    elif path.name == "rankings.jsonl":
      out[rel] = {f"{k}/{i}": r for (k, i), r in read_rankings(path).items()}
    else:
      out[rel] = path.read_text()
  for path in sorted(workdir.rglob("summary.json")) + sorted(workdir.rglob("result.json")):
    out[str(path.relative_to(workdir))] = json.loads(path.read_text())
  out["report.md"] = (workdir / "report.md").read_text().split("## Stage times")[0]  # times differ by run
  return out


@pytest.fixture(scope="module")
def finished(quick_run) -> Path:
  return quick_run  # launched once per session (tests/conftest.py), shared with the tests that only read it


def test_two_generations_grow_rank_improve_eval(finished):
  w = finished
  names = ["setup"] + [f"{g}/{s}" for g in ("pilot", "gen1", "gen2")
                       for s in ("grow", "rank", "mixture", "train_l", "train_xs", "eval_l", "eval_xs")] + ["export"]
  assert all(stage(w, n)["status"] == "done" for n in names)
  assert not (w / "pilot" / "train_s").exists()  # gen2_xs needs L (it grows) and XS (it is delivered)
  # who grew what: the scripted pilot, then pilot L, then gen-1 L with 2 samples per question
  parents = {g: {(r.lineage.model, r.lineage.generation) for r in read_records(w / g / "grow/trajectories.jsonl")}
             for g in ("pilot", "gen1", "gen2")}
  assert parents == {"pilot": {("scripted", 0)}, "gen1": {("pilot:l", 1)}, "gen2": {("gen1:l", 2)}}
  grown = {g: list(read_records(w / g / "grow/trajectories.jsonl")) for g in ("gen1", "gen2")}
  assert len(grown["gen2"]) == 2 * len(grown["gen1"]) == 12
  # every step of the pilot had two candidates: all ranked by the (noise) ranker, fallbacks counted
  card = read_card(w / "pilot/mixture/card.json")
  assert card.mean_candidates_per_step == 2.0 and card.fallbacks == sum(
      card.ranking_statuses[s] for s in ("partial", "invalid")) and card.ranking_statuses["skipped"] == 0
  assert read_card(w / "gen2/mixture/card.json").generations == (0, 1, 2)
  # distillation: L and XS of a generation train on the same mixture; checkpoints chosen by dev auto-eval
  for g in ("pilot", "gen1", "gen2"):
    assert stage(w, f"{g}/train_l")["inputs"]["mixture"] == stage(w, f"{g}/train_xs")["inputs"]["mixture"]
    result = json.loads((w / g / "train_xs/result.json").read_text())
    assert result["steps"] == 4 and result["best_dev_score"] is not None
    assert (w / g / "train_xs" / result["checkpoint"]).is_dir()
  summary = json.loads((w / "gen2/eval_xs/summary.json").read_text())
  assert summary["runs"] == 2 and summary["questions"] == 3 and len(summary["auto_eval"]["run_scores"]) == 2
  assert (w / "gen2/eval_xs/for_raters.csv").read_text().startswith("id,question,reference,answer,rating")  # blind
  report = (w / "report.md").read_text()
  assert "| pilot |" in report and "| gen 2 |" in report and "| Exact match accuracy (%)" in report
  assert "| gen 2 - pilot | XS |" in report and "| gen 2 - gen 1 | L |" in report  # paired differences
  # the data table: what each generation added, with its rankings and truncations
  assert "| gen 2 | 12 | " in report and "| new trajectories | kept (cut at a correction) |" in report
  assert "L 0, XS 0 |" in report
  assert (w / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # the run record: what ran, on what, with which code; then how it ended and what each stage took
  start, end = [json.loads(line) for line in (w / "runs.jsonl").read_text().splitlines()]
  assert start["event"] == "start" and start["config"]["experiment"] == "gen2_xs" and start["packages"]["jax"]
  assert start["devices"]["platform"] == "cpu" and "commit" in start["git"]
  assert end["event"] == "end" and end["started"] == start["started"] and end["outcome"] == "done"
  assert len(end["stages"]) == 23 and not any(s["skipped"] for s in end["stages"].values())
  assert all(s["seconds"] is not None for s in end["stages"].values())


def test_delivered_model_is_exported_for_transformers(finished):
  """export/xs/ is gen 2's XS, the delivered model: transformers gives the trained model's logits (fp32, 1e-4)."""
  import numpy as np
  import torch
  import transformers
  from restreact import experiment
  from restreact.models import Tokenizer
  from restreact.runner.model_store import ModelStore
  out = finished / "export" / "xs"
  assert sorted(p.name for p in out.parent.iterdir()) == [STAGE_FILE, "xs"]  # the delivered size, nothing partial
  tokenizer = Tokenizer(finished / "setup" / "tokenizer.model")
  store = ModelStore(experiment.get_config(2, "xs", "quick"), tokenizer)  # configs/gen2_xs.py:quick
  store.trained["gen2:xs"] = finished / "gen2/train_xs" / json.loads(
      (finished / "gen2/train_xs/result.json").read_text())["checkpoint"]
  trained = store.load("gen2:xs")
  config = json.loads((out / "tokenizer_config.json").read_text())
  assert ("chat_template" in config) == store.chat("xs")  # a template only for a model trained on chat turns
  text = "Question: Where was the director of Film 3 born?\nThought: search for it"
  tokens = np.asarray([tokenizer.encode(text, add_bos=True)])
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  assert hf_tokenizer(text)["input_ids"] == tokens[0].tolist()
  hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager",
                                                         local_files_only=True).eval()
  with torch.no_grad():
    theirs = hf(input_ids=torch.as_tensor(tokens)).logits.numpy()
  np.testing.assert_allclose(theirs, np.asarray(trained(tokens)), atol=1e-4, rtol=0)


def test_rerun_skips_finished_stages(finished):
  before = outputs(finished)
  start = time.time()
  proc = launch(finished)
  assert "starting" not in proc.stderr and "resuming" not in proc.stderr
  assert proc.stderr.count("done earlier, skipped") == 23
  assert outputs(finished) == before
  end = json.loads((finished / "runs.jsonl").read_text().splitlines()[-1])
  assert end["outcome"] == "done" and all(s["skipped"] for s in end["stages"].values())
  assert time.time() - start < 120


def test_changed_inputs_are_refused(finished, tmp_path):
  proc = subprocess.run([sys.executable, "-m", "restreact.launch", CONFIG, f"--workdir={finished}",
                         "--config.agent.temperature=0.9"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1"))
  assert proc.returncode != 0
  assert "stage 'pilot/grow'" in proc.stderr and "agent.temperature" in proc.stderr


def test_killed_mid_stage_resumes_to_the_same_outputs(finished, tmp_path):
  workdir = tmp_path / "run"
  for done in ("setup", "pilot"):  # the finished run's, made from the same inputs: the launch starts at gen 1
    shutil.copytree(finished / done, workdir / done)
  proc = launch(workdir, wait=False)
  checkpoints = workdir / "gen1" / "train_l" / "train" / "checkpoints"
  deadline = time.time() + 600
  try:
    while not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
      assert proc.poll() is None, f"the run ended before it could be killed: {proc.stdout.read()[-3000:]}"
      assert time.time() < deadline, "no checkpoint within 10 minutes"
      time.sleep(0.2)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  assert stage(workdir, "gen1/train_l")["status"] == "running"
  # then SIGKILL at random moments of each relaunch (seeded, printed on failure), mid-write included
  rng, moments = random.Random(16), []
  for _ in range(4):
    moments.append(round(rng.uniform(3.0, 25.0), 1))
    proc = launch(workdir, wait=False)
    try:
      proc.wait(timeout=moments[-1])
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
  rerun = launch(workdir, "--config.progress=False")  # no progress bars: the same stages, resumed, not refused
  assert "done earlier" in rerun.stderr and "stage setup: done earlier" in rerun.stderr
  assert outputs(workdir) == outputs(finished), f"killed at {moments} s after each relaunch"
  assert not (workdir / "LOCK").exists()  # the last launch released it; the killed ones' were taken over
