"""Shared by the benchmarks: machine description and appending a dated table to BENCHMARKS.md."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def machine() -> str:
  """CPU model and core count, plus the accelerator when JAX sees one."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  desc = f"{cpu}, {os.cpu_count()} cores"
  device = jax.devices()[0]
  if device.platform != "cpu":
    desc += f"; {device.device_kind} ({len(jax.devices())}x)"
  return desc


def versions(*modules: str) -> str:
  out = []
  for name in modules:
    try:
      out.append(f"{name} {__import__(name).__version__}")
    except ImportError:
      pass
  return ", ".join(out)


def markdown_table(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return "\n".join(lines)


def interleaved(fns: dict, repeats: int, first_seconds: dict | None = None) -> tuple[dict, dict]:
  """First-step results (warm-up, compilation included; their seconds into `first_seconds` when given) and
  median step seconds, timing the sides in turn so that background load hits both alike."""
  first = {}
  for name, fn in fns.items():
    start = time.perf_counter()
    first[name] = fn()
    if first_seconds is not None:
      first_seconds[name] = time.perf_counter() - start
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return first, {name: float(np.median(t)) for name, t in times.items()}


def append(title: str, table: str, notes: str = "", path: str | os.PathLike | None = None) -> Path:
  """Print the table and append it to BENCHMARKS.md (or `path`) with date, machine and command."""
  path = Path(path) if path else ROOT / "BENCHMARKS.md"
  command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
  try:
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
  block = (f"\n## {title}\n\n- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n"
           f"- machine: {machine()}\n- software: {versions('jax', 'flax', 'torch', 'transformers')}\n"
           f"- commit: {commit}\n- command: `{command}`\n\n{table}\n" + (f"\n{notes}\n" if notes else ""))
  print(block)
  with open(path, "a", encoding="utf-8") as f:
    f.write(block)
  return path


def shape_parser(doc: str, gpu_help: str):
  """The command line shared by the forward and training benchmarks."""
  import argparse
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument("--gpu", action="store_true", help=gpu_help)
  parser.add_argument("--batch", type=int, default=None)
  parser.add_argument("--seq-len", type=int, default=None)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--append-to", default=None, help="file to append the table to (default BENCHMARKS.md)")
  return parser


def require_gpu() -> None:
  """Exit with a message unless both JAX and PyTorch see a GPU."""
  import torch
  if jax.devices()[0].platform != "gpu" or not torch.cuda.is_available():
    raise SystemExit("--gpu needs a GPU visible to both JAX and PyTorch")
