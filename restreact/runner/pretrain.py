"""Pretraining of the demo's random-init models on the world's corpus, before any fine-tuning.

Real runs start from pretrained checkpoints: the model has read the world it is asked about, and every name it
must copy into a query or an answer is a string it has written before. A tiny model with random weights has
read nothing; fine-tuned on the pilot's trajectories alone it learns to write only the names those targets
hold, so no later generation can reach an entity the pilot never named (README, Results). `config.pretrain`
gives such a model a short next-token pass over every passage of the corpus (the same text the search tool
returns; no question, no answer, no agent step), a stand-in for pretraining. Sizes loaded from a checkpoint
are never pretrained. One stage per size, `pretrain/train_<size>/`, its folder holding the trainer's workdir and
result.json; the base model of that size is then the pretrained one for every stage that uses it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from restreact import multihost
from restreact.data import World
from restreact.files import write_atomic
from restreact.runner.model_store import ModelStore
from restreact.runner.plan import train_config
from restreact.runner.stages import StageResult, Stages
from restreact.train import Example, TrainConfig, train
from restreact.train.config import RESUMABLE_CHANGES

RESULT_FILE = "result.json"


def enabled(config, size: str) -> bool:
  """Whether size `size` is pretrained: `pretrain.steps` > 0 and a random-init preset, not a checkpoint."""
  p = config.get("pretrain")  # None in run records written before it existed
  return p is not None and int(p.steps) > 0 and not config.models[size].checkpoint


def pretrain_config(config, size: str) -> TrainConfig:
  """The size's fine-tuning settings (rows, batch, dtype) with the pretraining's steps and learning rate, full
  weights (no adapters) and no eval."""
  p, tc = config.pretrain, train_config(config, size)
  steps = int(p.steps)
  return tc.replace(total_steps=steps, learning_rate=float(p.learning_rate),
                    warmup_steps=min(int(p.warmup_steps), steps), lora_rank=None, eval_every=None,
                    save_every=min(tc.save_every, steps))


def corpus_examples(world: World) -> list[Example]:
  """One example per passage, its title then its text, with nothing to condition on: plain language modelling."""
  return [Example("", f"{p.title}\n{p.text}") for p in world.passages]


def run(config, stages: Stages, store: ModelStore, world: World | None, size: str, *, base_fp: str,
        setup_fp: str, mesh=None) -> StageResult:
  """The stage `pretrain/train_<size>`: trains the size's random-init model on the corpus (skipped when done) and
  points `store` at the result. `base_fp` identifies the random model, `setup_fp` the world."""
  if world is None:
    raise ValueError(f"config.pretrain.steps={config.pretrain.steps} pretrains {size.upper()} on the synthetic "
                     "world's corpus, but this run has no synthetic world; set config.pretrain.steps=0")
  tc = pretrain_config(config, size)
  what = {k: v for k, v in dataclasses.asdict(tc).items() if k not in RESUMABLE_CHANGES}  # not a progress bar
  inputs = dict(setup=setup_fp, base=base_fp, train=what)

  def fn(d: Path) -> dict:
    result = train(store.random(size), store.tokenizer, corpus_examples(world), tc, d / "train", mesh=mesh)
    if result.preempted:
      raise KeyboardInterrupt(f"pretraining of {size.upper()} was stopped; rerun to resume")
    out = dict(checkpoint=str(Path(result.checkpoint).relative_to(d)), final_loss=result.final_loss,
               steps=result.steps, examples=result.examples, truncated=result.truncated, dropped=result.dropped)
    multihost.from_writer(lambda: write_atomic(d / RESULT_FILE, json.dumps(out, indent=1, sort_keys=True) + "\n"))
    return out

  result = stages.run(f"pretrain/train_{size}", inputs, fn, load=lambda d: json.loads((d / RESULT_FILE).read_text()))
  store.pretrained[size] = (result.directory / result.value["checkpoint"], tc)
  return result


def finished(config, workdir: str | Path, size: str) -> tuple[Path, TrainConfig] | None:
  """(checkpoint, its TrainConfig) of a run folder's finished pretraining of `size`, for `ModelStore.pretrained`
  (None when the size is not pretrained). A loader outside the pipeline (`restreact.serve`) uses it."""
  if not enabled(config, size):
    return None
  directory = Path(workdir) / "pretrain" / f"train_{size}"
  if not (directory / RESULT_FILE).is_file():
    raise ValueError(f"{directory} has no {RESULT_FILE}: config.pretrain.steps={config.pretrain.steps} pretrains "
                     f"{size.upper()} before any fine-tuning, and that stage has not finished")
  result = json.loads((directory / RESULT_FILE).read_text(encoding="utf-8"))
  return directory / result["checkpoint"], pretrain_config(config, size)
