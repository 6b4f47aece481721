"""notebooks/explore.ipynb runs top to bottom in a fresh kernel of this interpreter, with this checkout's code."""

import os
import re
from pathlib import Path

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "explore.ipynb"


def _kernel_manager(tmp_path: Path) -> KernelManager:
  """A `python3` kernel pinned to sys.executable, whatever kernelspecs the machine or the user has installed."""
  kernels = tmp_path / "kernels"
  write_kernel_spec(kernels / "python3")  # argv: [sys.executable, "-m", "ipykernel_launcher", ...]
  specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
  return KernelManager(kernel_name="python3", kernel_spec_manager=specs)


def _outputs(nb, output_type: str) -> list:
  return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == output_type]


@pytest.mark.slow
def test_explore_notebook_runs_and_shows_the_trajectory(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(params) == 1 and "CHECKPOINT = None" in params[0].source
  assert not any(c.outputs for c in nb.cells if c.cell_type == "code")  # committed with outputs cleared
  workdir = tmp_path / "work"
  params[0].source += f"\nWORKDIR = {str(workdir)!r}"

  # The kernel imports this checkout's restreact, not another install in the environment.
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
  env.pop("MPLBACKEND", None)
  client = NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=600, startup_timeout=120,
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute(env=env)

  errors = _outputs(nb, "error")
  assert not errors, "\n".join("\n".join(e.traceback) for e in errors)
  text = "".join(o.text for o in _outputs(nb, "stream") if o.name == "stdout")
  assert f"restreact imported from {ROOT / 'restreact'}\n" in text
  assert "restreact installed" not in text  # the install cell does nothing where restreact is importable
  assert f"work directory: {workdir}\n" in text
  assert text.count("step | kind    | type       | outcome") == 2  # both trajectories' step tables
  assert "by gemma3-tiny (random): failed" in text and "exact match: 0.0; F1: 0.00" in text  # noise: no answer
  assert "by world-solver: done" in text and "exact match: 1.0; F1: 1.00" in text
  assert "parse error:" in text and "tool call: search" in text and "[link_id=1]" in text
  assert "  -> #1 mean log-prob" in text  # the solver's candidate, between a weaker one and a broken one
  ranking = re.search(r"ranking status: (ok|partial|invalid)\nfell back to perplexity order: (True|False)\n", text)
  assert ranking and (ranking[1] != "ok") == (ranking[2] == "True")
  assert "unparsed or empty (ranked last): [2]" in text
  images = [o for o in _outputs(nb, "display_data") if "image/png" in o.data]
  assert len(images) == 1
  assert (workdir / "engine-gemma3-tiny-random.jsonl").exists() and (workdir / "scripted.jsonl").exists()
  assert (workdir / "logprobs.png").stat().st_size > 0


def test_install_cell_names_what_to_set_on_a_bare_runtime(tmp_path):
  """Where restreact cannot be imported (a fresh Colab runtime) and RESTREACT_SOURCE is unset, the install cell
  stops saying what to set, instead of failing later on an import."""
  import subprocess
  import sys
  nb = nbformat.read(NOTEBOOK, as_version=4)
  [cell] = [c for c in nb.cells if c.cell_type == "code" and "RESTREACT_SOURCE" in c.source]
  env = {k: v for k, v in os.environ.items() if k not in ("RESTREACT_SOURCE", "PYTHONPATH")}
  bare = subprocess.run([sys.executable, "-S", "-c", cell.source], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=60)  # -S: no site-packages, so no restreact
  assert bare.returncode == 1 and "set RESTREACT_SOURCE to a checkout or a pip address" in bare.stderr
