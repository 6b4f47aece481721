"""Use a run folder outside the loop: answer one question, or evaluate any model on any question set.

`open_run` opens a work directory as the pipeline does (the setup stage, run or loaded, and the model store)
and registers every model its finished train stages hold, so a partly finished run serves the models it has.
`ask` and `evaluate` are what `python -m restreact.ask` and `python -m restreact.evaluate` run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path

from restreact.agent.records import Lineage, TrajectoryRecord
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import EngineSampler
from restreact.data import QuestionRecord
from restreact.runner import setup as run_setup
from restreact.runner.pipeline import Pipeline
from restreact.runner.plan import GENERATIONS, SIZES, ModelRef
from restreact.runner.plan import agent_config
from restreact.runner.stages import STAGE_FILE, Stages

QUESTION_SETS = ("dev", "test")


def _marker(directory: Path) -> dict | None:
  path = directory / STAGE_FILE
  return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def open_run(config, workdir: str | Path, *, mesh=None) -> Pipeline:
  """The pipeline of `workdir`, opened (setup, model store) with every finished train stage's model registered.

  A train stage whose base model differs from this config's (another preset, checkpoint or seed) is an error:
  its checkpoint would not load into the config's model, or would load into the wrong one."""
  pipeline = Pipeline(config, workdir, mesh=mesh)
  pipeline.open()
  for g, name in enumerate(GENERATIONS):
    for size in SIZES:
      directory = pipeline.workdir / name / f"train_{size}"
      marker = _marker(directory)
      if marker is None or marker.get("status") != "done":
        continue
      base = pipeline.fingerprint(f"base:{size}")  # the preset's, checkpoint's or pretraining stage's
      if marker["inputs"].get("base") != base:
        raise ValueError(f"{directory} was trained from another base model than this config's config.models.{size} "
                         f"(it recorded {marker['inputs'].get('base')}; the config gives {base}); pass the config "
                         "the run was launched with (runs.jsonl records it)")
      result = json.loads((directory / "result.json").read_text(encoding="utf-8"))
      pipeline.register_trained(f"{name}:{size}", directory / result["checkpoint"], marker["fingerprint"])
  return pipeline


def policy_ref(pipeline: Pipeline, model: str) -> ModelRef:
  """The model reference `model` as a policy this run folder can load; a clear error otherwise."""
  ref = ModelRef.parse(model)
  if ref.stage not in ("base", *GENERATIONS):  # e.g. a hosted model: no token log-probs to choose steps by
    raise ValueError(f"--model={model}: the agent's policy must be a local model, base:SIZE or "
                     f"pilot|gen1|gen2:SIZE (SIZE in {SIZES})")
  if ref.stage != "base" and str(ref) not in pipeline.store.trained:
    have = ", ".join(sorted(pipeline.store.trained)) or "none yet"
    directory = pipeline.workdir / ref.stage / f"train_{ref.size}"
    marker = _marker(directory)
    state = "never started" if marker is None else f"is {marker.get('status')}, not done"
    raise ValueError(f"--model={model}: {pipeline.workdir} holds no trained {ref} ({directory} {state}); its "
                     f"trained models: {have}; base:SIZE needs no training")
  return ref


def questions_of(pipeline: Pipeline, question_set: str) -> list[QuestionRecord]:
  """The config's dev or test questions (config.data.dev / config.data.test)."""
  if question_set not in QUESTION_SETS:
    raise ValueError(f"question set {question_set!r}: choose one of {QUESTION_SETS}")
  if question_set == "dev":
    return list(pipeline.env.dev)
  if pipeline.config.eval.set == "test":
    return list(pipeline.env.eval_questions)
  config = pipeline.config
  return run_setup.questions(config.data.test, "test", run_setup.world_options(config))


def _known(pipeline: Pipeline, question: str) -> QuestionRecord | None:
  """A question of the config's sets with this id or text (it brings its reference answer)."""
  env = pipeline.env
  for q in [*env.dev, *env.eval_questions, *env.train, *env.pilot]:
    if question.strip() in (q.id, q.question.strip()):
      return q
  return None


def _prompted(ref: ModelRef, few_shot: bool | None) -> bool:
  """Few-shot prompts for base models and zero-shot for fine-tuned ones (as trained), unless `few_shot` says."""
  return ref.stage == "base" if few_shot is None else bool(few_shot)


def _fit_hint(error: ValueError, config, prompted: bool) -> ValueError:
  """The engine's "does not fit" error, with what to change."""
  if "does not fit" not in str(error):
    return error
  more = "; or prompt zero-shot (--nofew_shot), whose preambles are shorter" if prompted else ""
  return ValueError(f"{error}: the {'few-shot' if prompted else 'zero-shot'} prompts do not fit "
                    f"config.engine.max_len={config.engine.max_len}: raise it (--config.engine.max_len=N, within the "
                    f"model's positions){more}")


def ask(pipeline: Pipeline, model: str, question: str, *, reference: str | None = None, seed: int = 0,
        num_candidates: int | None = None, temperature: float | None = None,
        few_shot: bool | None = None) -> TrajectoryRecord:
  """One trajectory of `model` (a model reference) on `question` (text, or the id of a config question), with the
  config's tool; the reference answer, when given or known, is kept in the record. `few_shot`: see `_prompted`."""
  if not question.strip():
    raise ValueError("--question is empty")
  ref = policy_ref(pipeline, model)
  known = _known(pipeline, question)
  if known is not None:
    question, reference = known.question, reference or known.answer
  qid = known.id if known is not None else "ask-" + hashlib.sha256(question.encode()).hexdigest()[:10]
  c, store = pipeline.config, pipeline.store
  prompted = _prompted(ref, few_shot)
  agent = agent_config(c, ref.size, prompted=prompted, num_candidates=num_candidates, temperature=temperature)
  try:
    sampler = EngineSampler(store.engine(store.load(ref), size=ref.size, seed=seed), agent, seed=seed)
  except ValueError as e:
    raise _fit_hint(e, c, prompted) from None
  with tempfile.TemporaryDirectory(prefix="restreact-ask-") as tmp:  # nothing is written to the run folder
    summary = rollout([Task(qid, question, reference)], sampler, pipeline.env.tool, agent,
                      Path(tmp) / "trajectory.jsonl", lineage=Lineage(str(ref), ref.generation or 0,
                                                                      agent.fingerprint()),
                      max_in_flight=1, tool_workers=1, progress=False, **pipeline.rollout_limits())
  return summary.records[0]


def evaluate(pipeline: Pipeline, model: str, question_set: str, out: str | Path, *, runs: int | None = None,
             few_shot: bool | None = None) -> dict:
  """R runs of `model` over the config's dev or test questions into `out`, graded by the config's judge: the eval
  stage's files (runNN.*.jsonl, summary.json, per_question.md, for_raters.csv). `out` is a stage folder of its
  own: a rerun resumes or skips it, and one made for another model, set or judge is refused."""
  ref = policy_ref(pipeline, model)
  runs = int(pipeline.config.eval.runs if runs is None else runs)
  if runs < 1:
    raise ValueError(f"--runs={runs}: at least 1 run")
  questions = questions_of(pipeline, question_set)
  if not questions:
    raise ValueError(f"the config's {question_set} set has no questions")
  out = Path(out).absolute()
  prompted = _prompted(ref, few_shot)
  agent = agent_config(pipeline.config, ref.size, prompted=prompted)
  # The eval stage's inputs, so an --out made for another model, set, judge or agent is refused.
  inputs = dict(model=str(ref), model_fp=pipeline.fingerprint(str(ref)), set=question_set,
                questions=[q.id for q in questions], runs=runs, judge=pipeline.judge_fingerprint(),
                agent=dataclasses.asdict(agent),
                seed=pipeline.config.seed)
  try:
    result = Stages(out.parent).run(
        out.name, inputs,
        lambda d: pipeline.eval_model(d, ref, questions, runs, ref.generation or 0, few_shot=prompted),
        load=lambda d: json.loads((d / "summary.json").read_text(encoding="utf-8")))
  except ValueError as e:
    raise _fit_hint(e, pipeline.config, prompted) from None
  return result.value
