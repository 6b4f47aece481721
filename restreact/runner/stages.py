"""Stages of the ReST loop: each writes into its own folder, fingerprinted by its inputs.

A stage folder holds `stage.json`: the stage's name, the fingerprint (sha256 of its inputs, which
include the fingerprints of the stages it reads from), the inputs themselves and a status. The
status is `running` from the moment the stage starts and `done` once every output is written, so:
- a rerun skips a `done` stage with the same fingerprint;
- a rerun of a `running` stage with the same fingerprint calls the stage again, and the stage
  resumes from what it wrote (rollouts skip finished trajectories, training restores its latest
  checkpoint, ranking skips finished chunks);
- a stage whose folder was made from other inputs is an error that names the inputs that changed,
  instead of silently mixing two experiments in one folder.

In a multi-process run process 0 reads the markers and writes them, and every process follows its word
(`multihost.agree`), so all of them run or skip the same stages. A stage runs on every process (the
engine and the trainer are collective) unless it is `writer_only`: then process 0 makes its files and
the others wait, then load them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from restreact import multihost
from restreact.files import write_atomic

log = logging.getLogger(__name__)
STAGE_FILE = "stage.json"


class StageMismatchError(RuntimeError):
  """A stage folder holds outputs made from other inputs than this run's."""


def fingerprint(inputs: Mapping[str, Any]) -> str:
  """sha256 of the inputs as canonical JSON (keys sorted; non-JSON values by their str)."""
  text = json.dumps(inputs, sort_keys=True, default=str, ensure_ascii=False)
  return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class StageResult:
  """Where a stage's outputs are, its fingerprint, and whether this run skipped it."""

  name: str
  directory: Path
  fingerprint: str
  skipped: bool
  value: Any = None


def _changed(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
  keys = sorted(set(old) | set(new))
  out = []
  for k in keys:
    a, b = old.get(k), new.get(k)
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += _changed(a, b, f"{prefix}{k}.")
    elif json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
      out.append(f"{prefix}{k}")
  return out


class Stages:
  """Runs stages under `workdir`, skipping finished ones and resuming interrupted ones."""

  def __init__(self, workdir: str | Path):
    self.workdir = Path(workdir).absolute()
    self.results: dict[str, StageResult] = {}

  def status(self, name: str) -> dict | None:
    """The stage's `stage.json`, or None when it never started."""
    path = self.workdir / name / STAGE_FILE
    if not path.is_file():
      return None
    try:
      return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
      raise StageMismatchError(f"{path}: unreadable stage marker ({e}); delete the folder to redo the stage") from None

  def run(self, name: str, inputs: Mapping[str, Any], fn: Callable[[Path], Any],
          load: Callable[[Path], Any] | None = None, *, writer_only: bool = False) -> StageResult:
    """Run `fn(stage_dir)` unless a finished stage with the same inputs is there (then `load(stage_dir)`).

    `writer_only`: in a multi-process run only process 0 calls `fn`; the others `load` what it wrote.
    """
    if writer_only and load is None:
      raise ValueError(f"stage {name!r}: a writer_only stage needs `load` for the other processes")
    directory = self.workdir / name
    inputs = json.loads(json.dumps(inputs, sort_keys=True, default=str))
    fp = fingerprint(inputs)
    old = multihost.from_writer(lambda: self.status(name))
    if old is not None and old.get("fingerprint") != fp:
      changed = ", ".join(_changed(old.get("inputs", {}), inputs)) or "unknown"
      raise StageMismatchError(
          f"stage {name!r} in {directory} was made from other inputs (changed: {changed}). Use another --workdir, "
          f"or delete {directory} and the stages after it to redo them.")
    if old is not None and old.get("status") == "done":
      log.info("stage %s: done earlier, skipped", name)
      result = StageResult(name, directory, fp, True, load(directory) if load else None)
      self.results[name] = result
      return result
    log.info("stage %s: %s", name, "resuming" if old else "starting")
    started = time.time()
    marker = {"name": name, "fingerprint": fp, "inputs": inputs, "started": started,
              "resumed": old is not None}
    self._mark(directory, {**marker, "status": "running"})
    if writer_only:  # the others wait for process 0's word (its error included), then load what it wrote
      made = []
      multihost.from_writer(lambda: made.append(fn(directory)))
      value = made[0] if made else load(directory)
    else:
      value = fn(directory)
    self._mark(directory, {**marker, "status": "done", "seconds": round(time.time() - started, 3)})
    result = StageResult(name, directory, fp, False, value)
    self.results[name] = result
    return result

  def _mark(self, directory: Path, marker: dict) -> None:
    if multihost.is_writer():
      directory.mkdir(parents=True, exist_ok=True)
      write_atomic(directory / STAGE_FILE, json.dumps(marker, indent=1, sort_keys=True) + "\n")
