"""How much of a demo's generation-to-generation change is the luck of one fine-tune: retrain a size of a
finished run on each generation's own mixture with other training seeds (the order the examples are seen in;
same base model, same data, same steps) and evaluate each retrain as the eval stage does.

  python benchmarks/retrain_seeds.py --config=configs/gen2_xs.py:demo --workdir=runs/demo --size=xs --seeds=1,2

The run's own model is seed 0 (its eval stage's result is read, not redone). Each retrain is a stage under
WORKDIR/retrain/<generation>_<size>_seed<N>/ (train/, eval/): rerunning resumes. Prints accuracy per seed and
the mean ± std over seeds per generation, and appends the table to BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
from pathlib import Path

from absl import flags

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from restreact import launch  # noqa: E402  # defines --config and --workdir

_SIZE = flags.DEFINE_enum("size", "xs", ["l", "s", "xs"], "The size to retrain.")
_SEEDS = flags.DEFINE_list("seeds", ["1", "2"], "Training seeds besides the run's own (config.seed).")
_GENERATIONS = flags.DEFINE_list("generations", ["pilot", "gen1", "gen2"], "Generations whose training to redo.")
_APPEND_TO = flags.DEFINE_string("append_to", None, "File to append the table to (default BENCHMARKS.md).")


def retrain(pipeline, name: str, size: str, seed: int) -> dict:
  """Generation `name`'s train stage for `size` with training seed `seed`, then its eval stage's runs."""
  from restreact.rest.mixture import read_mixture
  from restreact.runner.plan import GENERATIONS, ModelRef, train_config
  from restreact.runner.plan import agent_config
  from restreact.runner.stages import Stages
  from restreact.train import Example, load_trained, train

  c, g = pipeline.config, GENERATIONS.index(name)
  mixture = pipeline.stages.status(f"{name}/mixture")
  if mixture is None or mixture.get("status") != "done":
    raise SystemExit(f"{pipeline.workdir}/{name}/mixture is not finished: run the demo first")
  tc = dataclasses.replace(train_config(c, size), seed=seed, progress=bool(c.progress))
  stages = Stages(pipeline.workdir / "retrain" / f"{name}_{size}_seed{seed}")
  train_fields = {k: v for k, v in dataclasses.asdict(tc).items() if k != "progress"}

  def fit(d: Path) -> dict:
    mixture_file = pipeline.workdir / name / "mixture" / "mixture.jsonl"
    examples = [Example(e.prompt, e.target) for e in read_mixture(mixture_file)]
    result = train(pipeline.store.base(size), pipeline.env.tokenizer, examples, tc, d, mesh=pipeline.mesh,
                   chat=pipeline.store.chat(size))
    out = dict(checkpoint=str(result.checkpoint), final_loss=result.final_loss)
    (d / "result.json").write_text(json.dumps(out))  # what a rerun loads
    return out

  inputs = dict(mixture=mixture["fingerprint"], base=pipeline.fingerprint(f"base:{size}"), train=train_fields)
  trained = stages.run("train", inputs, fit, load=lambda d: json.loads((d / "result.json").read_text()))
  agent = agent_config(c, size, prompted=False)
  questions = pipeline.env.eval_questions

  def evaluate(d: Path) -> dict:  # the eval stage's work, on the retrained weights
    model = load_trained(pipeline.store.base(size), trained.value["checkpoint"], tc)
    return pipeline.eval_model(d, ModelRef(name, size), questions, int(c.eval.runs), g, model=model,
                               name=f"{name}:{size}@train-seed{seed}")

  return stages.run("eval", dict(model=trained.fingerprint, questions=[q.id for q in questions], runs=c.eval.runs,
                                 judge=pipeline.judge_fingerprint(), agent=dataclasses.asdict(agent)),
                    evaluate, load=lambda d: json.loads((d / "summary.json").read_text())).value


def main(argv) -> int:
  if len(argv) > 1:
    raise SystemExit(f"unexpected arguments {argv[1:]}")
  config = launch.checked_config(("workdir",))
  from report import append, markdown_table  # benchmarks/report.py: imports jax
  from restreact.runner import folder
  from restreact.runner.report import judge_title

  pipeline = folder.open_run(config, flags.FLAGS.workdir)
  size, seeds = _SIZE.value, [int(s) for s in _SEEDS.value]
  if config.seed in seeds:
    raise SystemExit(f"--seeds: {config.seed} is the run's own training (config.seed); give others")
  rows, judge = [], ""
  for name in _GENERATIONS.value:
    own = pipeline.workdir / name / f"eval_{size}" / "summary.json"
    if not own.is_file():
      raise SystemExit(f"{own} is missing: the run has not evaluated {name}:{size}")
    summaries = {config.seed: json.loads(own.read_text())}
    for seed in seeds:
      summaries[seed] = retrain(pipeline, name, size, seed)
    judge = summaries[config.seed]["judge"]
    means = [100 * s["auto_eval"]["mean"] for s in summaries.values()]
    rows.append([name, size.upper(), *(f"{m:.1f}" for m in means),
                 f"{statistics.mean(means):.1f} ± {statistics.stdev(means):.1f}"])
  header = ["generation", "size", *(f"train seed {s}{' (the run)' if s == config.seed else ''}"
                                    for s in [config.seed, *seeds]), "mean ± std over seeds"]
  notes = (f"{judge_title(judge)} on the test split, each cell the mean of {config.eval.runs} eval runs of one "
           f"fine-tune; the seeds change only the order of the training examples (same base model, mixture and "
           f"steps). Run: `{pipeline.workdir}`; retrains under its retrain/ folder.")
  append("Retraining the same data with other seeds (demo)", markdown_table(header, rows), notes,
         path=_APPEND_TO.value)
  return 0


if __name__ == "__main__":
  sys.path.insert(0, str(Path(__file__).resolve().parent))
  launch.run_command(main)
