"""One launch per work directory: a lock file that a second launch finds and refuses, released on exit.

`WORKDIR/LOCK` holds the owner's host, pid and start time, created with O_EXCL (atomic on local and NFS
file systems; no flock, which gcsfuse does not support). A lock whose owner is on this host and no longer
running was left by a crash (SIGKILL): it is taken over, with a warning. A lock held from another host
cannot be checked from here: the message says whose it is and how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_FILE = "LOCK"


class WorkdirLocked(RuntimeError):
  """Another launch holds the work directory."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # someone else's process: alive
    return True
  return True


def _create(path: Path, owner: dict) -> bool:
  try:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
  except FileExistsError:
    return False
  with os.fdopen(fd, "w") as f:
    f.write(json.dumps(owner) + "\n")
  return True


@contextlib.contextmanager
def workdir_lock(workdir: str | Path):
  """Hold `workdir/LOCK` for the duration of the block; WorkdirLocked if a live launch holds it."""
  path = Path(workdir) / LOCK_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
  while not _create(path, owner):
    try:
      held = json.loads(path.read_text(encoding="utf-8"))
      host, pid = str(held["host"]), int(held["pid"])
    except (OSError, ValueError, KeyError, TypeError):
      held, host, pid = {}, "", 0  # unreadable: a crash while writing it; treated as stale below
      if path.exists() and time.time() - path.stat().st_mtime < 10:  # or a launch writing it right now
        raise WorkdirLocked(f"{path}: another launch is starting in this work directory") from None
    if held and (host != owner["host"] or _alive(pid)):
      raise WorkdirLocked(
          f"{path}: another launch (pid {pid} on {host}, since {held.get('started', '?')}) is running in this work "
          f"directory; wait for it, or use another --workdir. If it is gone (it ran on another machine that "
          f"crashed), delete {path}.")
    log.warning("%s: taking over a lock left by pid %s, which is no longer running", path, pid or "?")
    path.unlink(missing_ok=True)
  try:
    yield path
  finally:
    with contextlib.suppress(OSError, ValueError):
      if json.loads(path.read_text(encoding="utf-8")).get("pid") == owner["pid"]:
        path.unlink()
