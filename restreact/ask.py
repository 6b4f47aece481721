"""Answer one question with any model and print the trajectory step by step.

  python -m restreact.ask --config=configs/gen2_xs.py:demo --workdir=runs/demo --model=gen2:xs \
    --question="Where was the founder of Ardent Works born?"

`--config` and its overrides and `--workdir` are the launcher's (restreact/launch.py): the run folder's setup
(tokenizer, world, search tool) is reused, or made when the folder is new. `--model` is `base:SIZE` (the config's
base model, prompted few-shot) or `pilot|gen1|gen2:SIZE` (fine-tuned in that generation, prompted zero-shot; the
run folder must hold it, finished or not). The tool is the config's (`--config.tool.*`). `--question` may also be the
id of a question of the config's sets, which brings its reference answer. Nothing is written to the run folder.
"""

from __future__ import annotations

import sys

from absl import flags

from restreact import launch  # pylint: disable=unused-import  # defines --config and --workdir, parses them

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_string("model", None, "Model reference: base:SIZE or pilot|gen1|gen2:SIZE (SIZE: l, s, xs).")
  flags.DEFINE_string("question", None, "The question (or the id of a question of the config's sets).")
  flags.DEFINE_string("answer", None, "A reference answer to compare with (optional).")
  flags.DEFINE_integer("seed", 0, "Sampling seed.")
  flags.DEFINE_integer("num_candidates", 0, "Candidates per step (0: the config's for the model's size).")
  flags.DEFINE_float("temperature", None, "Sampling temperature (unset: config.agent.temperature).")
  flags.DEFINE_bool("show_inputs", False, "Also print each model step's input (the agent's state).")
  flags.DEFINE_bool("few_shot", None, "Prompt with the few-shot exemplars (unset: base models few-shot, fine-tuned "
                    "ones zero-shot, as trained); --nofew_shot when a base model's few-shot prompts do not fit.")
  flags.DEFINE_string("out", None, "Also append the trajectory record to this JSONL file.")


def _fail(message: str, code: int = 2) -> int:
  print(f"restreact.ask: {message}", file=sys.stderr)
  return code


def main(argv) -> int:
  if len(argv) > 1:
    return _fail(f"unexpected arguments {argv[1:]}: pass the question as --question=...")
  try:
    config = launch.checked_config(("workdir", "model", "question"))
  except launch.UsageError as e:
    return _fail(str(e))
  from restreact.agent.records import append_records
  from restreact.agent.show import format_trajectory
  from restreact.eval import exact_match
  from restreact.runner import folder
  from restreact.runner.stages import StageMismatchError

  try:
    pipeline = folder.open_run(config, FLAGS.workdir)
    record = folder.ask(pipeline, FLAGS.model, FLAGS.question, reference=FLAGS.answer, seed=FLAGS.seed,
                            num_candidates=FLAGS.num_candidates or None, temperature=FLAGS.temperature,
                            few_shot=FLAGS.few_shot)
  except StageMismatchError as e:
    return _fail(str(e), 3)
  except ValueError as e:
    return _fail(str(e))
  print(format_trajectory(record, show_inputs=FLAGS.show_inputs), end="")
  if record.reference is not None and record.final_answer is not None:
    print(f"Exact match with the reference: {'yes' if exact_match(record.final_answer, [record.reference]) else 'no'}")
  if FLAGS.out:
    append_records(FLAGS.out, [record])
    print(f"Record appended to {FLAGS.out}")
  return 0


def run() -> None:
  """Console entry point."""
  _define_flags()
  launch.run_command(main)


if __name__ == "__main__":
  run()
