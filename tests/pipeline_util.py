"""Launching the `:quick` ReST pipeline from tests (a subprocess on one CPU device, as a user runs it)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "--config=configs/gen2_xs.py:quick"


def launch(workdir: Path, *extra: str, wait: bool = True):
  """`python -m restreact.launch` of the quick config into `workdir`; asserts it succeeded (unless not waited for)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  cmd = [sys.executable, "-m", "restreact.launch", CONFIG, f"--workdir={workdir}", *extra]
  if not wait:
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
  return proc
