"""One writer in a multi-process run: process 0 writes the run's files and calls the search tool, and
hands what it read or received to the others, so that every process feeds its engine the same requests
in the same order (the engine is one SPMD program over every process's devices).

- `is_writer()`: whether this process writes (process 0; always true in a one-process run).
- `agree(value)`: process 0's value (anything JSON can carry) on every process. It is a collective:
  every process must call it at the same point of the program.
- `from_writer(read)`: `read()` on process 0 alone, its value on every process; an error it raises is
  raised on every process too (instead of leaving the others waiting in the next collective).
- `barrier(name)`: wait until every process gets here (before reading what process 0 just wrote).
- `check_shared(folder)`: stop with a clear message when the processes do not see one work directory.
- `preemption_service()`: whether JAX's preemption service owns SIGTERM (a multi-process run): its notifier
  tells every process, and `multihost_utils.reached_preemption_sync_point` names one step for all to save at.

What process 0 wrote earlier in the run (a stage's records, a mixture) is read by process 0 and handed
over with `agree`, not read again by every host: a network file system may show another host's fresh
writes late (gcsfuse caches file metadata for a minute by default). Checkpoints are the exception:
orbax writes and reads them from every process itself.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np
from etils import epy

with epy.lazy_imports():  # jax loads on first use: the config check imports this module and no jax
  import jax
  from jax.experimental import multihost_utils

_MIN_BUCKET = 1024  # payloads are padded to a power of two, so a few shapes (and compiles) serve every call


class WorkdirNotShared(RuntimeError):
  """The processes of a run do not see one work directory."""


def is_writer() -> bool:
  """Whether this process writes the run's files: process 0."""
  return jax.process_index() == 0


def preemption_service() -> bool:
  """Whether JAX's preemption service handles SIGTERM in this process: `jax.distributed` started it (a
  multi-process run; `jax_enable_preemption_service` is on by default). A Python SIGTERM handler would then
  replace its notifier, and the other processes would never hear of the notice."""
  return jax.process_count() > 1 and jax.distributed.is_initialized() and bool(jax.config.jax_enable_preemption_service)


def agree(value: Any) -> Any:
  """Process 0's `value` on every process, as JSON gives it back (tuples become lists), one process included.

  Every process calls it at the same point; only process 0's argument is read.
  """
  payload = json.dumps(value, ensure_ascii=False).encode("utf-8") if is_writer() else b""
  if jax.process_count() > 1:
    size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
    bucket = max(_MIN_BUCKET, 1 << (size - 1).bit_length())
    buffer = np.zeros(bucket, np.uint8)
    buffer[:len(payload)] = np.frombuffer(payload, np.uint8)
    payload = np.asarray(multihost_utils.broadcast_one_to_all(buffer))[:size].tobytes()
  return json.loads(payload.decode("utf-8"))


def from_writer(read: Callable[[], Any]) -> Any:
  """`read()` on process 0, its (JSON) value on every process; if it raises, every process raises."""
  outcome, error = None, None
  if is_writer():
    try:
      outcome = {"value": read()}
    except Exception as e:
      outcome, error = {"error": f"{type(e).__name__}: {e}"}, e
  outcome = agree(outcome)
  if error is not None:
    raise error
  if "error" in outcome:
    raise RuntimeError(f"process 0 failed: {outcome['error']}")
  return outcome["value"]


def barrier(name: str) -> None:
  """Wait until every process reaches the barrier with this name (nothing to wait for in one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def check_shared(folder: str | Path) -> None:
  """Raise when some process does not see the files process 0 writes in `folder` (e.g. a local disk per host)."""
  if jax.process_count() == 1:
    return
  folder = Path(folder)
  name = f".shared-{uuid.uuid4().hex}"
  probe = folder / agree(name)

  def write():
    folder.mkdir(parents=True, exist_ok=True)
    probe.write_text("probe\n")

  from_writer(write)
  seen = bool(multihost_utils.process_allgather(np.int32(probe.is_file())).all())
  barrier("check_shared_read")
  if is_writer():
    probe.unlink(missing_ok=True)
  if not seen:
    raise WorkdirNotShared(f"{folder} is not one folder for every process: process 0 wrote {name} there and another "
                       f"process does not see it. Give --workdir a path that every host mounts (NFS, a gcsfuse "
                       f"mount of a bucket)")
