"""Stage bookkeeping: finished stages are skipped, interrupted ones rerun, changed inputs are refused."""

import json

import pytest

from restreact.runner.stages import STAGE_FILE, StageMismatchError, Stages, fingerprint


def test_skip_resume_and_refuse(tmp_path):
  calls = []

  def work(d):
    calls.append(d.name)
    (d / "out.txt").write_text("x")
    return 1

  stages = Stages(tmp_path)
  first = stages.run("gen1/grow", {"a": 1, "nested": {"b": 2}}, work)
  assert not first.skipped and first.value == 1 and calls == ["grow"]
  again = Stages(tmp_path).run("gen1/grow", {"nested": {"b": 2}, "a": 1}, work, load=lambda d: "loaded")
  assert again.skipped and again.value == "loaded" and calls == ["grow"] and again.fingerprint == first.fingerprint
  with pytest.raises(StageMismatchError, match=r"changed: nested\.b"):
    Stages(tmp_path).run("gen1/grow", {"a": 1, "nested": {"b": 3}}, work)

  def crash(d):
    raise KeyboardInterrupt

  with pytest.raises(KeyboardInterrupt):
    Stages(tmp_path).run("gen1/rank", {"x": 1}, crash)
  marker = json.loads((tmp_path / "gen1/rank" / STAGE_FILE).read_text())
  assert marker["status"] == "running" and marker["fingerprint"] == fingerprint({"x": 1})
  resumed = Stages(tmp_path).run("gen1/rank", {"x": 1}, work)
  assert not resumed.skipped and calls == ["grow", "rank"]
  marker = json.loads((tmp_path / "gen1/rank" / STAGE_FILE).read_text())
  assert marker["status"] == "done" and marker["resumed"] is True
  (tmp_path / "gen1/rank" / STAGE_FILE).write_text("{torn")
  with pytest.raises(StageMismatchError, match="unreadable stage marker"):
    Stages(tmp_path).run("gen1/rank", {"x": 1}, work)


def test_one_launch_per_workdir(tmp_path):
  import json
  import os
  import subprocess
  import sys

  from restreact.runner.lock import LOCK_FILE, WorkdirLocked, workdir_lock
  with workdir_lock(tmp_path) as path:
    assert path == tmp_path / LOCK_FILE and json.loads(path.read_text())["pid"] == os.getpid()
    with pytest.raises(WorkdirLocked, match=f"pid {os.getpid()} on .* delete"):
      with workdir_lock(tmp_path):
        pass
  assert not (tmp_path / LOCK_FILE).exists()  # released on exit
  # a lock left by a process that died (SIGKILL leaves it behind) is taken over
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
  (tmp_path / LOCK_FILE).write_text(json.dumps({"host": __import__("socket").gethostname(),
                                                "pid": int(dead.stdout), "started": "earlier"}))
  with workdir_lock(tmp_path) as path:
    assert json.loads(path.read_text())["pid"] == os.getpid()
  # one held from another host cannot be checked from here: refused, naming it
  (tmp_path / LOCK_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "earlier"}))
  with pytest.raises(WorkdirLocked, match="pid 1 on elsewhere"):
    with workdir_lock(tmp_path):
      pass
