"""A bad setup stops before anything heavy, in one line naming the problem, with exit status 2: config typos,
unknown sizes, checkpoint folders that lack a part, a missing --workdir, and real checkpoints on a CPU-only jax."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hf_reference as ref
from restreact.models import train_tokenizer
from restreact.runner.config_check import checkpoint_problems

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, JAX_PLATFORMS="cpu")


def launch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "restreact.launch", *args], cwd=cwd, env=ENV, capture_output=True,
                        text=True, timeout=120)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
  """A complete tiny Gemma 3 folder: config.json, model.safetensors, tokenizer.model."""
  folder = tmp_path_factory.mktemp("gemma3")
  ref.causal_lm(ref.gemma3_config(layers=2)).save_pretrained(folder)
  train_tokenizer([f"line {i} of some text" for i in range(200)], folder / "tokenizer.model", vocab_size=300)
  return folder


def test_config_mistakes_are_one_line_and_exit_2(tmp_path):
  typo = launch("--config=configs/gen2_xs.py:demo", "--config.eval.rnus=3", "--check_only")
  assert typo.returncode == 2 and typo.stderr.count("\n") == 1, typo.stderr
  assert "--config.eval.rnus" in typo.stderr and "config.eval.runs" in typo.stderr
  sizes = launch("--config=configs/gen2_xs.py:demo", "--config.eval_sizes=xs,m", "--check_only")
  assert sizes.returncode == 2 and "config.eval_sizes" in sizes.stderr and "Traceback" not in sizes.stderr
  no_workdir = launch("--config=configs/gen2_xs.py:demo")
  assert no_workdir.returncode == 2 and no_workdir.stderr.count("\n") == 1 and "--workdir" in no_workdir.stderr
  bucket = launch(f"--config={ROOT / 'configs' / 'gen2_xs.py'}:demo", "--workdir=gs://bucket/run", cwd=tmp_path)
  assert bucket.returncode == 2 and "gcsfuse" in bucket.stderr and not (tmp_path / "gs:").exists()
  missing = launch(f"--config={tmp_path / 'nope.py'}", "--check_only")
  assert missing.returncode == 2 and "no such file" in missing.stderr and missing.stderr.count("\n") == 1


def test_configs_load_by_path_from_any_directory(tmp_path):
  ok = launch(f"--config={ROOT / 'configs' / 'gen2_xs.py'}:demo", "--check_only", cwd=tmp_path)
  assert ok.returncode == 0 and "config ok" in ok.stdout, ok.stderr


def test_a_checkpoint_folder_names_each_missing_part(checkpoint, tmp_path):
  assert checkpoint_problems(str(checkpoint)) == []
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text("{}")
  problems = " | ".join(checkpoint_problems(str(empty)))
  assert "model_type=None" in problems and "no *.safetensors" in problems and "no tokenizer.model" in problems
  sharded = tmp_path / "sharded"
  sharded.mkdir()
  for name in ("config.json", "tokenizer.model"):
    (sharded / name).write_bytes((checkpoint / name).read_bytes())
  (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-00001.safetensors"}}))
  assert checkpoint_problems(str(sharded)) == ["model.safetensors.index.json names missing weight files: "
                                               "model-00001.safetensors"]
  bad_arch = tmp_path / "llama"
  bad_arch.mkdir()
  (bad_arch / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
  assert "LlamaForCausalLM" in checkpoint_problems(str(bad_arch))[0]
  run = launch("--config=configs/gen2_xs.py", f"--config.models.l.checkpoint={empty}",
               f"--config.models.xs.checkpoint={checkpoint}", "--check_only")
  assert run.returncode == 2 and "config.models.l.checkpoint" in run.stderr and "tokenizer.model" in run.stderr
  assert "config.models.xs" not in run.stderr  # the complete folder passes


def test_real_checkpoints_on_a_cpu_only_jax_stop_naming_the_way_to_insist(checkpoint, tmp_path):
  eli5 = tmp_path / "eli5.jsonl"
  eli5.write_text('{"id": "q1", "question": "Why is the sky blue?", "answers": ["Scattering."]}\n')
  args = ("--config=configs/pilot_l.py", f"--config.models.l.checkpoint={checkpoint}", f"--workdir={tmp_path / 'w'}",
          *(f"--config.data.train[{i}].path={eli5}" for i in (1, 2, 3)))
  run = launch(*args)
  assert run.returncode == 2 and "only CPU devices" in run.stderr and "--allow_cpu" in run.stderr, run.stderr
  assert not (tmp_path / "w").exists()
