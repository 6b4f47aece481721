"""benchmarks/demo_runs.py: its LABEL=RUN_DIR and A,B arguments, labels holding "=" and "," included."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.demo_runs import parse_pair, parse_runs  # noqa: E402


def test_a_label_may_hold_equals_signs_and_commas(tmp_path):
  runs = parse_runs([f"grow.samples=(1,4,4)={tmp_path}", f"shipped, seed 0={tmp_path}"])
  assert runs == {"grow.samples=(1,4,4)": tmp_path, "shipped, seed 0": tmp_path}
  assert parse_pair("grow.samples=(1,4,4),shipped, seed 0", runs) == ("grow.samples=(1,4,4)", "shipped, seed 0")


@pytest.mark.parametrize("spec, message", [("no-folder", "expected LABEL=RUN_DIR"), ("=/tmp", "expected LABEL"),
                                           ("a=/nonexistent/run", "is not a folder")])
def test_bad_run_arguments_are_named(spec, message):
  with pytest.raises(SystemExit, match=message):
    parse_runs([spec])


def test_a_label_given_twice_is_an_error(tmp_path):
  with pytest.raises(SystemExit, match="given twice"):
    parse_runs([f"a={tmp_path}", f"a={tmp_path}"])


def test_a_comparison_of_unknown_labels_names_the_known_ones(tmp_path):
  runs = parse_runs([f"feedback={tmp_path}", f"ablation={tmp_path}"])
  with pytest.raises(SystemExit, match="two of the labels: feedback, ablation"):
    parse_pair("feedback,perplexity", runs)
