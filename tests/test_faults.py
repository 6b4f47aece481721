"""Faults injected into the search tool: a local retrieval server that hangs, drips, fails, tears its body or
answers garbage, and one that is not there at all. Each call ends by its deadline as a SearchError; a rollout
through a broken tool stops with a clear message instead of turning the outage into training data; SIGTERM
stops a rollout stuck on a hung call in seconds."""

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from http_servers import FAULTS, serve
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage, ToolStep, read_records
from restreact.agent.rollout import SearchOutage, Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.tools import BM25Search, RetrievalServerSearch, SearchError

MODES = (*FAULTS, "hang", "5xx", "outage")


def free_url() -> str:
  """An address where nothing listens: every connection is refused (the outage)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture(scope="module")
def world_server(tmp_path_factory):
  """A retrieval server over the synthetic world's corpus (BM25), for the whole module."""
  world = make_world(seed=1)
  tmp = tmp_path_factory.mktemp("world")
  bm25 = BM25Search(world.write_corpus(tmp / "corpus.jsonl"), index_dir=tmp / "index")

  def answer(method, path, params, body):
    return {"result": [[{"document": {"id": r.doc_id, "contents": f'"{r.link_text}"\n{r.snippet}'}, "score": r.score}
                        for r in bm25.search(q, body["topk"])] for q in body["queries"]]}

  with serve(answer) as (url, behaviour):
    yield world, url, behaviour


def _break(behaviour, mode: str) -> None:
  behaviour.fault, behaviour.fault_next, behaviour.fail_next, behaviour.stall_seconds = None, None, [], 0.0
  if mode in FAULTS:
    behaviour.fault = mode
  elif mode == "hang":
    behaviour.stall_seconds = 30.0
  elif mode == "5xx":
    behaviour.fail_next = [503] * 10_000


def _tool(url: str) -> RetrievalServerSearch:
  return RetrievalServerSearch(url, timeout=0.5, deadline=1.5, retries=2, backoff=0.05)


@pytest.mark.parametrize("mode", MODES)
def test_every_fault_is_a_search_error_within_the_deadline(world_server, mode):
  _, url, behaviour = world_server
  _break(behaviour, mode)
  start = time.monotonic()
  try:
    with pytest.raises(SearchError) as error:
      _tool(free_url() if mode == "outage" else url).search("Dombind Nourkaim")
  finally:
    _break(behaviour, "none")
  assert time.monotonic() - start < 3.0  # the 1.5 s deadline, and a little slack
  assert "Authorization" not in str(error.value)


def test_broken_connections_and_retry_after_are_retried(world_server):
  _, url, behaviour = world_server
  behaviour.fault, behaviour.fault_next = "torn", 1  # one body cut short, then a good answer
  assert _tool(url).search("Dombind Nourkaim")
  assert behaviour.fault_next == 0
  behaviour.fail_next, behaviour.fail_headers = [503], {"Retry-After": "1"}
  start = time.monotonic()
  assert RetrievalServerSearch(url, backoff=0.0, deadline=5.0).search("Dombind Nourkaim")
  assert time.monotonic() - start >= 0.9  # it waited as asked, not the (zero) backoff
  behaviour.fail_headers = {}


@pytest.mark.parametrize("mode", MODES)
def test_a_rollout_through_a_broken_tool_stops_with_a_clear_message(world_server, mode, tmp_path):
  world, url, behaviour = world_server
  tasks = [Task(q.id, q.question, q.answer) for q in world.questions("dev")[:6]]
  out = tmp_path / "t.jsonl"
  _break(behaviour, mode)
  start = time.monotonic()
  try:
    with pytest.raises(SearchOutage, match=r"searches failed .* config.tool.max_failure_rate.*delete"):
      rollout(tasks, ScriptedSampler(WorldSolver()), _tool(free_url() if mode == "outage" else url),
              AgentConfig(num_candidates=1), out, lineage=Lineage("t", 0, "c"), max_in_flight=6,
              search_deadline=6.0, max_failure_rate=0.5, progress=False)
  finally:
    _break(behaviour, "none")
  assert time.monotonic() - start < 120
  for record in read_records(out):  # what was written shows the fault, and no answer came from nothing
    searches = [s for s in record.steps if isinstance(s, ToolStep)]
    assert all(s.error and "SearchError" in s.error for s in searches)
    assert record.final_answer != record.reference
  if out.exists():  # the file that saw the outage stays refused, even with a working tool, until it is deleted
    with pytest.raises(SearchOutage):
      rollout(tasks, ScriptedSampler(WorldSolver()), _tool(url), AgentConfig(num_candidates=1), out,
              lineage=Lineage("t", 0, "c"), max_failure_rate=0.5, progress=False)


def test_without_a_threshold_the_faults_are_recorded_in_the_trajectories(world_server, tmp_path):
  world, url, behaviour = world_server
  tasks = [Task(q.id, q.question, q.answer) for q in world.questions("dev")[:6]]
  _break(behaviour, "drip")
  try:
    summary = rollout(tasks, ScriptedSampler(WorldSolver()), _tool(url), AgentConfig(num_candidates=1),
                      tmp_path / "t.jsonl", lineage=Lineage("t", 0, "c"), max_in_flight=6, progress=False)
  finally:
    _break(behaviour, "none")
  records = list(read_records(tmp_path / "t.jsonl"))
  assert len(records) == 6 and summary.search_errors == summary.searches > 0
  assert all("deadline" in s.error for r in records for s in r.steps if isinstance(s, ToolStep))
  assert not any(r.final_answer == r.reference for r in records)
  # the model is told only that the search failed: no server address reaches a prompt (or SFT data)
  assert not any(url in step.input for r in records for step in r.model_steps())


HUNG = """
import sys, time
from restreact.agent.machine import AgentConfig
from restreact.agent.records import Lineage
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.tools import SearchTool

class Hung(SearchTool):
  def _search(self, query, k):
    print("searching", flush=True)
    time.sleep(600)

world = make_world(seed=1)
tasks = [Task(q.id, q.question, q.answer) for q in world.questions("dev")[:6]]
rollout(tasks, ScriptedSampler(WorldSolver()), Hung(), AgentConfig(num_candidates=1), sys.argv[1],
        lineage=Lineage("t", 0, "c"), search_deadline=None, progress=False)
"""


def test_sigterm_stops_a_rollout_stuck_on_a_hung_tool_in_seconds(tmp_path):
  script = tmp_path / "hung.py"
  script.write_text(textwrap.dedent(HUNG))
  proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "t.jsonl")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  assert "searching" in proc.stdout.readline()  # a call is now stuck (no deadline at all); threads may share a line
  time.sleep(0.5)
  start = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=60)
  assert time.monotonic() - start < 5.0, f"SIGTERM took {time.monotonic() - start:.1f}s"
  assert proc.returncode != 0 and "KeyboardInterrupt" in stderr
