"""Tools around a run folder, on the `:quick` run (shared, read only): TensorBoard scalars of the pipeline,
the report's stage times and its flag for a generation that added no data, `restreact.ask` (one question, the
trajectory printed step by step) and `restreact.evaluate` (any model, any set, the eval stage's files)."""

import json
import os
import shutil
import struct
import subprocess
import sys
import types
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from pipeline_util import CONFIG, ROOT

from restreact import experiment
from restreact.runner.stages import StageMismatchError, StageResult

pytestmark = pytest.mark.slow
GENERATIONS = ("pilot", "gen1", "gen2")


def read_scalars(directory: Path) -> dict[str, dict[int, float]]:
  """tag -> step -> value of every event file in `directory` (TFRecord framing, tensorboardX's Event protos)."""
  from tensorboardX.proto import event_pb2
  out: dict[str, dict[int, float]] = {}
  for path in sorted(directory.glob("events.out.tfevents.*")):
    data, pos = path.read_bytes(), 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])  # length, its crc, the record, its crc
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, {})[event.step] = value.simple_value
  return out


def copy_run(run: Path, to: Path) -> Path:
  """The run folder without its weights (the report and metrics read only the records)."""
  skip = shutil.ignore_patterns("checkpoints", "best", "export", "tensorboard", "*.safetensors")
  shutil.copytree(run, to, ignore=skip)
  return to


def eval_results(workdir: Path) -> dict:
  """Stage results of the eval stages, as the pipeline hands them to the report."""
  return {f"{g}/{d.name}": StageResult(f"{g}/{d.name}", d, "", True, json.loads((d / "summary.json").read_text()))
          for g in GENERATIONS for d in sorted((workdir / g).glob("eval_*"))}


def test_quick_run_writes_rollout_and_eval_scalars_per_generation(quick_run):
  events = list((quick_run / "tensorboard").glob("events.out.tfevents.*"))
  assert len(events) == 1  # rewritten whole after each generation, never appended twice
  scalars = read_scalars(quick_run / "tensorboard")
  for tag in ("grow/trajectories_done", "grow/trajectories_failed", "grow/answered_rate", "grow/mean_model_steps",
              "grow/search_errors", "grow/tokens_per_s", "rank/steps", "mixture/examples",
              "mixture/new_trajectories_kept", "eval_xs/accuracy_mean", "eval_xs/accuracy_std",
              "eval_l/accuracy_mean", "seconds/train_l"):
    assert sorted(scalars[tag]) == [0, 1, 2], tag  # the generation is the step
  assert scalars["grow/tokens_per_s"][2] > 0 and scalars["grow/answered_rate"][0] == 1.0  # the scripted pilot
  for g, name in enumerate(GENERATIONS):
    summary = json.loads((quick_run / name / "eval_xs/summary.json").read_text())
    assert scalars["eval_xs/accuracy_mean"][g] == pytest.approx(summary["auto_eval"]["mean"])
    card = json.loads((quick_run / name / "mixture/card.json").read_text())
    assert scalars["mixture/examples"][g] == card["examples"]
    grown = sum(1 for line in (quick_run / name / "grow/trajectories.jsonl").read_text().splitlines() if line)
    assert scalars["grow/trajectories_done"][g] + scalars["grow/trajectories_failed"][g] == grown
  rankings = [json.loads(line) for line in (quick_run / "pilot/rank/rankings.jsonl").read_text().splitlines()]
  asked = [r for r in rankings if r["status"] in ("ok", "partial", "invalid")]
  assert scalars["rank/fallback_rate"][0] == pytest.approx(sum(r["fallback"] for r in asked) / len(asked))


def test_report_has_stage_times_and_flags_a_generation_without_new_data(quick_run, tmp_path):
  from restreact.runner.report import write_pipeline_report
  report = (quick_run / "report.md").read_text()
  times = report.split("## Stage times")[1]
  assert "| stage | grow | rank | mixture | train_xs | train_l | eval_xs | eval_l | total |" in times
  assert all(f"| {row} |" in times for row in ("setup", "pilot", "gen 1", "gen 2", "export", "all"))
  # the tiny random L answers nothing, so generations 1 and 2 keep none of what they grew: flagged, not shown as data
  assert "**gen 1 added no new data**: its mixture kept none of the 6 trajectories it grew" in report
  assert "| gen 1 | 6 | **0: no new data** |" in report and "| pilot | 6 | 6 (0) |" in report
  run = copy_run(quick_run, tmp_path / "run")
  path = run / "pilot/mixture/card.json"
  card = json.loads(path.read_text())
  own = next(s for s in card["sources"] if s["name"] == "pilot")
  own["trajectories_skipped"], own["trajectories_used"] = own["trajectories_used"], 0  # as if all were dropped
  path.write_text(json.dumps(card))
  md, _ = write_pipeline_report(run, eval_results(run), progress=False)
  text = md.read_text()
  assert "**pilot added no new data**: its mixture kept none of the 6 trajectories it grew" in text
  assert "| pilot | 6 | **0: no new data** |" in text and "## Stage times" in text


def test_wandb_mirrors_the_scalars_and_is_checked(quick_run, tmp_path, monkeypatch):
  from restreact.runner.config_check import ConfigError, check_config
  from restreact.runner.scalars import RunMetrics
  config = experiment.get_config(2, "xs", "quick")
  config.wandb = "restreact-test"
  if "wandb" not in sys.modules:
    with pytest.raises(ConfigError, match="config.wandb='restreact-test'.*wandb is not installed"):
      check_config(config)
  logged = []
  fake = types.ModuleType("wandb")
  fake.__spec__ = ModuleSpec("wandb", None)
  fake.init = lambda **kwargs: types.SimpleNamespace(log=lambda values, step: logged.append((step, values)),
                                                     finish=lambda: logged.append("finished"), kwargs=kwargs)
  monkeypatch.setitem(sys.modules, "wandb", fake)
  check_config(config)  # installed: fine
  run = copy_run(quick_run, tmp_path / "run")
  metrics = RunMetrics(run, config)
  for g in range(3):
    metrics.update(g)
  metrics.update(0, finished=False)  # a relaunch refused in the pilot keeps the generations finished before
  assert sorted(read_scalars(run / "tensorboard")["eval_xs/accuracy_mean"]) == [0, 1, 2]
  metrics.close()
  assert [step for step, _ in logged[:3]] == [0, 1, 2] and logged[3] == "finished"
  from restreact.runner.scalars import generation_scalars
  assert logged[2][1] == generation_scalars(run, 2) and "eval_xs/accuracy_mean" in logged[2][1]


@pytest.fixture(scope="module")
def opened(quick_run):
  """The quick run folder opened in this process on one device."""
  import jax
  from restreact.models import make_mesh
  from restreact.runner import folder
  config = experiment.get_config(2, "xs", "quick")
  config.progress = False
  return folder.open_run(config, quick_run, mesh=make_mesh((1, 1, 1), devices=jax.devices()[:1]))


def test_ask_a_base_model_and_missing_models(opened):
  from restreact.agent.records import ToolStep, read_records
  from restreact.agent.show import format_trajectory
  from restreact.runner import folder
  assert sorted(opened.store.trained) == ["gen1:l", "gen1:xs", "gen2:l", "gen2:xs", "pilot:l", "pilot:xs"]
  question = opened.env.eval_questions[0]
  with pytest.raises(ValueError, match="few-shot prompts do not fit config.engine.max_len=512.*--nofew_shot"):
    folder.ask(opened, "base:l", question.id)  # the demo's 512-token rows hold zero-shot prompts only
  record = folder.ask(opened, "base:l", question.id, seed=1, few_shot=False)  # an id brings the question
  assert record.question == question.question and record.reference == question.answer
  text = format_trajectory(record)
  assert text.startswith(f"Question: {question.question}\nPolicy: base:l\nReference answer: {question.answer}\n")
  assert "[1] decision: 2 candidates" in text and "mean logprob" in text and "Status: " in text
  # a whole trajectory (the scripted pilot's): the chosen candidate marked, each search with its results
  pilot = next(read_records(opened.workdir / "pilot/grow/trajectories.jsonl"))
  text = format_trajectory(pilot)
  assert "[1] decision: 2 candidates, 2 parsed, chose #0\n  -> #0 mean logprob" in text
  search = next(s for s in pilot.steps if isinstance(s, ToolStep))
  assert f"[2] search {search.query!r} (top 3, " in text and f"     [1] {search.results[0].link_text}: " in text
  assert text.endswith(f"Final answer: {pilot.final_answer}\nStatus: done; 8 model steps, 2 searches\n")
  with pytest.raises(ValueError, match=r"holds no trained gen2:s \(.*gen2/train_s never started\); its trained "
                     r"models: gen1:l, gen1:xs"):
    folder.ask(opened, "gen2:s", "Who?")
  with pytest.raises(ValueError, match="gen3:l"):
    folder.ask(opened, "gen3:l", "Who?")


def test_evaluate_any_model_on_any_set(opened, tmp_path):
  from restreact.runner import folder
  out = tmp_path / "pilot_xs_dev"
  summary = folder.evaluate(opened, "pilot:xs", "dev", out, runs=2)
  assert summary["runs"] == 2 and summary["questions"] == len(opened.env.dev) == 2
  assert sorted(p.name for p in out.iterdir()) == ["for_raters.csv", "per_question.md", "run00.grades.jsonl",
                                                  "run00.trajectories.jsonl", "run01.grades.jsonl",
                                                  "run01.trajectories.jsonl", "stage.json", "summary.json"]
  assert (out / "for_raters.csv").read_text().startswith("id,question,reference,answer,rating")
  assert folder.evaluate(opened, "pilot:xs", "dev", out, runs=2) == summary  # a rerun skips
  with pytest.raises(StageMismatchError, match="changed: runs"):
    folder.evaluate(opened, "pilot:xs", "dev", out, runs=1)
  with pytest.raises(ValueError, match="question set 'train'"):
    folder.evaluate(opened, "pilot:xs", "train", tmp_path / "x")


def _cli(module: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.run([sys.executable, "-m", module, CONFIG, f"--workdir={workdir}", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)


def test_ask_command_prints_the_trajectory_of_a_trained_model(quick_run, tmp_path):
  proc = _cli("restreact.ask", quick_run, "--model=gen2:xs", "--question=Where was the founder of Film 3 born?",
              "--answer=Paris", f"--out={tmp_path / 'asked.jsonl'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.splitlines()
  assert lines[:3] == ["Question: Where was the founder of Film 3 born?", "Policy: gen2:xs", "Reference answer: Paris"]
  assert any(line.startswith("[1] decision: 2 candidates") for line in lines)
  assert sum(line.lstrip().startswith(("#0 mean logprob", "-> #0 mean logprob")) for line in lines) == 1
  assert any(line.startswith("Status: ") for line in lines) and (tmp_path / "asked.jsonl").is_file()


def test_evaluate_command_writes_the_eval_files(quick_run, tmp_path):
  out = tmp_path / "gen2_xs_test"
  proc = _cli("restreact.evaluate", quick_run, "--model=gen2:xs", "--set=test", "--runs=1", f"--out={out}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "gen2:xs on test (3 questions, 1 runs, judge exact_match): accuracy" in proc.stdout
  assert {"summary.json", "per_question.md", "for_raters.csv", "run00.grades.jsonl"} <= {p.name for p in out.iterdir()}
