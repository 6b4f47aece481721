"""The synthetic world: deterministic, searchable, and solved by the scripted solver through the real machine."""

import collections
import dataclasses

import pytest

from restreact.agent import parse_step
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage, ModelStep, TrajectoryRecord, read_records
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.data import grammar
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.tools import BM25Search


@pytest.fixture(scope="module")
def world():
  return make_world(seed=3)


def test_same_seed_same_world_and_splits_partition_questions(world):
  again = make_world(seed=3)
  assert again.passages == world.passages and again.all_questions == world.all_questions
  assert make_world(seed=4).passages != world.passages
  splits = {s: {q.id for q in world.questions(s)} for s in ("pilot", "train", "dev", "test")}
  assert sum(map(len, splits.values())) == len(world.questions()) and all(splits.values())
  assert {s: len(ids) for s, ids in splits.items() if s != "train"} == {"pilot": 100, "dev": 24, "test": 50}
  assert len(set.union(*splits.values())) == len(world.questions())  # disjoint
  assert {len(q.hops) for q in world.questions()} == {2, 3}
  assert len({p.title for p in world.passages}) == len(world.passages)
  with pytest.raises(ValueError, match="split"):
    world.questions("validation")


def test_pilot_forms_leave_the_other_forms_to_growth():
  world = make_world(seed=3, pilot_forms=("founder_city", "org_country"), split_sizes={"pilot": 40})
  assert {q.form for q in world.questions("pilot")} == {"founder_city", "org_country"}
  assert {q.form for q in world.questions("test")} > {"founder_city", "org_country"}
  with pytest.raises(ValueError, match="form"):
    make_world(seed=3, pilot_forms=("no_such_form",))


def test_pilot_searches_every_entity_with_balanced_forms():
  # The demo's world: every test question's subject is searched by some pilot question (the test and dev splits
  # leave each subject a question, and the pilot takes first what searches an entity not yet searched), while
  # each form keeps about its share (round-robin over forms).
  sizes = dict(num_countries=6, num_cities=20, num_people=80, num_orgs=40,
               split_sizes=dict(pilot=120, dev=24, test=50))
  for seed in (0, 1):
    world = make_world(seed, **sizes)
    searched = {hop.query for q in world.questions("pilot") for hop in q.hops}
    assert {q.hops[0].query for q in world.questions() if q.split != "pilot"} <= searched
    forms = collections.Counter(q.form for q in world.questions("pilot"))
    assert set(forms) == set(grammar.FORMS) and min(forms.values()) >= 10
  # A larger world than its pilot: its 100 questions search 150 different entities.
  assert len({hop.query for q in make_world(0).questions("pilot") for hop in q.hops}) == 150


def test_every_hop_fact_is_in_its_passage(world):
  text = {p.title: p.text for p in world.passages}
  for q in world.questions():
    assert q.answer == q.hops[-1].value
    for hop in q.hops:
      assert hop.fact in text[hop.title] and hop.value in hop.fact


def test_scripted_trajectories_are_correct_and_reparse_to_equal_records(world, tmp_path):
  corpus = world.write_corpus(tmp_path / "corpus.jsonl")
  tool = BM25Search(corpus, index_dir=tmp_path / "index")
  questions = world.questions("dev")
  config = AgentConfig(num_candidates=2)
  out = tmp_path / "seed.jsonl"
  summary = rollout([Task(q.id, q.question, q.answer) for q in questions], ScriptedSampler(WorldSolver(world)), tool,
                    config, out, lineage=Lineage("scripted", 0, config.fingerprint()), progress=False)
  assert summary.done == len(questions) and summary.failed == 0
  records = list(read_records(out))
  assert sorted(r.key for r in records) == sorted(f"{q.id}#0" for q in questions)
  for record in records:
    assert record.final_answer == record.reference
    assert TrajectoryRecord.from_json(record.to_json()) == record
    for step in record.steps:
      if isinstance(step, ModelStep):
        for candidate in step.candidates:
          assert parse_step(step.step_type, candidate.text) == candidate.action
    searches = [s for s in record.model_steps() if s.step_type == "decision"][:-1]
    assert len(searches) == len(next(q for q in questions if q.id == record.question_id).hops)


def test_write_corpus_is_atomic_jsonl(world, tmp_path):
  path = world.write_corpus(tmp_path / "c.jsonl")
  lines = path.read_text().splitlines()
  assert len(lines) == len(world.passages) and not list(tmp_path.glob("*.tmp"))
  assert dataclasses.asdict(world.passages[0]).keys() == {"id", "title", "text"}


def test_world_is_a_question_set():
  from restreact.data import load_questions
  test = load_questions("synthetic", seed=3, split="test")
  assert [r.question for r in test] == [q.question for q in make_world(seed=3).questions("test")]
  assert test[0].answers == (test[0].answer,) and test[0].source == "synthetic"
  with pytest.raises(ValueError, match="no path"):
    load_questions("synthetic", "x.jsonl")
