"""The `:quick` pipeline with its ranker and judge behind `python -m restreact.serve`: real HTTP on both sides, the
API key from the environment and in no file of the run; then the run's fine-tuned XS served from its run folder.
Shrunk to the pilot on three questions (the judge's own path is in test_serve.py: a random XS answers nothing)."""

import os
import subprocess
import sys

import pytest

from restreact.rest import read_rankings
from serve_util import NAME, ROOT, launch_server, post, tiny_checkpoint

pytestmark = pytest.mark.slow
KEY = "sk-never-written-42"


def test_quick_pipeline_ranks_and_judges_through_the_served_model(tmp_path):
  checkpoint = tiny_checkpoint(tmp_path)
  env = dict(os.environ, SERVE_KEY=KEY, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  server, url, log = launch_server(checkpoint, "--max_len", "2048", "--num_slots", "4", "--api_key_env", "SERVE_KEY",
                                   env=env)
  try:
    ref, workdir = f"openai:{NAME}@{url}", tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "restreact.launch", "--config=configs/gen2_xs.py:quick", f"--workdir={workdir}",
         "--config.generation=0", "--config.size=xs", "--config.eval_sizes=('xs',)", f"--config.rank.ranker={ref}",
         f"--config.eval.judge={ref}", "--config.openai.api_key_env=SERVE_KEY", "--config.rank.max_new_tokens=16",
         "--config.data.pilot[0].limit=3", "--config.data.dev.limit=1", "--config.data.test.limit=1",
         "--config.eval.runs=1", "--config.train.total_steps=1", "--config.train.save_every=1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    asked = [r for r in read_rankings(workdir / "pilot/rank/rankings.jsonl").values() if r.status != "skipped"]
    posts = [line for line in log if '"POST /v1/chat/completions HTTP/1.1" 200' in line]
    assert asked and len(posts) >= len(asked)  # every ranked step was a request to the server
    assert any('"GET /v1/models HTTP/1.1" 200' in line for line in log)  # the client checked the model first
    rank = (workdir / "pilot/rank/stage.json").read_text()
    assert '"ranker": "openai:tiny-it"' in rank and url not in rank  # the model's name, not its address
    assert '"judge": "openai:tiny-it"' in (workdir / "pilot/eval_xs/summary.json").read_text()
    assert not [p for p in workdir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert KEY not in proc.stderr and not any(KEY in line for line in log)
  finally:
    server.terminate()
    assert server.wait(30) == 0
  # the run's fine-tuned XS, served from its run folder as the pipeline loads it
  from serve_util import start_server
  served = start_server(workdir / "pilot" / "train_xs", num_slots=2, max_len=256)
  try:
    assert served.model_name == "run/pilot:xs"
    status, body = post(served.base_url + "/completions", {"prompt": "Question: who?", "max_tokens": 4,
                                                           "temperature": 0})
    assert status == 200 and body["usage"]["completion_tokens"] >= 1
  finally:
    served.close()
