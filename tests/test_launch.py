"""The launcher's config handling: every experiment file loads, demo variants pass the check, real configs
without checkpoints stop at once with a message that names the option and suggests the demo."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from restreact.runner.config_check import ConfigError, check_config, models_needed

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs").glob("*_*.py") if not p.stem.startswith("_"))


def load(name: str, variant: str = ""):
  spec = importlib.util.spec_from_file_location(name, ROOT / "configs" / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # as config_flags loads it: no sys.path entry needed
  return module.get_config(variant)


def test_nine_experiments_with_the_papers_numbers():
  assert EXPERIMENTS == [f"{g}_{s}" for g in ("gen1", "gen2", "pilot") for s in ("l", "s", "xs")]
  for name in EXPERIMENTS:
    c = load(name)
    gen, size = name.split("_")
    assert (c.generation, c.size) == (("pilot", "gen1", "gen2").index(gen), size)
    assert c.agent.temperature == 0.5 and c.eval.runs == 10 and tuple(c.grow.samples) == (1, 1, 4)
    assert [d["limit"] for d in c.data.train] == [500] * 4  # HotpotQA train and three ELI5 sets
    assert (c.models.l.num_candidates, c.models.s.num_candidates, c.models.xs.num_candidates) == (4, 4, 16)
    with pytest.raises(ConfigError, match=r"config\.models\.l\.checkpoint is not set.*:demo"):
      check_config(c, config_file=f"configs/{name}.py")
    for variant in ("demo", "quick"):
      check_config(load(name, variant))  # runnable as is


def test_the_parameterized_config_is_the_nine_experiments():
  for name in EXPERIMENTS:
    gen, size = name.split("_")
    for variant in ("", "demo", "quick"):
      arg = f"gen={('pilot', 'gen1', 'gen2').index(gen)},size={size}" + (f",variant={variant}" if variant else "")
      assert load("rest", arg).to_dict() == load(name, variant).to_dict(), (name, variant)
  for bad, message in (("", "lacks gen, size"), ("gen=2", "lacks size"), ("gen=two,size=xs", "gen must be an integer"),
                       ("gen=2,size=xs,variant=gpu", "unknown variant 'gpu'"), ("gen=2,size=m", "unknown experiment"),
                       ("gen=2,size=xs,seed=1", "use gen=0|1|2")):
    with pytest.raises(ValueError, match=message):
      load("rest", bad)
  with pytest.raises(ConfigError, match=r"--config=configs/rest\.py:gen=2,size=xs,variant=demo"):
    check_config(load("rest", "gen=2,size=xs"), config_file="configs/rest.py:gen=2,size=xs")


def test_models_needed_follow_the_stage_graph():
  assert set(models_needed(load("gen2_xs"))) == {"l", "xs"}
  assert set(models_needed(load("pilot_s"))) == {"l", "s"}  # L grows the pilot data and judges


def test_bad_options_are_all_named():
  c = load("gen1_xs", "demo")
  c.data.dev["name"] = "no_such_set"
  c.rank.ranker = "gen7:l"
  c.eval.set = "train"
  c.models.xs.train = dict(lora_rank=None, not_a_field=1)
  c.mixture.unsupported = "discard"
  c.engine.rollout_deadline = -1.0
  c.sharding_rules = (("mpl", "tensor"), ("mlp", "model"))
  with pytest.raises(ConfigError) as e:
    check_config(c)
  text = str(e.value)
  for option in ("config.data.dev.name='no_such_set'", "config.rank.ranker", "config.eval.set",
                 "not_a_field", "config.mixture.unsupported must be one of 'keep', 'drop', 'cut', got 'discard'",
                 "config.engine.rollout_deadline=-1.0", "config.sharding_rules: 'mpl' is not a logical axis",
                 "config.sharding_rules: 'mlp' -> 'model': 'model' not a mesh axis"):
    assert option in text
  c = load("gen1_xs", "demo")
  c.rank.ranker = "base:l"  # a model ranker judges steps, never whole trajectories
  with pytest.raises(ConfigError, match="mixture.unsupported='cut' needs a verdict on whole trajectories"):
    check_config(c)
  c.mixture.unsupported = "keep"
  with pytest.raises(ConfigError, match="grow.follow='ranker' asks the ranker at every step"):
    check_config(c)  # a model ranker is not asked in the middle of a rollout
  c.grow.follow = "ranked"
  with pytest.raises(ConfigError, match="config.grow.follow='ranked': use 'perplexity'"):
    check_config(c)


def test_real_config_without_checkpoint_exits_at_once(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-m", "restreact.launch", "--config=configs/gen2_xs.py",
                         f"--workdir={tmp_path / 'run'}"], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2
  assert "config.models.l.checkpoint is not set" in proc.stderr
  assert "--config=configs/gen2_xs.py:demo" in proc.stderr
  assert not (tmp_path / "run").exists()  # nothing was started
  ok = subprocess.run([sys.executable, "-X", "importtime", "-m", "restreact.launch",
                       "--config=configs/gen2_xs.py:demo", "--check_only"], cwd=ROOT, env=env, capture_output=True,
                      text=True, timeout=120)
  assert ok.returncode == 0 and "config ok" in ok.stdout
  imported = {line.rsplit("|", 1)[1].strip() for line in ok.stderr.splitlines() if line.startswith("import time:")}
  heavy = sorted(m for m in imported if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "orbax"))
  assert len(imported) > 100 and not heavy, heavy[:5]  # checking a config never loads jax


def test_one_world_seed_changes_questions_corpus_and_splits_together():
  """`--config.world.seed=N` alone makes another world: every split's questions are answerable from its corpus."""
  from restreact.data.world import make_world
  from restreact.runner.setup import questions, world_options
  tests = {}
  for seed in (0, 1):
    c = load("gen2_xs", "demo")
    c.world.seed = seed
    corpus = " ".join(p.text for p in make_world(**world_options(c)).passages)
    for what in ("pilot", "dev", "test"):
      spec = c.data.pilot[0] if what == "pilot" else c.data[what]
      records = questions(spec, what, world_options(c))
      assert records and all(r.answer in corpus for r in records), (seed, what)
    tests[seed] = {r.question for r in questions(c.data.test, "test", world_options(c))}
  assert not tests[0] & tests[1]
  c = load("gen2_xs", "demo")
  with pytest.raises(ValueError, match=r"config\.data\.test\.options: seed .*config\.world"):
    questions(dict(c.data.test, options={"split": "test", "seed": 3}), "test", world_options(c))


def test_demo_pilot_data_fits_its_rows_and_keeps_every_unique_example(tmp_path, monkeypatch):
  """The demo up to its first mixture: every scripted pilot example fits the training row whole (no prompt loses
  its question to truncation) and every unique example is kept once."""
  import json

  from restreact.runner.pipeline import Pipeline, train_config

  class Stop(Exception):
    pass

  def stop(*args, **kwargs):
    raise Stop()

  monkeypatch.setattr(Pipeline, "_train", stop)
  c = load("gen2_xs", "demo")
  c.pretrain.steps = 0  # the data is the same either way; its stage would train for a minute
  with pytest.raises(Stop):
    Pipeline(c, tmp_path).run()
  card = json.loads((tmp_path / "pilot/mixture/card.json").read_text())
  assert card["truncated"] == {"l": 0, "xs": 0}
  assert 0 < card["max_tokens"] <= min(train_config(c, s).seq_len for s in ("l", "xs"))
  (source,) = card["sources"]
  assert card["examples"] == card["unique_examples"] == source["unique"] and source["repetition"] == 1.0
  assert source["trajectories_used"] == c.world.split_sizes.pilot
  assert card["fallbacks"] == 0  # one scripted candidate per step: nothing to rank, nothing falls back


def test_a_mixture_that_would_be_truncated_stops_before_training(tmp_path):
  """Rows too short for more than 1% of the examples: the run stops after the mixture, naming the option."""
  from restreact.runner.pipeline import Pipeline
  c = load("gen2_xs", "demo")
  c.train.update(seq_len=128, buckets=(128,))
  c.pretrain.steps = 0  # it stops before any training
  with pytest.raises(ValueError, match=r"pilot/mixture: \d+ of \d+ examples are longer than the 128-token rows of L"
                                       r".*config\.train\.seq_len"):
    Pipeline(c, tmp_path).run()
  assert not (tmp_path / "pilot" / "train_l").exists()
