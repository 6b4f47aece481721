"""The pipeline's judging and eval stages, a mixin of `pipeline.Pipeline` (it reads the pipeline's config, model
store, environment, stages and fingerprints): the run's judge, made once; each generation's eval stage per
size; and `eval_model`, the eval stage's work, which `restreact.evaluate` and `benchmarks/retrain_seeds.py`
share."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from restreact.agent.records import Lineage
from restreact.eval.evaluation import run_eval
from restreact.eval.judge import EXACT_MATCH_JUDGE, Judge
from restreact.runner.model_store import text_generator
from restreact.runner.plan import GENERATIONS, ModelRef, agent_config
from restreact.serve import client as remote


class Lazy:
  """Build a value on first use (a model that a skipped stage never needs is never loaded)."""

  def __init__(self, make):
    self._make, self._value = make, None

  def get(self):
    if self._value is None:
      self._value = self._make()
    return self._value

  def __call__(self, *args, **kwargs):
    return self.get()(*args, **kwargs)


class EvalStages:
  """Judge and eval methods of `restreact.runner.pipeline.Pipeline`."""

  def judge(self, g: int) -> Judge:
    """The run's judge, made once: its model is loaded on first use and kept for every later stage."""
    if self._judge_cache is None:
      c = self.config
      if c.eval.judge == EXACT_MATCH_JUDGE:
        self._judge_cache = Judge(EXACT_MATCH_JUDGE)
      elif remote.is_openai_ref(c.eval.judge):
        self._judge_cache = Judge(remote.identity(c.eval.judge), lambda: remote.remote_generator(
            c.eval.judge, c, max_new_tokens=8, seed=c.seed), few_shot=c.eval.judge_few_shot)
      else:
        ref = ModelRef.parse(c.eval.judge)
        self._judge_cache = Judge(str(ref), lambda: self._check_ready(ref, g, "judge") or text_generator(
            self.store.engine(self.store.load(ref), size=ref.size, seed=c.seed), max_new_tokens=8),
            few_shot=c.eval.judge_few_shot)
    return self._judge_cache

  def judge_fingerprint(self) -> str:
    """What identifies the run's judge: eval stages and `restreact.evaluate` record it."""
    judge = self.config.eval.judge
    if remote.is_openai_ref(judge):  # the model's name; where it is served may change between launches
      return remote.identity(judge)
    return judge if judge == EXACT_MATCH_JUDGE else f"{judge}@{self._fps.get(judge, '')}"

  def _eval(self, g: int, size: str) -> None:
    c, name = self.config, GENERATIONS[g]
    ref = ModelRef(name, size)
    agent = agent_config(c, size, prompted=False)
    questions = self.env.eval_questions
    inputs = dict(model=str(ref), model_fp=self._fps[str(ref)], questions=[q.id for q in questions],
                  runs=c.eval.runs, judge=self.judge_fingerprint(), agent=dataclasses.asdict(agent), seed=c.seed)
    self.stages.run(f"{name}/eval_{size}", inputs, lambda d: self.eval_model(d, ref, questions, int(c.eval.runs), g),
                    load=lambda d: json.loads((d / "summary.json").read_text()))

  def eval_model(self, d: Path, ref: ModelRef, questions, runs: int, g: int, *, few_shot: bool | None = None,
                 model=None, name: str | None = None) -> dict:
    """R runs of model `ref` over `questions` into folder `d`, graded by the run's judge: the eval stage's work,
    and `restreact.evaluate`'s (any model, any question set). `g` is the generation it is done for; `few_shot`
    unset prompts base models few-shot and fine-tuned ones zero-shot, as they were trained. `model`: weights of
    `ref`'s size to evaluate instead of `ref`'s own (a retrain), recorded in the trajectories as `name`."""
    c = self.config
    agent = agent_config(c, ref.size, prompted=ref.stage == "base" if few_shot is None else few_shot)
    judge = self.judge(g)
    engine = Lazy(lambda: self.store.engine(model if model is not None else self.store.load(ref), size=ref.size,
                                             seed=c.seed))
    return run_eval(d, questions, engine_for_run=lambda run: engine.get(), tool=self.env.tool, agent=agent,
                    judge=judge, runs=runs, seed=c.seed + 1, lineage=Lineage(name or str(ref), g, agent.fingerprint()),
                    max_in_flight=c.engine.max_in_flight, tool_workers=c.engine.tool_workers, progress=self.progress,
                    raters_csv=bool(c.eval.raters_csv), **self.rollout_limits())
