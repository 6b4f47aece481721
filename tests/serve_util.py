"""A tiny instruction-tuned Hugging Face checkpoint and an OpenAI-compatible server around it, for the serve tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from models_util import random_model
from test_chat import gemma_like_tokenizer

ROOT = Path(__file__).resolve().parents[1]
NAME = "tiny-it"


def tiny_checkpoint(parent: Path) -> Path:
  """parent/tiny-it: a random 6-layer Gemma 3 with a Gemma-like tokenizer, as export_hf writes it."""
  from restreact.models import export_hf
  tokenizer = parent / "tokenizer" / "tokenizer.model"
  tokenizer.parent.mkdir(parents=True)
  vocab = gemma_like_tokenizer(tokenizer).vocab_size  # a random model samples every row: each must decode
  model = random_model("gemma3-tiny", seed=3, vocab_size=vocab, max_position_embeddings=4096)
  return export_hf(model, tokenizer, parent / NAME, chat=True)


def start_server(checkpoint: Path, *, num_slots: int = 4, max_len: int = 256, api_key: str | None = None):
  """An in-process server on a free port (started; close() it)."""
  from restreact.serve.app import OpenAIServer
  from restreact.serve.loading import load, make_engine
  loaded = load(checkpoint, dtype="float32")
  engine = make_engine(loaded, num_slots=num_slots, max_len=max_len, steps_per_round=4, prefill_chunk=64,
                       prefill_buckets=(16,))
  return OpenAIServer(engine, model_name=loaded.name, port=0, api_key=api_key).start()


def launch_server(checkpoint: Path, *extra: str, env: dict | None = None) -> tuple[subprocess.Popen, str, list]:
  """`python -m restreact.serve` on a free port: (process, base URL, its log lines so far and to come) once it
  says it serves. A thread keeps reading its log, so a full pipe never blocks it."""
  env = dict(os.environ if env is None else env, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.Popen([sys.executable, "-m", "restreact.serve", "--checkpoint", str(checkpoint), "--port", "0",
                           "--dtype", "float32", *extra], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
  lines: list[str] = []
  started = threading.Event()
  url: list[str] = []

  def read():
    for line in proc.stderr:
      lines.append(line)
      if not started.is_set() and (match := re.search(r"serving .* at (http://\S+/v1)", line)):
        url.append(match.group(1))
        started.set()
    started.set()  # it ended

  threading.Thread(target=read, daemon=True).start()
  if not started.wait(120) or not url:
    proc.kill()
    raise RuntimeError("the server did not start:\n" + "".join(lines[-30:]))
  return proc, url[0], lines


def post(url: str, body, *, headers: dict | None = None, raw: bytes | None = None) -> tuple[int, dict]:
  """(status, JSON body) of a POST (or of a GET when body is None and raw is None)."""
  data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
  request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                   method="GET" if data is None else "POST")
  try:
    with urllib.request.urlopen(request, timeout=120) as response:
      return response.status, json.loads(response.read())
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())
