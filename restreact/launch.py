"""Run a ReST experiment: `python -m restreact.launch --config=configs/gen2_xs.py[:demo] --workdir=DIR`.

Every host of a TPU pod or GPU cluster runs the same command (see launch/). The config is an
ml-collections file whose fields can be overridden on the command line, e.g.
`--config.models.l.checkpoint=/ckpt/gemma-3-27b-it --config.eval.runs=3`. The config is checked
before anything heavy starts; then the stage graph runs (restreact/runner/pipeline.py), skipping the
stages a previous run finished and resuming the one it was in.
"""

from __future__ import annotations

import difflib
import importlib.util
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
_ALLOW_CPU = flags.DEFINE_bool("allow_cpu", False, "Run a config with real checkpoints even when JAX finds only "
                               "CPU devices (it would be very slow; usually the accelerator's jax is missing).")

QUIET_LOGGERS = ("jax", "absl", "bm25s", "orbax", "urllib3", "matplotlib", "PIL")


def _config_spec(argv: list[str]) -> str | None:
  """The value of --config= (a file, then :variant), or None."""
  return next((a.split("=", 1)[1] for a in argv[1:] if a.startswith("--config=")), None)


def _config_file() -> str:
  """The `--config` value (file and argument), for the config check's hint."""
  return _config_spec(sys.argv) or "configs/EXPERIMENT.py"


def _override_problem(arg: str, config) -> str | None:
  """What is wrong with a `--config.a.b=v` override whose field does not exist (None: the field exists)."""
  flag = arg.split("=", 1)[0]
  node, path = config, ["config"]
  for key in flag.removeprefix("--config.").split("."):
    fields = list(node.keys()) if hasattr(node, "keys") else []
    if key not in fields:
      near = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
      hint = f"; did you mean {'.'.join(path)}.{near[0]}?" if near else f"; its fields: {', '.join(fields)}"
      return f"{flag}: {'.'.join(path)} has no field {key!r}{hint}"
    node, path = node[key], path + [key]
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, but a bad flag, config file or override is one line on stderr and exit 2, not a traceback."""
  try:
    rest = flags.FLAGS(argv)
    _CONFIG.value.keys()  # config_flags defers a file that fails to load to the first use: fail here instead
    return rest
  except Exception as e:  # pylint: disable=broad-except
    print(f"restreact.launch: {_flag_problem(argv, e)}", file=sys.stderr)
    sys.exit(2)


def _flag_problem(argv: list[str], error: Exception) -> str:
  """One line saying why `argv` did not parse."""
  spec = _config_spec(argv)
  if isinstance(error, flags.UnrecognizedFlagError) and not str(error.flagname).startswith("config."):
    return str(error).split("\n")[0]  # a mistyped launcher flag: absl names it and the nearest one
  if not spec:
    return "--config=FILE.py[:variant] is required, e.g. --config=configs/gen2_xs.py:demo"
  path = spec.partition(":")[0]
  if not os.path.isfile(path):
    return f"--config={path}: no such file (from {os.getcwd()})"
  try:
    config = _load_config(spec)
  except Exception as load_error:  # pylint: disable=broad-except
    return f"--config={spec} does not load: {type(load_error).__name__}: {load_error}".split("\n")[0]
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  if problem := next((p for a in overrides if (p := _override_problem(a, config))), None):
    return problem
  root = error  # a bad override value: the innermost error says what was wrong with it
  while root.__cause__ or root.__context__:
    root = root.__cause__ or root.__context__
  where = f"a bad value in {' '.join(overrides)}: " if overrides else ""
  return f"{where}{type(root).__name__}: {root}".split("\n")[0]


def _load_config(spec: str):
  """`get_config(variant)` of a `path.py[:variant]` config file, loaded as config_flags loads it."""
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("experiment_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


def _logging() -> None:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
  for name in QUIET_LOGGERS:
    logging.getLogger(name).setLevel(logging.WARNING)


class UsageError(Exception):
  """A command line that cannot run: the message is printed on one line (or a few) and the command exits 2."""


def checked_config(required: tuple[str, ...] = ()):
  """The --config flag's config for the commands that share the launcher's flags (`restreact.ask`,
  `restreact.evaluate`): the `required` flags set, the config check passed, logging set up; UsageError else."""
  from restreact.runner.config_check import ConfigError, check_config  # after flags: a fast --help

  for name in required:
    if not flags.FLAGS[name].value:
      raise UsageError(f"--{name} is required")
  config = _CONFIG.value
  try:
    check_config(config, config_file=_config_file())
  except ConfigError as e:
    raise UsageError(f"the config cannot run:\n{e}") from None
  _logging()
  return config


def run_command(main_fn) -> None:
  """Run a command's `main` with the launcher's flag parsing (one line and exit 2 for a bad flag)."""
  app.run(main_fn, flags_parser=_parse_flags)


def main(argv) -> int:
  if len(argv) > 1:
    print(f"restreact.launch: unexpected arguments {argv[1:]}: every setting is a flag (--config.a.b=value)",
          file=sys.stderr)
    return 2
  from restreact.runner.config_check import ConfigError, check_config, real_checkpoints  # after flags: fast --help

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
    print("restreact.launch: --workdir is required: every stage writes its outputs there (rerun to resume)",
          file=sys.stderr)
    return 2
  if "://" in _WORKDIR.value:
    print(f"restreact.launch: --workdir={_WORKDIR.value}: restreact writes through the local file system; mount "
          "the bucket on every host (gcsfuse: gcsfuse --implicit-dirs BUCKET /mnt/BUCKET) and pass the mount path, "
          "e.g. --workdir=/mnt/BUCKET/run", file=sys.stderr)
    return 2

  from restreact import distributed  # imports jax: only once the config is known to be runnable
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  import jax

  from restreact.multihost import WorkdirNotShared
  from restreact.runner.lock import WorkdirLocked
  from restreact.runner.pipeline import run_pipeline
  from restreact.runner.stages import StageMismatchError
  _logging()
  if jax.default_backend() == "cpu" and real_checkpoints(config) and not _ALLOW_CPU.value:
    print("restreact.launch: JAX found only CPU devices, and this config loads real checkpoints "
          f"({', '.join(real_checkpoints(config))}). Install the accelerator's jax (pip install -e \".[tpu]\" or "
          "\".[cuda]\"), check that the TPU/GPU is visible (python -c 'import jax; print(jax.devices())'), "
          "or pass --allow_cpu to run on CPU anyway.", file=sys.stderr)
    return 2
  logging.info("experiment %s, process %d of %d, %d devices, workdir %s", config.experiment, jax.process_index(),
               jax.process_count(), jax.device_count(), _WORKDIR.value)
  try:
    result = run_pipeline(config, os.path.expanduser(_WORKDIR.value))
  except (StageMismatchError, WorkdirNotShared, WorkdirLocked) as e:
    print(f"restreact.launch: {e}", file=sys.stderr)
    return 3
  if result.report:
    logging.info("report: %s and %s", *result.report)
  return 0


def run() -> None:
  """Console entry point."""
  flags.mark_flag_as_required("config")
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
