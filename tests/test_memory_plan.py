"""benchmarks/memory_plan.py: the slice chooser on made-up byte counts, and a --quick run end to end."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.memory_plan import (  # noqa: E402
    GIB, SLICES, TPU_SLICES, TPU_TOPOLOGIES, USABLE, compiler_oom, fits, smallest_fit, total_bytes)

BY_NAME = {s.name: s for s in SLICES}


def test_slices_are_named_with_their_chips_and_ordered_smallest_first():
  assert [(BY_NAME[n].devices, BY_NAME[n].hbm // GIB) for n in ("v5e-8", "v5e-16", "v5p-8", "v5p-16")] == [
      (8, 16), (16, 16), (4, 95), (8, 95)]
  assert BY_NAME["1 x H100 80GB"].devices == 1 and BY_NAME["8 x H200 141GB"].devices == 8
  keys = [(s.devices, s.devices * s.hbm) for s in SLICES]
  assert keys == sorted(keys)


def test_total_counts_aliased_outputs_once():
  stats = dict(argument=10, output=7, alias=6, temp=100, generated_code=3)
  assert total_bytes(stats) == 10 + 7 - 6 + 100 + 3


def test_smallest_fit_on_made_up_byte_counts():
  v5e = BY_NAME["v5e-8"]
  assert fits(int(USABLE * v5e.hbm), v5e) and not fits(int(USABLE * v5e.hbm) + 1, v5e)
  # Too big for one H100 (72 GiB usable), fits a v5p-8's 4 chips.
  assert smallest_fit({1: 100 * GIB, 4: 30 * GIB, 8: 14 * GIB, 16: 7 * GIB}).name == "v5p-8"
  assert smallest_fit({1: 60 * GIB, 4: 30 * GIB}).name == "1 x H100 80GB"
  # On 8 devices: v5e-8 first (least HBM in all), then 8 x H100, v5p-16, 8 x H200.
  assert smallest_fit({1: 900 * GIB, 4: 200 * GIB, 8: 14 * GIB}).name == "v5e-8"
  assert smallest_fit({1: 900 * GIB, 4: 200 * GIB, 8: 15 * GIB}).name == "8 x H100 80GB"
  assert smallest_fit({1: 900 * GIB, 4: 200 * GIB, 8: 80 * GIB}).name == "v5p-16"
  assert smallest_fit({1: 900 * GIB, 4: 200 * GIB, 8: 100 * GIB}).name == "8 x H200 141GB"
  assert smallest_fit({8: 130 * GIB, 16: 14 * GIB}).name == "v5e-16"
  assert smallest_fit({1: 900 * GIB, 4: 900 * GIB, 8: 900 * GIB, 16: 900 * GIB}) is None
  assert smallest_fit({2: 1}) is None  # only slices whose device count was measured are considered


def test_tpu_topologies_match_their_slices_without_libtpu():
  # chips = product of the topology's dimensions; v5p-8 is 4 chips (8 TensorCores).
  chips = {n: eval("*".join(t.split(":")[1].split("x"))) for n, t in TPU_TOPOLOGIES.items()}  # noqa: S307
  assert chips == {s.name: s.devices for s in TPU_SLICES}
  assert [s.name for s in TPU_SLICES] == ["v5p-8", "v5e-8", "v5p-16", "v5e-16"]


def test_compiler_oom_reads_the_tpu_compilers_verdict():
  error = RuntimeError("RESOURCE_EXHAUSTED: XLA:TPU compile permanent error. Ran out of memory in memory space hbm. "
                       "Used 20.52G of 15.75G hbm. Exceeded hbm capacity by 4.77G.")
  assert compiler_oom(error) == "20.52G of 15.75G HBM"
  assert compiler_oom(ValueError("shapes do not match")) is None


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
  out = tmp_path / "bench.md"
  subprocess.run([sys.executable, str(ROOT / "benchmarks" / "memory_plan.py"), "--quick", "--no-check",
                  "--append-to", str(out)], check=True, cwd=ROOT, capture_output=True, timeout=900)
  text = out.read_text()
  rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| gemma3-tiny")]
  detail = [[c.strip() for c in r] for r in rows if len(r) == 10]
  summary = [[c.strip() for c in r] for r in rows if len(r) == 4]
  assert sorted((r[1], r[2]) for r in detail) == sorted((p, d) for p in ("full", "lora", "decode") for d in "12")
  for r in detail:
    total = float(r[8].strip("*"))
    assert total > 0 and float(r[6]) > 0  # temporaries and the total are positive
    assert r[9] == ("1 x H100 80GB" if r[2] == "1" else "-")  # no named slice has 2 devices
  assert [(r[1], r[2]) for r in summary] == [(p, "1 x H100 80GB") for p in ("full", "lora", "decode")]
  assert re.search(r"per local layer", text)
