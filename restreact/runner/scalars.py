"""The run's own metrics, per generation (the step): TensorBoard event files, optionally mirrored to Weights & Biases.

For generation g, from its stage folders:
  grow/*     trajectories done and failed, answered rate, mean model steps, searches and failed searches,
             decoded tokens per second of the stage's wall time (when the sampler reports log-probs)
  rank/*     ranked steps, fallbacks and the fallback rate (of the steps a ranker was asked about)
  mixture/*  examples, unique examples, duplicates, trajectories used and dropped, this generation's kept ones
  eval_<size>/*  accuracy (the judge's) mean and std over runs, exact match, F1 and answered rate
  seconds/*  each finished stage's time
Everything is read from the files (a skipped stage's value is not in memory), and the event file is rewritten
whole (`WORKDIR/tensorboard/`), so a resumed or rerun launch leaves the same points, never duplicates.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path

from restreact.agent.records import ModelStep, ToolStep, read_records
from restreact.rest.sft_data import read_rankings
from restreact.runner.plan import GENERATIONS
from restreact.runner.stages import STAGE_FILE

log = logging.getLogger(__name__)
TENSORBOARD_DIR = "tensorboard"
EVENTS = "events.out.tfevents.*"


def _finished(directory: Path) -> dict | None:
  """The stage marker of a finished stage folder (None while it runs or before it started)."""
  path = directory / STAGE_FILE
  if not path.is_file():
    return None
  try:
    marker = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError:
    return None
  return marker if marker.get("status") == "done" else None


def _grow(directory: Path, seconds: float | None) -> dict[str, float]:
  records = list(read_records(directory / "trajectories.jsonl"))
  if not records:
    return {}
  tools = [s for r in records for s in r.steps if isinstance(s, ToolStep)]
  tokens = sum(len(c.logprobs) for r in records for s in r.steps if isinstance(s, ModelStep) for c in s.candidates)
  out = {"grow/trajectories_done": sum(r.status == "done" for r in records),
         "grow/trajectories_failed": sum(r.status != "done" for r in records),
         "grow/answered_rate": sum(bool((r.final_answer or "").strip()) for r in records) / len(records),
         "grow/mean_model_steps": sum(len(r.model_steps()) for r in records) / len(records),
         "grow/searches": len(tools), "grow/search_errors": sum(s.error is not None for s in tools)}
  if tokens and seconds:  # wall time, searches included; a resumed stage counts only its last part's seconds
    out["grow/tokens_per_s"] = tokens / seconds
  return out


def _rank(directory: Path) -> dict[str, float]:
  rankings = list(read_rankings(directory / "rankings.jsonl").values())
  asked = [r for r in rankings if r.status in ("ok", "partial", "invalid")]  # a ranker replied (or failed to)
  out = {"rank/steps": len(rankings), "rank/fallbacks": sum(r.fallback for r in rankings)}
  if asked:
    out["rank/fallback_rate"] = sum(r.fallback for r in asked) / len(asked)
  return out


def _mixture(directory: Path, generation: str) -> dict[str, float]:
  card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
  out = {"mixture/examples": card["examples"], "mixture/unique_examples": card["unique_examples"],
         "mixture/duplicates_removed": card["duplicates_removed"],
         "mixture/trajectories_used": card["trajectories_used"],
         "mixture/trajectories_dropped": card["trajectories_skipped"], "mixture/retargeted": card["retargeted"]}
  for source in card["sources"]:
    out[f"mixture/taken_{source['name']}"] = source["taken"]
    if source["name"] == generation:  # what this generation added: 0 means it brought no new data
      out["mixture/new_trajectories_kept"] = source["trajectories_used"]
  return out


def _eval(directory: Path, size: str) -> dict[str, float]:
  summary = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
  out = {f"eval_{size}/accuracy_mean": summary["auto_eval"]["mean"], f"eval_{size}/accuracy_std":
         summary["auto_eval"]["std"]}
  for metric in ("exact_match", "f1", "answered"):
    if metric in summary:
      out[f"eval_{size}/{metric}_mean"] = summary[metric]["mean"]
  return {k: v for k, v in out.items() if v == v}  # NaN (a std over one run) is no point


def generation_scalars(workdir: str | Path, g: int) -> dict[str, float]:
  """The scalars of generation g's finished stages (empty when none finished)."""
  name, root = GENERATIONS[g], Path(workdir) / GENERATIONS[g]
  out: dict[str, float] = {}
  if not root.is_dir():
    return out
  for directory in sorted(p for p in root.iterdir() if p.is_dir()):
    marker = _finished(directory)
    if marker is None:
      continue
    stage, seconds = directory.name, marker.get("seconds")
    if seconds is not None:
      out[f"seconds/{stage}"] = float(seconds)
    if stage == "grow":
      out.update(_grow(directory, seconds))
    elif stage == "rank":
      out.update(_rank(directory))
    elif stage == "mixture":
      out.update(_mixture(directory, name))
    elif stage.startswith("eval_"):
      out.update(_eval(directory, stage.removeprefix("eval_")))
  return {k: float(v) for k, v in out.items()}


def write_tensorboard(workdir: str | Path, scalars: dict[int, dict[str, float]]) -> Path:
  """Rewrite WORKDIR/tensorboard/ as one event file holding `scalars` (generation -> tag -> value)."""
  from tensorboardX import SummaryWriter  # the trainer's writer (restreact/train/metrics.py)

  directory = Path(workdir) / TENSORBOARD_DIR
  old = set(directory.glob(EVENTS))
  writer = SummaryWriter(str(directory), filename_suffix=f".{time.time_ns()}")  # never the name of an old file
  for g, values in sorted(scalars.items()):
    for tag, value in sorted(values.items()):
      writer.add_scalar(tag, value, g)
  writer.close()
  for path in old:  # after the new file is whole: a kill in between leaves duplicates, never nothing
    path.unlink(missing_ok=True)
  return directory


def check_wandb(project: str) -> None:
  """A clear error when `config.wandb` names a project and wandb is not installed."""
  if project and importlib.util.find_spec("wandb") is None:
    raise ValueError(f"config.wandb={project!r} mirrors the run's metrics to Weights & Biases, but wandb is not "
                     "installed: pip install wandb (and wandb login), or leave config.wandb empty")


class RunMetrics:
  """Writes the run's scalars after each generation; `config.wandb` (a project name) mirrors them to wandb.

  Each launch is one wandb run (named after the experiment, grouped by the work directory); it logs every
  generation the launch reaches, finished in it or earlier, with the generation as the step."""

  def __init__(self, workdir: str | Path, config):
    self.workdir = Path(workdir)
    self._wandb = None
    project = str(config.get("wandb", "") or "")
    if project:
      check_wandb(project)
      import wandb  # optional: only when asked for

      self._wandb = wandb.init(project=project, name=config.experiment, group=self.workdir.name,
                               dir=str(self.workdir), config=json.loads(config.to_json()))

  def update(self, upto: int, *, finished: bool = True) -> None:
    """Rewrite the event file from every generation's finished stages on disk (a launch that stops early, e.g.
    refused for changed inputs, keeps the later generations an earlier launch finished); mirror generation
    `upto` to wandb when it `finished`."""
    try:
      scalars = {g: generation_scalars(self.workdir, g) for g in range(len(GENERATIONS))}
      write_tensorboard(self.workdir, {g: v for g, v in scalars.items() if v})
    except Exception as e:  # pylint: disable=broad-except  # metrics never stop (or mask the error of) a run
      log.warning("TensorBoard metrics not written: %s: %s", type(e).__name__, e)
      return
    if self._wandb is not None and finished and scalars[upto]:
      self._wandb.log(scalars[upto], step=upto)

  def close(self) -> None:
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None
