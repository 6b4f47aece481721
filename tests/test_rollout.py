"""The rollout loop: batching, failure isolation, resume without duplicates, SIGTERM safety, the real engine."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from models_util import random_model
from restreact.agent import Search, Terminate
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage, read_records
from restreact.agent.rollout import RolloutDeadline, Task, rollout
from restreact.agent.samplers import EngineSampler, ScriptedSampler
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.generate import Engine
from restreact.models import train_tokenizer
from restreact.prompts import preamble
from restreact.tools import BM25Search, SearchResult, SearchTool

LINEAGE = Lineage("test", 0, "cfg")


class SlowTool(SearchTool):
  """Answers after `delay` seconds, recording how many calls overlap."""

  name = "slow"

  def __init__(self, world=None, delay=0.0, explode_on=None):
    self.delay, self.explode_on = delay, explode_on
    self.inner = world
    self.in_flight = self.max_in_flight = 0

  def _search(self, query, k):
    self.in_flight += 1
    self.max_in_flight = max(self.max_in_flight, self.in_flight)
    try:
      time.sleep(self.delay)
      if query == self.explode_on:
        raise ZeroDivisionError("a bug in the backend")  # not a SearchError: still isolated
      return self.inner.search(query, k) if self.inner else [SearchResult(query, "text")]
    finally:
      self.in_flight -= 1


@pytest.fixture(scope="module")
def world_and_tool(tmp_path_factory):
  world = make_world(seed=1)
  tmp = tmp_path_factory.mktemp("world")
  return world, BM25Search(world.write_corpus(tmp / "corpus.jsonl"), index_dir=tmp / "index")


def _tasks(world, split="dev"):
  return [Task(q.id, q.question, q.answer) for q in world.questions(split)]


def test_searches_overlap_and_one_failure_spares_the_others(world_and_tool, tmp_path):
  world, bm25 = world_and_tool
  tasks = _tasks(world)
  solver = WorldSolver(world)
  victim = tasks[0].question_id

  def policy(machine, request):
    if machine.question_id == victim and request.step_type == "answer":
      raise RuntimeError("the policy crashed")
    return solver(machine, request)

  bad_query = world.questions("dev")[1].hops[0].query
  tool = SlowTool(bm25, delay=0.05, explode_on=bad_query)
  summary = rollout(tasks, ScriptedSampler(policy, delay_polls=1), tool, AgentConfig(num_candidates=1),
                    tmp_path / "t.jsonl", lineage=LINEAGE, max_in_flight=16, progress=False)
  assert tool.max_in_flight > 4  # searches of different trajectories ran together
  records = {r.question_id: r for r in read_records(tmp_path / "t.jsonl")}
  assert len(records) == len(tasks)
  assert records[victim].status == "failed" and "the policy crashed" in records[victim].error
  crashed_tool = records[world.questions("dev")[1].id]
  assert "ZeroDivisionError: a bug in the backend" in crashed_tool.steps[1].error
  others = [r for q, r in records.items() if q != victim]
  assert sum(r.final_answer == r.reference for r in others) >= len(others) - 1  # the tool failure may cost one
  assert summary.search_errors >= 1 and summary.failed >= 1


def test_rerun_skips_finished_trajectories(world_and_tool, tmp_path):
  world, bm25 = world_and_tool
  tasks = _tasks(world)[:6]
  out = tmp_path / "t.jsonl"
  rollout(tasks[:4], ScriptedSampler(WorldSolver(world)), bm25, AgentConfig(num_candidates=1), out,
          lineage=LINEAGE, progress=False)
  summary = rollout(tasks, ScriptedSampler(WorldSolver(world)), bm25, AgentConfig(num_candidates=1), out,
                    lineage=LINEAGE, progress=False)
  assert summary.skipped == 4 and summary.done == 2
  keys = [r.key for r in read_records(out)]
  assert len(keys) == len(set(keys)) == 6
  with pytest.raises(ValueError, match="distinct"):
    rollout(tasks + tasks[:1], ScriptedSampler(WorldSolver(world)), bm25, AgentConfig(), out, lineage=LINEAGE)


def test_deadlines_fail_a_slow_trajectory_and_stop_a_slow_rollout(world_and_tool, tmp_path):
  world, bm25 = world_and_tool
  tasks = _tasks(world)[:6]
  solver = WorldSolver(world)
  slow = tasks[0].question_id

  def policy(machine, request):  # one trajectory's model is slow at every step
    if machine.question_id == slow:
      time.sleep(0.2)
    return solver(machine, request)

  out = tmp_path / "t.jsonl"
  summary = rollout(tasks, ScriptedSampler(policy), bm25, AgentConfig(num_candidates=1), out, lineage=LINEAGE,
                    trajectory_deadline=0.5, progress=False)
  records = {r.question_id: r for r in read_records(out)}
  assert records[slow].status == "failed" and "deadline" in records[slow].error and 1 < len(records[slow].steps)
  assert summary.done == 5 and all(r.final_answer == r.reference for q, r in records.items() if q != slow)
  # a rollout past its own deadline stops; what it finished is on disk and a rerun without the limit continues
  slow_all = lambda machine, request: time.sleep(0.05) or solver(machine, request)
  again = tmp_path / "again.jsonl"
  with pytest.raises(RolloutDeadline, match="ran past its deadline.*rerun to continue"):
    rollout(_tasks(world), ScriptedSampler(slow_all), bm25, AgentConfig(num_candidates=1), again, lineage=LINEAGE,
            max_in_flight=2, rollout_deadline=1.0, progress=False)
  finished = len(list(read_records(again)))
  assert 0 < finished < len(_tasks(world))
  rest = rollout(_tasks(world), ScriptedSampler(solver), bm25, AgentConfig(num_candidates=1), again,
                 lineage=LINEAGE, progress=False)
  assert rest.skipped == finished and rest.done == len(_tasks(world)) - finished


SCRIPT = """
import sys, time
from restreact.agent import Search, Terminate, Answer, CheckAnswer
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage
from restreact.agent.rollout import RolloutDeadline, Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.tools import SearchResult, SearchTool

class Slow(SearchTool):
  def _search(self, query, k):
    time.sleep(0.2)
    return [SearchResult(query, "text")]

def policy(machine, request):
  searched = sum(type(a).__name__ == "Search" for a in machine.state.past_actions)
  act = {"decision": Search(thoughts="t", query=f"q{searched}") if searched < 1 else Terminate(thoughts="t"),
         "summarize": __import__("restreact.agent", fromlist=["SelectLink"]).SelectLink(
             comments="c", selected_link_ids=(), grounded_summarization=""),
         "answer": Answer(thoughts="t", answer="a")}.get(request.step_type, CheckAnswer(passed=True))
  return [(act, [-1.0])]

tasks = [Task(f"q{i}", "Q?") for i in range(400)]
rollout(tasks, ScriptedSampler(policy), Slow(), AgentConfig(num_candidates=1), sys.argv[1],
        lineage=Lineage("t", 0, "c"), max_in_flight=4, progress=False)
"""


def test_sigterm_leaves_every_finished_trajectory_on_disk(tmp_path):
  out = tmp_path / "t.jsonl"
  script = tmp_path / "run.py"
  script.write_text(textwrap.dedent(SCRIPT))
  proc = subprocess.Popen([sys.executable, str(script), str(out)], stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 8):
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
  text = out.read_text()
  assert text.endswith("\n")  # no torn line
  first = list(read_records(out))
  assert 8 <= len(first) < 400 and all(r.status == "done" for r in first)


def test_real_engine_drives_the_loop_and_records_its_logprobs(tmp_path):
  tokenizer = train_tokenizer([preamble(t, few_shot=False) for t in ("decision", "answer")] * 20,
                              tmp_path / "tok.model", vocab_size=400)
  model = random_model("gemma3-tiny", vocab_size=tokenizer.vocab_size)
  config = AgentConfig(num_candidates=2, max_new_tokens=12, few_shot=False)
  engine = Engine(model, tokenizer, num_slots=4, max_len=1024, prefill_chunk=128, prefill_buckets=(32,))
  sampler = EngineSampler(engine, config, seed=5)
  tasks = [Task(f"q{i}", f"Where is place number {i}?") for i in range(3)]
  tasks.append(Task("long", "why? " * 2000))  # cannot fit max_len: fails alone
  summary = rollout(tasks, sampler, SlowTool(), config, tmp_path / "t.jsonl", lineage=LINEAGE, progress=False)
  records = {r.question_id: r for r in read_records(tmp_path / "t.jsonl")}
  assert len(records) == 4 and summary.failed == 4  # a random model writes no valid action
  assert "exceeds max_len" in records["long"].error
  step = records["q0"].model_steps()[0]
  assert len(step.candidates) == 2 and all(len(c.logprobs) == 12 for c in step.candidates)
  assert all(c.finish_reason == "length" and c.error for c in step.candidates)
  assert engine.stats["prefix_tokens_reused"] > 0  # the decision preamble was prefilled once
  again = rollout(tasks[:3], EngineSampler(engine, config, seed=5, reuse_preambles=False), SlowTool(), config,
                  tmp_path / "u.jsonl", lineage=LINEAGE, progress=False)
  assert [r.model_steps()[0].candidates for r in again.records] == \
      [records[r.question_id].model_steps()[0].candidates for r in again.records]  # seeds fix the samples


def test_a_sigterm_handler_already_installed_is_kept(world_and_tool, tmp_path):
  """Inside training (the dev eval) the trainer's handler must see SIGTERM, to save before stopping."""
  world, bm25 = world_and_tool
  solver, seen = WorldSolver(world), []

  def policy(machine, request):
    if not seen:
      os.kill(os.getpid(), signal.SIGTERM)
    return solver(machine, request)

  previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("trainer"))
  try:
    summary = rollout(_tasks(world)[:3], ScriptedSampler(policy), bm25, AgentConfig(num_candidates=1),
                      tmp_path / "t.jsonl", lineage=LINEAGE, progress=False)
  finally:
    signal.signal(signal.SIGTERM, previous)
  assert seen == ["trainer"] and summary.done == 3  # the rollout ran to its end; the trainer then saves
