"""The `quick` ReST loop up to generation 1 as two JAX processes on this machine (one CPU device each,
coordinator on 127.0.0.1): every kind of stage (the pilot's, then a model growing, ranking, training and
evaluating) runs in both, in step, and the work directory holds each trajectory, ranking and grade once,
written by process 0 alone. A rerun skips every stage in both; processes that do not share the work
directory are stopped with a message saying so."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from restreact.agent.records import read_records
from restreact.rest import read_rankings
from restreact.runner.stages import STAGE_FILE
from test_multiprocess import _free_port
from test_pipeline import CONFIG, outputs

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 1200
STAGES = 16  # setup, 2 generations x 7 stages, export
GENERATIONS = ("pilot", "gen1")
pytestmark = pytest.mark.slow


def launch_two(workdirs: tuple[Path, Path], logs: Path) -> list[tuple[int, str]]:
  """Both processes of one run, to the end; (exit code, log) of each."""
  env = {k: v for k, v in os.environ.items() if not k.startswith("RESTREACT_")}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  coordinator = f"127.0.0.1:{_free_port()}"
  logs.mkdir(parents=True, exist_ok=True)
  procs = []
  for i, workdir in enumerate(workdirs):
    log = open(logs / f"process{i}.log", "w")
    procs.append((subprocess.Popen(
        [sys.executable, "-m", "restreact.launch", CONFIG, f"--workdir={workdir}", "--config.progress=False",
         "--config.generation=1",
         f"--coordinator={coordinator}", "--num_processes=2", f"--process_id={i}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True), log))
  out = []
  try:
    for i, (proc, log) in enumerate(procs):
      out.append((proc.wait(timeout=TIMEOUT_S), (logs / f"process{i}.log").read_text()))
  finally:
    for proc, log in procs:
      if proc.poll() is None:
        proc.kill()
        proc.wait()
      log.close()
  return out


_ERROR_LINE = re.compile(r"Traceback|Error|error:|Fatal|^[EF]\d{4} ")


def assert_both_succeeded(results: list[tuple[int, str]]) -> None:
  """Both exit codes 0; otherwise each process's code, its first error lines and its log's tail (the process
  that fails first is often not the one whose log ends in a crash: the coordinator aborts the other)."""
  if all(code == 0 for code, _ in results):
    return
  report = []
  for i, (code, log) in enumerate(results):
    errors = [line for line in log.splitlines() if _ERROR_LINE.search(line)][:15]
    report.append(f"process {i} exited {code}; first error lines:\n" + "\n".join(errors) +
                  f"\n--- its log's last 2500 characters:\n{log[-2500:]}")
  raise AssertionError("\n\n".join(report))


def _keys(path: Path) -> list[str]:
  return [r.key for r in read_records(path)]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
  root = tmp_path_factory.mktemp("two")
  assert_both_succeeded(launch_two((root / "run", root / "run"), root / "logs"))
  return root / "run"


def test_each_trajectory_is_written_once(run_dir):
  w = run_dir
  assert not (w / "gen2").exists()
  for g in GENERATIONS:
    stage = json.loads((w / g / "grow" / STAGE_FILE).read_text())
    assert stage["status"] == "done"
    grown = _keys(w / g / "grow/trajectories.jsonl")
    assert sorted(grown) == sorted(stage["inputs"]["questions"])  # each task once, none missing
    steps = {(r.key, i) for r in read_records(w / g / "grow/trajectories.jsonl") for i, _ in
             enumerate(r.model_steps())}
    assert set(read_rankings(w / g / "rank/rankings.jsonl")) == steps  # each model step ranked once
    for size in ("l", "xs"):
      questions = json.loads((w / g / f"eval_{size}" / STAGE_FILE).read_text())["inputs"]["questions"]
      for run in ("run00", "run01"):
        assert sorted(_keys(w / g / f"eval_{size}/{run}.trajectories.jsonl")) == sorted(f"{q}#0" for q in questions)
        grades = (w / g / f"eval_{size}/{run}.grades.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["question_id"] for line in grades) == sorted(questions)
      dev = json.loads((w / g / f"train_{size}" / STAGE_FILE).read_text())["inputs"]["dev"]
      assert sorted(_keys(w / g / f"train_{size}/dev/run00.trajectories.jsonl")) == sorted(f"{q}#0" for q in dev)
  assert not list(w.rglob("*.tmp")) and not list(w.rglob("*.partial"))  # no write left half-done
  assert (w / "report.md").is_file() and (w / "export/xs/config.json").is_file()


def test_rerun_in_two_processes_skips_every_stage(run_dir, tmp_path):
  before = outputs(run_dir)
  results = launch_two((run_dir, run_dir), tmp_path)
  assert_both_succeeded(results)
  for _, log in results:
    assert log.count("done earlier, skipped") == STAGES and "starting" not in log
  assert outputs(run_dir) == before


def test_processes_that_do_not_share_the_workdir_are_stopped(tmp_path):
  results = launch_two((tmp_path / "a", tmp_path / "b"), tmp_path / "logs")
  assert [code for code, _ in results] == [3, 3]
  assert "is not one folder for every process" in results[1][1]
