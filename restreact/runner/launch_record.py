"""The run record: what a launch ran with, so a result can be traced to its code, config and machine.

`WORKDIR/runs.jsonl` gets two lines per launch (a resumed run adds its own; nothing is overwritten): at the
start, the resolved config, the git commit of the code (with a flag when the checkout had uncommitted
changes), the versions of the packages that decide the numbers, the devices and processes; at the end (unless
the process was killed), how the launch ended and each stage's outcome in it (ran or skipped, seconds).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import subprocess
from pathlib import Path

import jax

RECORD_FILE = "runs.jsonl"
PACKAGES = ("restreact", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "sentencepiece", "bm25s")
_REPO = Path(__file__).resolve().parents[2]


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _git() -> dict:
  """The commit of the code that runs, or why it is unknown (an installed copy, no git)."""
  try:
    commit = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                            timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(_REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=10, check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError) as e:
    return {"commit": None, "why": f"{type(e).__name__}: not a git checkout or no git"}
  return {"commit": commit, "uncommitted_changes": bool(dirty)}


def _versions() -> dict:
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def _append(workdir: Path, line: dict) -> None:
  with open(workdir / RECORD_FILE, "a", encoding="utf-8") as f:
    f.write(json.dumps(line, sort_keys=True, default=str) + "\n")


def record_start(workdir: Path, config) -> str:
  """Append the start line; returns the launch's start time, which names it in the end line."""
  devices = jax.devices()
  started = _now()
  hardware = {"platform": devices[0].platform, "kind": devices[0].device_kind, "count": len(devices),
              "processes": jax.process_count()}
  _append(workdir, {"event": "start", "started": started, "config": json.loads(config.to_json()), "git": _git(),
                    "packages": _versions(), "devices": hardware})
  return started


def record_end(workdir: Path, started: str, results: dict, outcome: str) -> None:
  """Append the end line: how the launch ended and each stage's outcome in it."""
  stages = {}
  for name, result in results.items():
    marker = workdir / name / "stage.json"
    seconds = json.loads(marker.read_text()).get("seconds") if marker.is_file() and not result.skipped else None
    stages[name] = {"skipped": result.skipped, "seconds": seconds}
  _append(workdir, {"event": "end", "started": started, "ended": _now(), "outcome": outcome, "stages": stages})
