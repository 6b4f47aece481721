"""The ReST generation loop: grow -> rank -> SFT mixture -> improve L, S, XS -> eval, per generation.

Generation 0 is the pilot: its trajectories come from the prompted base L (or, in the CPU demo, from
the synthetic world's scripted solver, standing in for the paper's hand-written exemplars), and the
models fine-tuned on them are the report's "pilot" row. Generation g >= 1 grows with the L model that
generation g - 1 fine-tuned. Every size trains from its base checkpoint on the same mixture, so S and
XS are distilled from L's trajectories. Checkpoints are chosen by dev auto-eval.

Layout under the work directory (each folder is a stage, see `stages.py`):
  setup/                        tokenizer (demo), world corpus and BM25 index, search cache
  pilot|gen1|gen2/grow/         trajectories.jsonl
                 /rank/         rankings.jsonl (+ parts/ while it runs)
                 /mixture/      mixture.jsonl, card.json, card.md
                 /train_<size>/ the trainer's workdir (checkpoints, best/, metrics.jsonl) and result.json
                 /eval_<size>/  runNN.trajectories.jsonl, runNN.grades.jsonl, summary.json, per_question.md
  export/<size>/                the delivered model (config.size, last generation) as a Hugging Face folder
  report.md, report.png         Table 1 (rows pilot / gen 1 / gen 2, columns XS / S / L), data and stage times
  tensorboard/                  the run's scalars per generation (`scalars.py`)
  LOCK                          while a launch runs: its host and pid (a second launch is refused)
  runs.jsonl                    per launch: config, git commit, packages, devices; then outcome and stage times
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
from pathlib import Path

from restreact import multihost
from restreact.agent import AgentConfig
from restreact.agent.records import Lineage, TrajectoryRecord, read_records
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import EngineSampler, ScriptedSampler
from restreact.data import WorldSolver
from restreact.eval.evaluation import dev_score
from restreact.eval.judge import Judge
from restreact.files import write_atomic
from restreact.models import make_mesh
from restreact.models.export import export_hf
from restreact.models.sharding import axis_rules
from restreact.rest import stand_in_ranker
from restreact.rest.mixture import CUT_RULE, MixtureSource, build_mixture, read_mixture
from restreact.rest.rank import PERPLEXITY, follow_ranker, rank_steps, step_rng
from restreact.rest.sft_data import StepRanking, read_rankings, write_rankings
from restreact.runner import setup as run_setup
from restreact.runner import launch_record, pretrain, scalars
from restreact.runner.eval_stages import EvalStages, Lazy
from restreact.runner.lock import workdir_lock
from restreact.runner.model_store import ModelStore, text_generator
from restreact.runner.plan import (GENERATIONS, SIZES, ModelRef, agent_config, cut_test, train_config, trained_sizes,
                                  trajectory_verdict)
from restreact.runner.report import write_pipeline_report
from restreact.runner.stages import Stages
from restreact.serve import client as remote
from restreact.serve.sampler import RemoteSampler
from restreact.train import Example, train
from restreact.train.data import row_tokens as train_row_tokens

log = logging.getLogger(__name__)


@dataclasses.dataclass
class PipelineResult:
  """What ran: every stage's result, and the report's paths."""

  stages: dict
  report: tuple[Path, Path] | None


class Pipeline(EvalStages):
  """One ReST experiment over a work directory; `run()` runs (or resumes) every stage it needs."""

  def __init__(self, config, workdir: str | Path, *, mesh=None):
    self.config, self.workdir = config, Path(workdir).absolute()
    self.mesh = mesh if mesh is not None else make_mesh(tuple(config.mesh_shape))
    self.stages = Stages(self.workdir)
    self.progress = bool(config.progress) and multihost.is_writer()
    self._judge_cache: Judge | None = None

  # ---------------------------------------------------------------------------------------------- driver

  def run(self) -> PipelineResult:
    """Every stage of every generation up to config.generation, then the report; one launch per work directory."""
    multihost.check_shared(self.workdir)
    with contextlib.ExitStack() as held:
      multihost.from_writer(lambda: held.enter_context(workdir_lock(self.workdir)) and None)
      held.enter_context(axis_rules(tuple(self.config.sharding_rules)))
      started = multihost.from_writer(lambda: launch_record.record_start(self.workdir, self.config))
      outcome = "interrupted"
      try:
        result = self._run()
        outcome = "done"
        return result
      except Exception as e:
        outcome = f"failed: {type(e).__name__}: {str(e)[:500]}"
        raise
      finally:
        if multihost.is_writer():
          with contextlib.suppress(OSError):
            launch_record.record_end(self.workdir, started, self.stages.results, outcome)

  def open(self) -> None:
    """The setup stage (run, or loaded when done), the model store and the base models' fingerprints: what every
    later stage needs. `restreact.ask` and `restreact.evaluate` open a run folder this way."""
    c = self.config
    setup = run_setup.setup_stage(c, self.stages)
    self.setup_fp, self.env = setup.fingerprint, setup.value
    self.store = ModelStore(c, self.env.tokenizer, mesh=self.mesh)
    self._fps: dict[str, str] = {}  # model reference -> the fingerprint of the stage that made it
    for size in SIZES:
      self._fps[f"base:{size}"] = spec_fingerprint(c, size, self.store.chat(size))
    from restreact.runner.config_check import models_needed  # it imports this module
    for size in (s for s in SIZES if s in models_needed(c)):
      if pretrain.enabled(c, size):  # the base model is then the pretrained one
        self._fps[f"base:{size}"] = pretrain.run(c, self.stages, self.store, self.env.world, size, mesh=self.mesh,
                                                 base_fp=self._fps[f"base:{size}"], setup_fp=self.setup_fp).fingerprint

  def fingerprint(self, ref: str) -> str:
    """What identifies model `ref` ("base:l", "gen1:xs"): the fingerprint of the stage that made it ("" if none)."""
    return self._fps.get(str(ref), "")

  def register_trained(self, ref: str, checkpoint: Path, fingerprint: str) -> None:
    """Make a finished train stage's model (its checkpoint and stage fingerprint) loadable as `ref`."""
    self.store.trained[str(ref)] = Path(checkpoint)
    self._fps[str(ref)] = fingerprint

  def _run(self) -> PipelineResult:
    c = self.config
    self.open()
    metrics = scalars.RunMetrics(self.workdir, c) if multihost.is_writer() else None
    try:
      for g in range(c.generation + 1):
        finished = False
        try:
          self._generation(g)
          finished = True
        finally:  # TensorBoard gets an interrupted generation's finished stages too
          if metrics is not None:
            metrics.update(g, finished=finished)
    finally:
      if metrics is not None:
        metrics.close()
    self._export()
    report = write_pipeline_report(self.workdir, self.stages.results, progress=self.progress) \
        if multihost.is_writer() else None
    return PipelineResult(dict(self.stages.results), report)

  def _generation(self, g: int) -> None:
    c, name = self.config, GENERATIONS[g]
    grow = self._grow(g)
    self._rank(g, grow)  # its result is read back below, with the earlier generations'
    weights = tuple(c.mixture.weights)
    sources, fps = [], []
    for prev in range(g + 1):
      gr, rk = self.stages.results[f"{GENERATIONS[prev]}/grow"], self.stages.results[f"{GENERATIONS[prev]}/rank"]
      sources.append(MixtureSource(GENERATIONS[prev], gr.directory / "trajectories.jsonl",
                                   rk.directory / "rankings.jsonl", float(weights[prev]), prev,
                                   bool(c.mixture.include_failed), bool(c.mixture.drop_ungrounded),
                                   trajectory_verdict(c) if prev else None, cut_test(c) if prev else None))
      fps += [gr.fingerprint, rk.fingerprint]
    seq_lens = {size: train_config(c, size).seq_len for size in trained_sizes(c, g)}
    tokenizer = self.env.tokenizer
    chat = any(self.store.chat(size) for size in seq_lens)  # chat rows are the longer ones: count those
    row_tokens = lambda e: train_row_tokens(tokenizer, Example(e.prompt, e.target), chat=chat)
    inputs = dict(sources=fps, weights=weights[:g + 1], size=c.mixture.size, seed=c.seed,
                  include_failed=c.mixture.include_failed, drop_ungrounded=c.mixture.drop_ungrounded,
                  seq_lens=seq_lens)
    if chat:  # the card counts chat rows
      inputs["chat"] = True
    if g > 0:  # the pilot is scripted: the ranker does not judge it
      inputs["unsupported"] = c.mixture.unsupported if trajectory_verdict(c) else "keep"
      if cut_test(c):  # which corrections count (a mixture cut by an earlier rule is not reused)
        inputs["cut"] = CUT_RULE
    mixture = self.stages.run(
        f"{name}/mixture", inputs, lambda d: dataclasses.asdict(build_mixture(
            sources, d / "mixture.jsonl", seed=c.seed, size=c.mixture.size or None, token_count=row_tokens,
            seq_lens=seq_lens)), load=lambda d: json.loads((d / "card.json").read_text()), writer_only=True)
    self._check_truncation(g, mixture.value)
    for size in trained_sizes(c, g):
      self._train(g, size, mixture)
    for size in c.eval_sizes:
      self._eval(g, size)

  # ---------------------------------------------------------------------------------------------- grow

  def _policy(self, g: int) -> tuple[str, object, AgentConfig]:
    """(name, sampler factory, agent config) of the model that grows generation g."""
    c = self.config
    if g == 0 and c.pilot.source == "scripted":
      return "scripted", lambda seed: ScriptedSampler(WorldSolver(self.env.world)), \
          agent_config(c, "l", prompted=False, num_candidates=int(c.pilot.num_candidates))
    if g == 0 and remote.is_openai_ref(c.pilot.source):  # the prompted L, served elsewhere
      agent = agent_config(c, "l", prompted=True, num_candidates=c.grow.num_candidates or None,
                           temperature=c.grow.temperature)
      client = remote.OpenAIClient(c.pilot.source, remote.ClientSettings.from_config(c))
      return remote.identity(c.pilot.source), lambda seed: client.check() or RemoteSampler(
          client, agent, seed=seed, chat=bool(c.models.l.chat)), agent
    ref = ModelRef("base", "l") if g == 0 else ModelRef(GENERATIONS[g - 1], "l")
    agent = agent_config(c, "l", prompted=ref.stage == "base", num_candidates=c.grow.num_candidates or None,
                         temperature=c.grow.temperature)
    return str(ref), lambda seed: EngineSampler(
        self.store.engine(self.store.load(ref), size=ref.size, seed=seed), agent, seed=seed), agent

  def _grow(self, g: int):
    c, name = self.config, GENERATIONS[g]
    policy, make_sampler, agent = self._policy(g)
    samples = int(c.grow.samples[g])
    tasks = [Task(q.id, q.question, q.answer, s) for q in (self.env.pilot if g == 0 else self.env.train)
             for s in range(samples)]
    inputs = dict(setup=self.setup_fp, policy=policy, policy_fp=self._fps.get(policy, policy), samples=samples,
                  agent=dataclasses.asdict(agent), seed=c.seed, questions=[t.key for t in tasks])
    chooser = None
    if self._follow_seed(g) is not None:
      chooser = follow_ranker(self._ranker(g), seed=self._follow_seed(g), few_shot=c.rank.few_shot)
      inputs.update(follow=c.grow.follow, follow_ranker=remote.identity(c.rank.ranker))

    def fn(d: Path):
      seed = c.seed * 1000 + 10 * g
      summary = rollout(tasks, make_sampler(seed), self.env.tool, agent, d / "trajectories.jsonl",
                        lineage=Lineage(policy, g, agent.fingerprint()), max_in_flight=c.engine.max_in_flight,
                        tool_workers=c.engine.tool_workers, **self.rollout_limits(), progress=self.progress,
                        chooser=chooser)
      return dict(done=summary.done, failed=summary.failed, skipped=summary.skipped, searches=summary.searches,
                  search_errors=summary.search_errors)

    return self.stages.run(f"{name}/grow", inputs, fn)

  def _follow_seed(self, g: int) -> int | None:
    """The seed of the step orders that generation g's growth follows the ranker with; None: it does not. A
    scripted pilot has one answer per step; without a ranker (the ablation) the policy's own choice stands."""
    c = self.config
    if c.grow.follow != "ranker" or c.rank.ranker == PERPLEXITY or (g == 0 and c.pilot.source == "scripted"):
      return None
    return c.seed * 1000 + 10 * g

  def rollout_limits(self) -> dict:
    """The rollout's search deadline (the tool's own, plus slack for it to report first), outage threshold, and
    wall-clock limits per trajectory and per rollout (0: none)."""
    c = self.config
    return dict(search_deadline=float(c.tool.deadline) + 5.0, max_failure_rate=float(c.tool.max_failure_rate),
                trajectory_deadline=float(c.engine.trajectory_deadline) or None,
                rollout_deadline=float(c.engine.rollout_deadline) or None)

  # ---------------------------------------------------------------------------------------------- rank

  def _ranker(self, g: int):
    """The ranker's `generate`: a model, the stand-in, or None (perplexity order, the no-feedback ablation)."""
    c = self.config
    if c.rank.ranker == PERPLEXITY:
      return None
    if c.rank.ranker == stand_in_ranker.NAME:
      return stand_in_ranker.generate
    if remote.is_openai_ref(c.rank.ranker):
      return Lazy(lambda: remote.remote_generator(c.rank.ranker, c, max_new_tokens=c.rank.max_new_tokens,
                                                   seed=c.seed))
    ranker = ModelRef.parse(c.rank.ranker)
    return Lazy(lambda: self._check_ready(ranker, g, "ranker") or text_generator(
        self.store.engine(self.store.load(ranker), size=ranker.size, seed=c.seed),
        max_new_tokens=c.rank.max_new_tokens))

  def _rank(self, g: int, grow):
    c, name = self.config, GENERATIONS[g]
    inputs = dict(grow=grow.fingerprint, ranker=remote.identity(c.rank.ranker),
                  ranker_fp=self._fps.get(c.rank.ranker, ""), few_shot=c.rank.few_shot,
                  max_new_tokens=c.rank.max_new_tokens, seed=c.seed, chunk=c.rank.chunk)
    generate = self._ranker(g)
    followed = self._follow_seed(g)
    if followed is not None:  # each step in the order it was ranked in while growing: the followed one is best
      inputs.update(step_orders=followed)

    def fn(d: Path):
      records = sorted(_agreed_records(grow.directory / "trajectories.jsonl"), key=lambda r: r.key)
      parts = d / "parts"
      finished = set(multihost.from_writer(lambda: sorted(p.name for p in parts.glob("*.jsonl"))))
      chunk = max(1, int(c.rank.chunk))
      for start in range(0, len(records), chunk):  # each chunk is written whole: a rerun skips finished ones
        part = parts / f"{start:07d}.jsonl"
        if part.name in finished:
          continue
        steps, keys = [], []
        for record in records[start:start + chunk]:
          for index, step in enumerate(record.model_steps()):
            steps.append((step.input, step.candidates))
            keys.append((record.key, index))
        rng = random.Random(f"{c.seed}:{name}:{start}") if followed is None else step_rng(followed)
        results = rank_steps(steps, generate=generate, rng=rng, few_shot=c.rank.few_shot) if steps else []
        rankings = [StepRanking.from_result(k, i, r) for (k, i), r in zip(keys, results)]
        multihost.from_writer(lambda: write_rankings(part, rankings))

      def merge():
        rankings = [r for part in sorted(parts.glob("*.jsonl")) for r in read_rankings(part).values()]
        write_rankings(d / "rankings.jsonl", rankings)
        return dict(steps=len(rankings), fallbacks=sum(r.fallback for r in rankings))

      return multihost.from_writer(merge)

    return self.stages.run(f"{name}/rank", inputs, fn)

  def _check_truncation(self, g: int, card: dict) -> None:
    """Stop before training when more than 1% of a size's examples would lose prompt tokens to its row length."""
    for size, count in card["truncated"].items():
      if count > 0.01 * card["examples"]:
        option = f"models.{size}.train.seq_len" if "seq_len" in self.config.models[size].train else "train.seq_len"
        raise ValueError(f"{GENERATIONS[g]}/mixture: {count} of {card['examples']} examples are longer than the "
                         f"{train_config(self.config, size).seq_len}-token rows of {size.upper()} (the longest has "
                         f"{card['max_tokens']} tokens) and would lose the start of their prompt, the question "
                         f"included; raise config.{option} (and its buckets)")

  def _check_ready(self, ref: ModelRef, g: int, role: str) -> None:
    if ref.generation is not None and str(ref) not in self.store.trained:
      raise ValueError(f"config.{'rank.ranker' if role == 'ranker' else 'eval.judge'}={str(ref)!r} is needed in "
                       f"{GENERATIONS[g]} but {ref} is trained only by then; use a base model or an earlier one")

  # ---------------------------------------------------------------------------------------------- improve

  def _train(self, g: int, size: str, mixture) -> None:
    c, name = self.config, GENERATIONS[g]
    tc = train_config(c, size)
    agent = agent_config(c, size, prompted=False)
    # the progress bar changes nothing the stage writes: a rerun without it resumes the same stage
    train_fields = {k: v for k, v in dataclasses.asdict(tc).items() if k != "progress"}
    inputs = dict(mixture=mixture.fingerprint, base=self._fps[f"base:{size}"], train=train_fields,
                  dev=[q.id for q in self.env.dev], dev_runs=c.eval.dev_runs, judge=self.judge_fingerprint(),
                  agent=dataclasses.asdict(agent))
    judge = self.judge(g)

    def fn(d: Path):
      def eval_fn(model) -> float:  # dev auto-eval of the weights being trained: picks the checkpoint
        return dev_score(self.env.dev, engine=self.store.engine(model, size=size, seed=c.seed), tool=self.env.tool,
                         agent=agent, judge=judge, runs=int(c.eval.dev_runs), seed=c.seed, directory=d / "dev",
                         **self.rollout_limits())

      examples = [Example(*e) for e in multihost.from_writer(
          lambda: [[e.prompt, e.target] for e in read_mixture(mixture.directory / "mixture.jsonl")])]
      result = train(self.store.base(size), self.env.tokenizer, examples, tc, d / "train", mesh=self.mesh,
                     eval_fn=eval_fn if self.env.dev else None, chat=self.store.chat(size))
      best = result.best_checkpoint or result.checkpoint
      if result.preempted:
        raise KeyboardInterrupt(f"training of {name}:{size} was stopped; rerun to resume")
      out = dict(checkpoint=str(Path(best).relative_to(d)), final_loss=result.final_loss, steps=result.steps,
                 best_dev_score=result.best_score, examples=result.examples, truncated=result.truncated,
                 dropped=result.dropped)
      multihost.from_writer(lambda: write_atomic(d / "result.json", json.dumps(out, indent=1, sort_keys=True) + "\n"))
      return out

    result = self.stages.run(f"{name}/train_{size}", inputs, fn,
                             load=lambda d: json.loads((d / "result.json").read_text()))
    self.register_trained(f"{name}:{size}", result.directory / result.value["checkpoint"], result.fingerprint)

  # ---------------------------------------------------------------------------------------------- export

  def _export(self) -> None:
    """The delivered model (config.size fine-tuned in the last generation) as a Hugging Face folder, export/<size>/.

    Only the delivered size: the report's other sizes are means to it (`export_hf` exports any of them). Each
    folder appears whole (renamed into place), so a rerun after a crash exports only what is missing."""
    c = self.config
    refs = {c.size: ModelRef(GENERATIONS[c.generation], c.size)}
    tokenizer = run_setup.tokenizer_path(c, self.stages.results["setup"].directory)
    inputs = dict(models={size: [str(ref), self._fps[str(ref)]] for size, ref in refs.items()},
                  dtypes={size: c.models[size].dtype for size in refs},
                  chat={size: self.store.chat(size) for size in refs}, setup=self.setup_fp)
    value = {size: str(ref) for size, ref in refs.items()}

    def fn(d: Path):
      exported = multihost.from_writer(lambda: [size for size in refs if (d / size).is_dir()])
      for size, ref in refs.items():
        if size not in exported:
          export_hf(self.store.load(ref), tokenizer, d / size, chat=self.store.chat(size))
      return value

    self.stages.run("export", inputs, fn, load=lambda d: value)


def _agreed_records(path: Path) -> list[TrajectoryRecord]:
  """The records of a file process 0 wrote, as process 0 reads them, on every process."""
  lines = multihost.from_writer(lambda: [r.to_json() for r in read_records(path)])
  return [TrajectoryRecord.from_json(line) for line in lines]


def spec_fingerprint(config, size: str, chat: bool = False) -> str:
  """What identifies a size's base model: the train stages record it (a run folder's models are checked against it)."""
  spec = config.models[size]
  return json.dumps(dict(checkpoint=spec.checkpoint, preset=spec.preset, overrides=dict(spec.overrides),
                         dtype=spec.dtype, seed=config.seed, **({"chat": True} if chat else {})), sort_keys=True)


def run_pipeline(config, workdir: str | Path, *, mesh=None) -> PipelineResult:
  """Run (or resume) the experiment `config` in `workdir`."""
  return Pipeline(config, workdir, mesh=mesh).run()


