"""Pretraining of random-init demo models on the world's corpus (restreact/runner/pretrain.py): the stage trains on
passages only, the base model every later stage loads is the pretrained one, a rerun skips it, and it is
refused where it cannot apply."""

import jax
import numpy as np
import pytest
from flax import nnx

from restreact import experiment
from restreact.data import make_world
from restreact.models import make_mesh
from restreact.runner import pretrain
from restreact.runner.config_check import ConfigError, check_config
from restreact.runner.pipeline import Pipeline, spec_fingerprint
from restreact.runner.setup import world_options


def quick_config(steps: int = 2):
  config = experiment.get_config(2, "xs", "quick")
  config.progress = False
  config.pretrain.steps = steps
  return config


def weights(model) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def opened(config, workdir) -> Pipeline:
  pipeline = Pipeline(config, workdir, mesh=make_mesh((1, 1, 1), devices=jax.devices()[:1]))
  pipeline.open()
  return pipeline


def test_corpus_examples_are_passages_only():
  world = make_world(**world_options(experiment.get_config(2, "xs", "demo")))
  examples = pretrain.corpus_examples(world)
  assert len(examples) == len(world.passages) and all(e.prompt == "" for e in examples)
  questions = {q.question for q in world.questions()}
  assert not any(q in e.target for e in examples for q in questions)  # no question (nor agent step) is read
  tc = pretrain.pretrain_config(quick_config(300), "xs")
  assert (tc.total_steps, tc.lora_rank, tc.eval_every, tc.learning_rate) == (300, None, None, 3e-3)


def test_the_base_model_is_the_pretrained_one_and_a_rerun_skips_it(tmp_path):
  config = quick_config()
  first = opened(config, tmp_path / "run")
  for size in ("l", "xs"):  # the sizes the quick run uses
    assert (tmp_path / "run/pretrain" / f"train_{size}/result.json").is_file()
    random, base = weights(first.store.random(size)), weights(first.store.base(size))
    assert any(not np.array_equal(a, b) for a, b in zip(random, base))
    assert first.fingerprint(f"base:{size}") != spec_fingerprint(config, size)  # train stages depend on it
  assert not (tmp_path / "run/pretrain/train_s").exists()
  again = opened(config, tmp_path / "run")  # done earlier: loaded, the same weights and fingerprints
  assert again.fingerprint("base:l") == first.fingerprint("base:l")
  for a, b in zip(weights(again.store.load("base:l")), weights(first.store.base("l"))):
    np.testing.assert_array_equal(a, b)
  assert pretrain.finished(config, tmp_path / "run", "xs")[0] == first.store.pretrained["xs"][0]
  assert pretrain.finished(quick_config(0), tmp_path / "run", "xs") is None


def test_pretraining_is_checked():
  config = quick_config(-1)
  with pytest.raises(ConfigError, match=r"config.pretrain.steps=-1"):
    check_config(config)
  config = experiment.get_config(2, "xs")  # real checkpoints are never pretrained: fine, nothing to do
  config.pretrain.steps = 10
  config.models.l.checkpoint = ""
  with pytest.raises(ConfigError, match="pretrains random-init models on the synthetic world's corpus"):
    check_config(config)
