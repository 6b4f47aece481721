"""Multi-process start-up: `initialize` connects this process to the others of a run, or leaves it alone.

Three ways to run:
- explicit: a coordinator `host:port`, the number of processes and this process's id, from arguments
  or the RESTREACT_COORDINATOR, RESTREACT_NUM_PROCESSES and RESTREACT_PROCESS_ID environment variables
  (`launch/slurm_gpu.sbatch` sets them; two CPU processes on one machine work the same way);
- a multi-host TPU pod: JAX finds the other workers itself (`jax.distributed.initialize()`);
- anything else: one process, nothing to do.
It must run before the first JAX computation (JAX fixes its devices then).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import jax

log = logging.getLogger(__name__)

ENV_COORDINATOR = "RESTREACT_COORDINATOR"
ENV_NUM_PROCESSES = "RESTREACT_NUM_PROCESSES"
ENV_PROCESS_ID = "RESTREACT_PROCESS_ID"


def _from_env(value, name: str, environ: Mapping[str, str]):
  if value is not None:
    return value
  text = environ.get(name, "").strip()
  return text or None


def _as_int(value, what: str) -> int:
  if isinstance(value, bool):  # bool is an int subclass; True processes is a mistake, not 1
    raise ValueError(f"{what} must be an integer, got {value!r}")
  try:
    return int(value)
  except (TypeError, ValueError):
    raise ValueError(f"{what} must be an integer, got {value!r}") from None


def _check_coordinator(coordinator: str) -> str:
  """`host:port` (an IPv6 host in brackets: `[::1]:1234`), returned unchanged when valid."""
  text = str(coordinator)
  host, sep, port = text.rpartition(":")
  problem = None
  if not sep or not host:
    problem = "it is not host:port"
  elif any(c.isspace() for c in text):
    problem = "it contains whitespace"
  elif ":" in host and not (host.startswith("[") and host.endswith("]")):
    problem = "an IPv6 host must be in brackets, as in [::1]:1234"
  elif not port.isdigit() or not 0 < int(port) < 65536:
    problem = f"port {port!r} is not a number in [1, 65535]"
  if problem:
    raise ValueError(f"coordinator={text!r} ({ENV_COORDINATOR}): {problem}")
  return text


def _cpu_collectives() -> str:
  return jax.config.jax_cpu_collectives_implementation or "none"


def is_multihost_tpu(environ: Mapping[str, str] = os.environ) -> bool:
  """Whether the environment looks like one worker of a multi-host TPU pod (or of a multislice run)."""
  hosts = [h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  return len(hosts) > 1 or bool(environ.get("MEGASCALE_COORDINATOR_ADDRESS"))


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, environ: Mapping[str, str] = os.environ) -> bool:
  """Start JAX's multi-process runtime as the arguments, the RESTREACT_* variables or a TPU pod say; True if started."""
  coordinator = _from_env(coordinator, ENV_COORDINATOR, environ)
  num_processes = _from_env(num_processes, ENV_NUM_PROCESSES, environ)
  process_id = _from_env(process_id, ENV_PROCESS_ID, environ)
  given = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
  env_names = {"coordinator": ENV_COORDINATOR, "num_processes": ENV_NUM_PROCESSES, "process_id": ENV_PROCESS_ID}
  missing = [k for k, v in given.items() if v is None]
  if missing and len(missing) < len(given):
    raise ValueError(f"a multi-process run needs coordinator, num_processes and process_id together; missing "
                     + ", ".join(f"{k} (flag --{k} or {env_names[k]})" for k in missing))

  if not missing:
    coordinator = _check_coordinator(coordinator)
    num_processes = _as_int(num_processes, f"num_processes ({ENV_NUM_PROCESSES})")
    process_id = _as_int(process_id, f"process_id ({ENV_PROCESS_ID})")
    if num_processes < 1:
      raise ValueError(f"num_processes={num_processes} ({ENV_NUM_PROCESSES}) must be at least 1")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"process_id={process_id} ({ENV_PROCESS_ID}) is out of range [0, {num_processes}) "
                       f"for num_processes={num_processes}")
    if jax.distributed.is_initialized():  # e.g. launch.py started it and a library calls again
      return True
    # CPU devices need a cross-process collectives backend (older JAX defaults to none); GPUs and TPUs
    # bring their own, so choosing gloo when nothing is chosen changes nothing for them.
    if _cpu_collectives() == "none":
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    log.info("jax.distributed: process %d of %d, coordinator %s", process_id, num_processes, coordinator)
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    return True

  if is_multihost_tpu(environ):
    if jax.distributed.is_initialized():
      return True
    log.info("jax.distributed: TPU pod worker, the coordinator comes from the TPU metadata")
    jax.distributed.initialize()
    return True
  return False
