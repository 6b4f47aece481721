"""Evaluate any model on the config's dev or test questions, as the pipeline's eval stage does.

  python -m restreact.evaluate --config=configs/gen2_xs.py:demo --workdir=runs/demo --model=gen1:xs --set=test \
    --runs=5 --out=runs/demo/evaluate/gen1_xs_test

`--config` (with overrides) and `--workdir` are the launcher's: the run folder's setup and trained models are
reused (`--model` is `base:SIZE` or `pilot|gen1|gen2:SIZE`; the judge is `config.eval.judge`). `--out` gets what
an eval stage folder holds: runNN.trajectories.jsonl, runNN.grades.jsonl, summary.json, per_question.md and
for_raters.csv (default: WORKDIR/evaluate/<stage>_<size>_<set>). Rerunning resumes or skips; an --out made for
another model, set, run count or judge is refused (exit 3).
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from restreact import launch  # pylint: disable=unused-import  # defines --config and --workdir, parses them

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("model", None, "Model reference: base:SIZE or pilot|gen1|gen2:SIZE (SIZE: l, s, xs).")
  flags.DEFINE_enum("set", "test", ["dev", "test"], "Question set: config.data.dev or config.data.test.")
  flags.DEFINE_integer("runs", None, "Repeated runs (unset: config.eval.runs).")
  flags.DEFINE_string("out", None, "Output folder (default: WORKDIR/evaluate/<stage>_<size>_<set>).")
  flags.DEFINE_bool("few_shot", None, "Prompt with the few-shot exemplars (unset: base models few-shot, fine-tuned "
                    "ones zero-shot, as trained).")


def _fail(message: str, code: int = 2) -> int:
  print(f"restreact.evaluate: {message}", file=sys.stderr)
  return code


def main(argv) -> int:
  if len(argv) > 1:
    return _fail(f"unexpected arguments {argv[1:]}: every setting is a flag")
  try:
    config = launch.checked_config(("workdir", "model"))
  except launch.UsageError as e:
    return _fail(str(e))
  from restreact.runner import folder
  from restreact.runner.stages import StageMismatchError

  workdir = os.path.expanduser(FLAGS.workdir)
  out = FLAGS.out or os.path.join(workdir, "evaluate", f"{FLAGS.model.replace(':', '_')}_{FLAGS.set}")
  try:
    pipeline = folder.open_run(config, workdir)
    summary = folder.evaluate(pipeline, FLAGS.model, FLAGS.set, out, runs=FLAGS.runs, few_shot=FLAGS.few_shot)
  except StageMismatchError as e:
    return _fail(str(e), 3)
  except ValueError as e:
    return _fail(str(e))
  from restreact.eval import format_mean_std
  cell = lambda metric: format_mean_std(summary[metric]["mean"], summary[metric]["std"])
  print(f"{FLAGS.model} on {FLAGS.set} ({summary['questions']} questions, {summary['runs']} runs, judge "
        f"{summary['judge']}): accuracy {cell('auto_eval')}; exact match {cell('exact_match')}; F1 {cell('f1')} (%)")
  print(f"files in {out}: summary.json, per_question.md, for_raters.csv, run*.jsonl")
  print(json.dumps(summary, sort_keys=True))
  return 0


def run() -> None:
  """Console entry point."""
  _define_flags()
  launch.run_command(main)


if __name__ == "__main__":
  run()
