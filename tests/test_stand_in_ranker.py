"""The demo's stand-in ranker: it ranks the grounded candidate first through the LLM ranker's own prompt and
reply parser, reads nothing but the prompt, and its ranking, not the policy's perplexity, picks SFT targets."""

import collections
import dataclasses
import random
from pathlib import Path

import pytest

from restreact.agent.actions import Answer, ReviseAnswer, Search, SelectLink
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage, ModelStep, read_records
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.data import grammar
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.rest import StepRanking, stand_in_ranker, step_examples
from restreact.rest.rank import follow_ranker, rank_steps, ranking_prompt, step_rng
from restreact.tools import BM25Search

ROOT = Path(__file__).resolve().parents[1]


def weaker(machine, step_type):
  """A candidate that parses but that a careful ranker puts below the solver's."""
  state = machine.state
  if step_type == "decision":
    return Search(thoughts="I search for the whole question.", query=state.question)
  if step_type == "summarize":
    first = state.current_results[0]
    return SelectLink(comments="The first result looks related.", selected_link_ids=(first.link_id,),
                      grounded_summarization=f"{first.link_text} is famous [link_id={first.link_id}].")
  if step_type == "answer":
    return Answer(thoughts="I guess.", answer="Nowhere")
  return ReviseAnswer(thoughts="It might be wrong.", revised_answer="unknown")


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
  """Dev trajectories of the solver, then each two-candidate step rewritten as if the policy had preferred the
  weaker candidate (its log-prob made the higher): each step's input is real, its choice is the policy's."""
  root = tmp_path_factory.mktemp("stand_in")
  world = make_world(seed=5)
  tool = BM25Search(world.write_corpus(root / "corpus.jsonl"), index_dir=root / "index")
  solver = WorldSolver()
  questions = world.questions("dev")[:8]

  def policy(machine, request):
    right = solver.action(machine, request.step_type)
    wrong = weaker(machine, request.step_type)
    return [(right, [-0.1] * 6), (wrong, [-0.9] * 6)] if wrong != right else [(right, [-0.1] * 6)]

  config = AgentConfig(num_candidates=2)
  rollout([Task(q.id, q.question, q.answer) for q in questions], ScriptedSampler(policy), tool, config,
          root / "t.jsonl", lineage=Lineage("test", 0, config.fingerprint()), progress=False)
  records = sorted(read_records(root / "t.jsonl"), key=lambda r: r.key)
  assert all(r.final_answer == r.reference for r in records)
  return [dataclasses.replace(r, steps=tuple(_prefer_weaker(s) for s in r.steps)) for r in records]


def _prefer_weaker(step):
  if not isinstance(step, ModelStep) or len(step.candidates) != 2:
    return step
  right, wrong = step.candidates
  return dataclasses.replace(step, candidates=(dataclasses.replace(wrong, logprobs=right.logprobs),
                                               dataclasses.replace(right, logprobs=wrong.logprobs)), chosen=0)


def rank(records, generate=stand_in_ranker.generate):
  steps = [(s.input, s.candidates) for r in records for s in r.model_steps()]
  keys = [(r.key, i) for r in records for i in range(len(r.model_steps()))]
  results = rank_steps(steps, generate=generate, rng=random.Random(0), few_shot=False)
  return {k: StepRanking.from_result(*k, res) for k, res in zip(keys, results)}


def test_ranks_the_grounded_candidate_first_in_the_rankers_reply_format(grown):
  rankings = rank(grown)
  two = [(r, i, s) for r in grown for i, s in enumerate(r.model_steps()) if len(s.candidates) == 2]
  assert len(two) > 20
  for record, index, step in two:
    ranking = rankings[(record.key, index)]
    assert ranking.status == "ok" and not ranking.fallback, (step.step_type, ranking)
    assert step.chosen == 0 and ranking.order[0] == 1, (step.step_type, step.input[-400:])
  # the reply is what the LLM ranker's parser reads
  step = two[0][2]
  reply = stand_in_ranker.reply(ranking_prompt(step.input, [c.text for c in step.candidates], [1, 0], few_shot=False))
  assert "\nAnswer: #" in reply and "\nRanking: #" in reply
  assert stand_in_ranker.reply("not a ranking prompt") == ""


def test_reads_only_the_prompt_never_the_reference(grown):
  """The records' reference answers swapped for nonsense: not one ranking changes."""
  assert all(r.reference for r in grown)
  blind = [dataclasses.replace(r, reference="Zzyzx Qwerty") for r in grown]
  assert rank(blind) == rank(grown)
  seen = []
  rank(grown, generate=lambda prompts: seen.extend(prompts) or stand_in_ranker.generate(prompts))
  assert seen and not any("Zzyzx" in p or "reference" in p.lower() for p in seen)


def test_ranking_changes_the_sft_targets(grown):
  """Without feedback the policy's choice (the weaker, higher log-prob candidate) is the target; with the
  stand-in's rankings the solver's candidate is."""
  rankings = rank(grown)
  ranked = [e.target for r in grown for e in step_examples(r, rankings)]
  chosen = [e.target for r in grown for e in step_examples(r)]
  right = [s.candidates[1].text if len(s.candidates) == 2 else s.candidates[0].text
           for r in grown for s in r.model_steps()]
  assert ranked == right and chosen != right
  assert sum(a != b for a, b in zip(ranked, chosen)) == sum(len(s.candidates) == 2 for r in grown
                                                           for s in r.model_steps())


def test_scores_and_the_headroom_script(grown, tmp_path):
  """`scores` puts the solver's candidate at GOOD and the weaker below; the headroom script counts, per step
  type, how often the policy's choice, the ranking's target and the best candidate were good."""
  import importlib.util

  from restreact.rest import write_rankings
  two = [s for r in grown for s in r.model_steps() if len(s.candidates) == 2]
  for step in two:
    weaker_score, right_score = stand_in_ranker.scores(step.input, [c.text for c in step.candidates])
    assert right_score >= stand_in_ranker.GOOD > weaker_score, step.step_type
    assert (stand_in_ranker.target_ok(step, 1), stand_in_ranker.target_ok(step, 0)) == (True, False)
  run = tmp_path / "run"
  (run / "gen1" / "grow").mkdir(parents=True)
  (run / "gen1" / "rank").mkdir(parents=True)
  (run / "gen1" / "grow" / "trajectories.jsonl").write_text("".join(r.to_json() + "\n" for r in grown))
  write_rankings(run / "gen1" / "rank" / "rankings.jsonl", rank(grown).values())
  spec = importlib.util.spec_from_file_location("headroom", ROOT / "scripts" / "feedback_headroom.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  counts = module.headroom(run, "gen1")
  steps = sum(c["steps"] for c in counts.values())
  assert steps == sum(len(r.model_steps()) for r in grown)
  assert sum(c["target"] for c in counts.values()) == sum(c["best"] for c in counts.values()) == steps
  assert sum(c["chosen"] for c in counts.values()) == steps - len(two)


def test_trajectory_verdict_accepts_supported_answers_only(grown):
  """`answer_supported` reads the last self-check as the ranker judges it: the solver's trajectories pass; the
  same trajectories with the weaker candidates chosen (a revision of a supported answer to 'unknown', a
  summary of what the result does not say) do not."""
  right = [dataclasses.replace(r, steps=tuple(
      dataclasses.replace(s, chosen=1) if isinstance(s, ModelStep) and len(s.candidates) == 2 else s
      for s in r.steps)) for r in grown]
  assert all(stand_in_ranker.answer_supported(r) for r in right)
  assert not any(stand_in_ranker.answer_supported(r) for r in grown)
  assert not stand_in_ranker.answer_supported(dataclasses.replace(right[0], status="failed"))


def test_first_search_script_finds_answers_that_began_off_the_question(grown, tmp_path):
  """scripts/first_search.py: the solver's trajectories search the question's subject first; the same
  trajectories with the weaker candidates chosen search the whole question, and are counted off-subject."""
  import importlib.util
  import json
  right = [dataclasses.replace(r, steps=tuple(
      dataclasses.replace(s, chosen=1) if isinstance(s, ModelStep) and len(s.candidates) == 2 else s
      for s in r.steps)) for r in grown]
  eval_dir = tmp_path / "gen1" / "eval_xs"
  eval_dir.mkdir(parents=True)
  for run, (records, score) in enumerate([(right, 1.0), (grown, 0.0)]):
    (eval_dir / f"run{run:02d}.trajectories.jsonl").write_text("".join(r.to_json() + "\n" for r in records))
    (eval_dir / f"run{run:02d}.grades.jsonl").write_text("".join(
        json.dumps({"question_id": r.question_id, "exact_match": score}) + "\n" for r in records))
  spec = importlib.util.spec_from_file_location("first_search", ROOT / "scripts" / "first_search.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  assert module.split(eval_dir) == {(True, True): len(right), (False, False): len(grown)}
  forms = module.by_form(eval_dir)  # each question once right (run 0) and once wrong (run 1)
  expected = collections.Counter(module.FORM_OF_CHAIN[grammar.read_question(r.question)[1]] for r in grown)
  assert forms == {form: (n, 2 * n) for form, n in sorted(expected.items())}
  # A mixture whose one search target names the first question's subject (an answer target names another).
  first = grammar.read_question(grown[0].question)[0]
  other = grammar.read_question(grown[-1].question)[0]
  mixture = tmp_path / "gen1" / "mixture" / "mixture.jsonl"
  mixture.parent.mkdir()
  mixture.write_text("".join(json.dumps(e) + "\n" for e in [
      {"step_type": "decision", "target": f"ACTION_SELECTED = Search(thoughts='x', query='{first}')  # [END]"},
      {"step_type": "answer", "target": f"ACTION_SELECTED = Answer(thoughts='x', answer='{other}')  # [END]"}]))
  queries = module.trained_queries(mixture)
  assert queries == {first.lower()}
  trained = sum(grammar.read_question(r.question)[0] == first for r in grown)
  assert module.by_training(eval_dir, queries) == {(True, True): trained, (False, True): len(right) - trained,
                                                   (True, False): trained, (False, False): len(grown) - trained}


def test_growth_that_follows_the_ranker_takes_its_corrections(tmp_path):
  """A policy whose weaker candidate has the higher log-prob: followed by perplexity (the paper) every
  trajectory goes astray; followed by the stand-in's ranking (`grow.follow="ranker"`) each step continues with
  the solver's candidate and every answer is right."""
  world = make_world(seed=5)
  tool = BM25Search(world.write_corpus(tmp_path / "corpus.jsonl"), index_dir=tmp_path / "index")
  solver, questions = WorldSolver(), world.questions("dev")[:6]

  def policy(machine, request):
    right, wrong = solver.action(machine, request.step_type), weaker(machine, request.step_type)
    if wrong == right:
      return [(right, [-0.1] * 6)]
    # on searches, a second right candidate in other words: a tie for the ranker
    twin = [(dataclasses.replace(right, thoughts="Next: " + right.thoughts), [-0.5] * 6)] \
        if isinstance(right, Search) else []
    return [(wrong, [-0.1] * 6), (right, [-0.9] * 6)] + twin

  def grow(name, chooser):
    config = AgentConfig(num_candidates=2)
    rollout([Task(q.id, q.question, q.answer) for q in questions], ScriptedSampler(policy), tool, config,
            tmp_path / f"{name}.jsonl", lineage=Lineage("test", 1, config.fingerprint()), progress=False,
            chooser=chooser)
    return sorted(read_records(tmp_path / f"{name}.jsonl"), key=lambda r: r.key)

  followed = grow("ranker", follow_ranker(stand_in_ranker.generate, seed=7, few_shot=False))
  assert all(r.final_answer == r.reference for r in followed)
  assert all(s.chosen in (1, 2) for r in followed for s in r.model_steps() if len(s.candidates) > 1)
  # ranked again in the orders it was followed in, every target is the candidate followed, ties included
  steps = [s for r in followed for s in r.model_steps()]
  again = rank_steps([(s.input, s.candidates) for s in steps], generate=stand_in_ranker.generate,
                     rng=step_rng(7), few_shot=False)
  assert sum(len(s.candidates) == 3 for s in steps) > 5
  assert [a.best for a in again] == [s.chosen for s in steps]
  astray = grow("paper", None)
  assert not any(r.final_answer == r.reference for r in astray)
  assert all(s.chosen == 0 for r in astray for s in r.model_steps())
