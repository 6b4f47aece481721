"""Run a ReST experiment: `python -m restreact.launch --config=configs/gen2_xs.py[:demo] --workdir=DIR`.

Every host of a TPU pod or GPU cluster runs the same command (see launch/). The config is an
ml-collections file whose fields can be overridden on the command line, e.g.
`--config.models.l.checkpoint=/ckpt/gemma-3-27b-it --config.eval.runs=3`. The config is checked
before anything heavy starts; then the stage graph runs (restreact/rest/pipeline.py), skipping the
stages a previous run finished and resuming the one it was in.
"""

from __future__ import annotations

import logging
import os
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/gen2_xs.py[:demo].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where every stage writes its outputs (rerun to resume).")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 on a GPU cluster "
                                   "(or RESTREACT_COORDINATOR); TPU pods need none.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (or RESTREACT_NUM_PROCESSES).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (or RESTREACT_PROCESS_ID).")
_CHECK_ONLY = flags.DEFINE_bool("check_only", False, "Check the config and exit.")

QUIET_LOGGERS = ("jax", "absl", "bm25s", "orbax", "urllib3", "matplotlib", "PIL")


def _config_file() -> str:
  for arg in sys.argv[1:]:
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":", 1)[0]
  return "configs/EXPERIMENT.py"


def _logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
  for name in QUIET_LOGGERS:
    logging.getLogger(name).setLevel(logging.WARNING)


def main(argv) -> int:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from restreact.rest.config_check import ConfigError, check_config  # after flags: keeps --help fast

  config = _CONFIG.value
  try:
    check_config(config, config_file=_config_file())
  except ConfigError as e:
    print(f"restreact.launch: the config cannot run:\n{e}", file=sys.stderr)
    return 2
  if _CHECK_ONLY.value:
    print("config ok")
    return 0
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required: every stage writes its outputs there")

  from restreact import distributed  # imports jax: only once the config is known to be runnable
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  import jax

  from restreact.rest.pipeline import run_pipeline
  from restreact.rest.stages import StageMismatchError
  _logging()
  logging.info("experiment %s, process %d of %d, %d devices, workdir %s", config.experiment, jax.process_index(),
               jax.process_count(), jax.device_count(), _WORKDIR.value)
  try:
    result = run_pipeline(config, os.path.expanduser(_WORKDIR.value))
  except StageMismatchError as e:
    print(f"restreact.launch: {e}", file=sys.stderr)
    return 3
  if result.report:
    logging.info("report: %s and %s", *result.report)
  return 0


def run() -> None:
  """Console entry point."""
  flags.mark_flag_as_required("config")
  app.run(main)


if __name__ == "__main__":
  run()
