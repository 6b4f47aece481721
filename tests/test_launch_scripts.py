"""launch/tpu_pod.sh and launch/slurm_gpu.sbatch run with fake gcloud, scontrol, srun and python on PATH: the
command each worker runs, its arguments (quoting included) and the RESTREACT_* variables it gets."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--config=configs/gen2_xs.py:demo", "--workdir=gs://bucket/run 1", "--note=it's $HOME; `ls` \"x\"", ""]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _fake(bin_dir: Path, name: str, body: str) -> Path:
  path = bin_dir / name
  path.write_text("#!/usr/bin/env bash\n" + body)
  path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return path


def _read(path: Path) -> list[str]:
  return path.read_bytes().decode().split("\0")[:-1]


@pytest.fixture
def fakes(tmp_path):
  """A bin directory with a fake python that records argv, the working directory and RESTREACT_* per process."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  _fake(bin_dir, "fake-python", 'out="$FAKE_OUT/python.${RESTREACT_PROCESS_ID:-x}"\n'
                                'printf "%s\\0" "$PWD" "${RESTREACT_COORDINATOR:-}" "${RESTREACT_NUM_PROCESSES:-}" '
                                '"$@" > "$out"\n')
  out = tmp_path / "out"
  out.mkdir()
  env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_OUT": str(out), "HOME": str(tmp_path),
         "PYTHON": str(bin_dir / "fake-python")}
  return bin_dir, out, env


def test_tpu_pod_runs_the_quoted_command_on_all_workers(fakes, tmp_path):
  bin_dir, out, env = fakes
  _fake(bin_dir, "gcloud", 'printf "%s\\0" "$@" > "$FAKE_OUT/gcloud"\n')
  (tmp_path / "restreact").mkdir()  # the default REPO_DIR, ~/restreact
  run = subprocess.run([str(ROOT / "launch" / "tpu_pod.sh"), *ARGS], capture_output=True, text=True, timeout=30,
                       env={**env, "TPU_NAME": "pod-1", "ZONE": "us-west4-a", "PROJECT": "proj"})
  assert run.returncode == 0, run.stderr
  gcloud = _read(out / "gcloud")
  command = next(a for a in gcloud if a.startswith("--command="))[len("--command="):]
  assert [a for a in gcloud if a != "--command=" + command] == [
      "compute", "tpus", "tpu-vm", "ssh", "pod-1", "--zone=us-west4-a", "--worker=all", "--project=proj"]
  # What a worker's shell does with the command: cd into ~/restreact and run restreact.launch with ARGS intact.
  worker = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, env=env)
  assert worker.returncode == 0, worker.stderr
  cwd, _, _, *argv = _read(out / "python.x")
  assert cwd == str(tmp_path / "restreact") and argv == ["-m", "restreact.launch", *ARGS]


def test_tpu_pod_setup_and_missing_settings(fakes, tmp_path):
  _, _, env = fakes
  dry = subprocess.run([str(ROOT / "launch" / "tpu_pod.sh"), "--config=c.py"], capture_output=True, text=True,
                       env={**env, "TPU_NAME": "p", "ZONE": "z", "SETUP": "1", "DRY_RUN": "1", "REPO_DIR": "/r d"},
                       timeout=30)
  assert dry.returncode == 0 and "pip\\ install\\ -r\\ requirements.txt\\ -e\\ " in dry.stdout
  assert "-e\\ .\\\\\\[tpu\\\\\\]" in dry.stdout  # the TPU build of jax, quoted for two shells
  assert "cd\\ /r\\\\\\ d" in dry.stdout  # the space survives two shells: this one and the worker's
  missing = subprocess.run([str(ROOT / "launch" / "tpu_pod.sh"), "--config=c.py"], capture_output=True, text=True,
                           env={**env, "TPU_NAME": "p"}, timeout=30)
  assert missing.returncode == 2 and "set TPU_NAME and ZONE" in missing.stderr and "usage:" in missing.stderr


def test_slurm_starts_one_process_per_task_with_the_coordinator(fakes, tmp_path):
  bin_dir, out, env = fakes
  _fake(bin_dir, "scontrol", '[[ "$*" == "show hostnames gpu-[07-08]" ]] && printf "gpu-07\\ngpu-08\\n"\n')
  # srun: record its flags, then run the command once per task with that task's SLURM_PROCID.
  _fake(bin_dir, "srun", 'flags=(); while [[ "$1" == --* ]]; do flags+=("$1"); shift; done\n'
                         'printf "%s\\0" "${flags[@]}" > "$FAKE_OUT/srun"\n'
                         'for ((i = 0; i < SLURM_NTASKS; i++)); do SLURM_PROCID=$i "$@" || exit 1; done\n')
  repo = tmp_path / "repo"
  repo.mkdir()
  slurm = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu-[07-08]", "SLURM_NTASKS": "2",
           "SLURM_JOB_NUM_NODES": "2", "SLURM_SUBMIT_DIR": str(repo)}
  run = subprocess.run(["bash", str(ROOT / "launch" / "slurm_gpu.sbatch"), *ARGS], capture_output=True, text=True,
                       env={**env, **slurm}, timeout=30)
  assert run.returncode == 0, run.stderr
  assert _read(out / "srun") == ["--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
  for i in range(2):
    cwd, coordinator, count, *argv = _read(out / f"python.{i}")
    assert (cwd, coordinator, count) == (str(repo), "gpu-07:24242", "2")
    assert argv == ["-m", "restreact.launch", *ARGS]
  assert not (out / "python.x").exists()  # no SETUP: no install
  setup = subprocess.run(["bash", str(ROOT / "launch" / "slurm_gpu.sbatch"), *ARGS], capture_output=True,
                         text=True, env={**env, **slurm, "SETUP": "1"}, timeout=30)
  assert setup.returncode == 0, setup.stderr
  assert _read(out / "python.x")[3:] == ["-m", "pip", "install", "-r", "requirements.txt", "-e", ".[cuda]"]
  text = (ROOT / "launch" / "slurm_gpu.sbatch").read_text()
  assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --gpus-per-node=" in text


def test_slurm_outside_an_allocation_prints_usage():
  run = subprocess.run(["bash", str(ROOT / "launch" / "slurm_gpu.sbatch")], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"]}, timeout=30)
  assert run.returncode == 2 and "sbatch" in run.stderr


def test_demo_script_takes_a_workdir_or_flags_first():
  def dry(*args):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), *args], env={**os.environ, "DRY_RUN": "1"},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout
  assert "--workdir=runs/demo --config.eval.runs=5" in dry("--config.eval.runs=5")  # a flag is not a workdir
  assert "--workdir=/tmp/x --config.seed=1" in dry("/tmp/x", "--config.seed=1")
  assert ".venv-demo/bin/python" in dry()  # its own environment: CI's `venv --clear .venv` leaves it alone
