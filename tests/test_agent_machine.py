"""The step machine driven by a scripted fake model through every branch, and trajectory records."""

import dataclasses

import pytest

from restreact.agent import Answer, CheckAnswer, ReviseAnswer, SelectLink, Search, Terminate, statement
from restreact.agent.machine import AgentConfig, StepRequest, StepMachine, make_candidate
from restreact.agent.records import (Candidate, Lineage, MachineStep, ModelStep, ToolStep, TrajectoryRecord,
                                     append_records, read_records)
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.tools import SearchError, SearchResult, SearchTool

LINEAGE = Lineage("fake", 1, "cfg0")


class FakeTool(SearchTool):
  """Two results per query named after it; queries containing 'broken' fail."""

  name = "fake"

  def __init__(self):
    self.queries = []

  def _search(self, query, k):
    self.queries.append(query)
    if "broken" in query:
      raise SearchError("backend unavailable")
    return [SearchResult(f"{query} page {i}", f"About {query}, part {i}.", doc_id=f"{query}-{i}") for i in range(2)]


def scripted(plan):
  """A policy from {step_type: [candidates per call]}; a candidate is an Action, raw text, or (text, logprobs)."""
  calls = {}

  def policy(machine, request: StepRequest):
    i = calls.get(request.step_type, 0)
    calls[request.step_type] = i + 1
    out = []
    for c in plan[request.step_type][min(i, len(plan[request.step_type]) - 1)]:
      text, logprobs = c if isinstance(c, tuple) else (c, [-1.0])
      out.append((text, logprobs))
    return out
  return policy


def run(plan, config=AgentConfig(num_candidates=2), tmp_path=None, question="Q?"):
  path = tmp_path / "t.jsonl"
  tool = FakeTool()
  summary = rollout([Task("q1", question, "ref")], ScriptedSampler(scripted(plan)), tool, config, path,
                    lineage=LINEAGE, progress=False)
  (record,) = list(read_records(path))
  assert record == summary.records[0]
  return record, tool


def kinds(record):
  return [s.step_type if hasattr(s, "step_type") else s.kind for s in record.steps]


def test_two_searches_then_answer_with_revision(tmp_path):
  good_answer = Answer(thoughts="A [link_id=3].", answer="Paris")
  plan = {
      "decision": [[Search(thoughts="first", query="alpha")], [Search(thoughts="second", query="beta")],
                   [Terminate(thoughts="enough")]],
      "summarize": [[SelectLink(comments="c", selected_link_ids=(1,), grounded_summarization="s [link_id=1]")],
                    [SelectLink(comments="c", selected_link_ids=(3, 4), grounded_summarization="t [link_id=3]")]],
      "answer": [[good_answer]],
      "relevance": [[ReviseAnswer(thoughts="asks for the city", revised_answer="Paris, France")]],
      "grounding": [[CheckAnswer(passed=True)]],
  }
  record, tool = run(plan, tmp_path=tmp_path)
  assert record.status == "done" and record.final_answer == "Paris, France"
  assert tool.queries == ["alpha", "beta"]
  assert kinds(record) == ["decision", "tool", "summarize", "decision", "tool", "summarize", "decision", "answer",
                           "relevance", "grounding"]
  tools = [s for s in record.steps if isinstance(s, ToolStep)]
  assert [r.link_id for t in tools for r in t.results] == [1, 2, 3, 4]  # unique across the trajectory
  grounding = record.model_steps()[-1]
  assert "PROPOSED_ANSWER: Answer = Answer(thoughts='asks for the city', answer='Paris, France')" in grounding.input
  summarize_2 = record.model_steps()[3]
  assert "ResultItem(link_id=3, link_text='beta page 0'" in summarize_2.input
  assert "REMAINING_SEARCHES: int = 8" in summarize_2.input


def test_parse_error_candidate_is_recorded_and_lowest_perplexity_parsed_one_wins(tmp_path):
  plan = {
      "decision": [[("ACTION_SELECTED = Search(query=", [-0.01]),  # best log-prob, but does not parse
                    (statement(Terminate(thoughts="worse")), [-2.0]),
                    (statement(Terminate(thoughts="better")), [-0.5, -0.7])]],
      "answer": [[Answer(thoughts="t", answer="x")]],
      "relevance": [[CheckAnswer(passed=True)]], "grounding": [[CheckAnswer(passed=True)]],
  }
  record, _ = run(plan, config=AgentConfig(num_candidates=3), tmp_path=tmp_path)
  decision = record.model_steps()[0]
  assert decision.candidates[0].action is None and "not valid Python" in decision.candidates[0].error
  assert decision.chosen == 2 and decision.action == Terminate(thoughts="better")
  assert decision.candidates[2].logprobs == (-0.5, -0.7)
  assert record.final_answer == "x"


def test_no_parseable_candidate_fails_only_that_trajectory(tmp_path):
  plan = {"decision": [["Search(query='x')", "ACTION_SELECTED = Answer(thoughts='t', answer='a')"]]}
  record, _ = run(plan, tmp_path=tmp_path)
  assert record.status == "failed" and record.final_answer is None
  assert "no candidate of the decision step parsed" in record.error
  assert "Answer is not allowed here" in record.model_steps()[0].candidates[1].error


def test_tool_failure_is_an_observation_and_the_agent_searches_again(tmp_path):
  plan = {
      "decision": [[Search(thoughts="t", query="broken query")], [Search(thoughts="t", query="fine")],
                   [Terminate(thoughts="t")]],
      "summarize": [[SelectLink(comments="c", selected_link_ids=(1,), grounded_summarization="s")]],
      "answer": [[Answer(thoughts="t", answer="a")]],
      "relevance": [[CheckAnswer(passed=True)]], "grounding": [[CheckAnswer(passed=True)]],
  }
  record, _ = run(plan, tmp_path=tmp_path)
  assert record.status == "done"
  failed = record.steps[1]
  assert isinstance(failed, ToolStep) and failed.error == "SearchError: backend unavailable" and not failed.results
  note = record.steps[2]
  assert isinstance(note, MachineStep) and note.reason == "search error"
  second_decision = record.model_steps()[1]
  assert "The search failed." in second_decision.input and "backend unavailable" not in second_decision.input
  assert "REMAINING_SEARCHES: int = 9" in second_decision.input  # a failed search still spends budget
  assert record.steps[4].results[0].link_id == 1  # ids start at 1 again only because none was handed out


def test_summary_selecting_unshown_links_is_invalid(tmp_path):
  plan = {
      "decision": [[Search(thoughts="t", query="q")]],
      "summarize": [[SelectLink(comments="c", selected_link_ids=(7,), grounded_summarization="s")]],
  }
  record, _ = run(plan, config=AgentConfig(num_candidates=1), tmp_path=tmp_path)
  assert record.status == "failed"
  assert record.model_steps()[1].candidates[0].error == "selected link ids [7] were not shown"


def test_exhausted_budget_terminates_for_the_agent(tmp_path):
  plan = {
      "decision": [[Search(thoughts="t", query="again")]],  # it would search forever
      "summarize": [[SelectLink(comments="c", selected_link_ids=(), grounded_summarization="")]],
      "answer": [[Answer(thoughts="t", answer="best guess")]],
      "relevance": [[CheckAnswer(passed=True)]],
      "grounding": [[ReviseAnswer(thoughts="not grounded", revised_answer="unknown")]],
  }
  record, tool = run(plan, config=AgentConfig(num_candidates=1, max_searches=3), tmp_path=tmp_path)
  assert len(tool.queries) == 3
  assert isinstance(record.steps[-4], MachineStep) and record.steps[-4].reason == "search budget exhausted"
  assert "REMAINING_SEARCHES: int = 0" in record.model_steps()[-3].input
  assert record.final_answer == "unknown"


def test_feeding_the_wrong_step_is_an_error():
  machine = StepMachine("Q?", AgentConfig(), LINEAGE)
  request = machine.next_request()
  assert request.step_type == "decision" and request.n == 4 and request.prompt.endswith(request.input + "\n")
  with pytest.raises(RuntimeError, match="phase decision"):
    machine.feed_candidates(dataclasses.replace(request, step_type="answer"), [])
  with pytest.raises(RuntimeError, match="search results"):
    machine.feed_search(None, [], 0.0)


def test_zero_shot_prompt_has_no_examples():
  few = StepMachine("Q?", AgentConfig(), LINEAGE).next_request().prompt
  zero = StepMachine("Q?", AgentConfig(few_shot=False), LINEAGE).next_request().prompt
  # zero-shot (fine-tuned models): the step's task in a sentence; no action definitions, no examples
  assert "# Example 1" in few and "class Search(Action)" in few
  assert "# Example" not in zero and "class Search(Action)" not in zero and zero.startswith('"""')
  assert zero.endswith("PAST_ACTIONS: List[Action] = []\nREMAINING_SEARCHES: int = 10\n")


def _sample_record():
  cands = (Candidate("ACTION_SELECTED = Search(thoughts='t', query='q')  # [END]", (-0.5, -1.0), "stop",
                     Search(thoughts="t", query="q")),
           Candidate("garbage", (-3.0,), "length", None, "no 'ACTION_SELECTED = ...' statement"))
  from restreact.agent.records import ToolResult
  steps = (ModelStep("decision", "ORIGINAL_QUESTION: str = 'Q\u00e9?'", cands, 0),
           ToolStep("q", 3, (ToolResult(1, "T", "snip", "d1", 1.5, None),), 0.25, None),
           MachineStep("decision", Terminate(thoughts="x"), "search budget exhausted"))
  return TrajectoryRecord("q1", "Q\u00e9?", steps, "A", "done", LINEAGE, "ref", None, 2)


def test_record_round_trips_to_an_equal_object(tmp_path):
  record = _sample_record()
  assert TrajectoryRecord.from_json(record.to_json()) == record
  path = tmp_path / "r.jsonl"
  append_records(path, [record, dataclasses.replace(record, sample=3)])
  assert list(read_records(path)) == [record, dataclasses.replace(record, sample=3)]


def test_reading_records_tolerates_a_torn_last_line_only(tmp_path):
  path = tmp_path / "r.jsonl"
  append_records(path, [_sample_record()])
  with open(path, "a") as f:
    f.write(_sample_record().to_json()[:50])  # a crash mid-write
  assert len(list(read_records(path))) == 1
  # the next append cuts the torn line first instead of gluing onto it: nothing lost, the file stays readable
  append_records(path, [dataclasses.replace(_sample_record(), sample=5)])
  assert [r.sample for r in read_records(path)] == [2, 5]
  path.write_text(_sample_record().to_json()[:70])  # a file that is one torn line
  append_records(path, [_sample_record()])
  assert list(read_records(path)) == [_sample_record()]
  path.write_text("{not json}\n" + _sample_record().to_json() + "\n")
  with pytest.raises(ValueError, match="r.jsonl:1"):
    list(read_records(path))


def test_records_of_another_schema_version_are_refused():
  line = _sample_record().to_json().replace('"schema_version": 1', '"schema_version": 99')
  with pytest.raises(ValueError, match="schema version 99"):
    TrajectoryRecord.from_json(line)


def test_a_record_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
  path = tmp_path / "r.jsonl"
  path.write_bytes(_sample_record().to_json().encode() + b"\n\xff\xfe broken\n")
  with pytest.raises(ValueError, match=r"r.jsonl:2: not UTF-8"):
    list(read_records(path))


def test_samplers_and_search_tools_meet_the_rollout_interfaces(tmp_path):
  from restreact.agent import EngineSampler, ScriptedSampler
  from restreact.agent.interfaces import Sampler, SearchBackend, SearchHit
  from restreact.serve.sampler import RemoteSampler
  from restreact.tools import BM25Search, RetrievalServerSearch, SearchResult, WikipediaSearch
  for sampler in (EngineSampler, ScriptedSampler, RemoteSampler):
    assert all(callable(getattr(sampler, name, None)) for name in ("submit", "poll", "cancel")), sampler
    assert isinstance(getattr(sampler, "busy"), property), sampler
  assert isinstance(ScriptedSampler(lambda machine, request: []), Sampler)
  assert not isinstance(object(), Sampler)
  for tool in (BM25Search, RetrievalServerSearch, WikipediaSearch):
    assert callable(tool.search) and isinstance(tool.name, str), tool
  assert isinstance(SearchResult("title", "snippet"), SearchHit)
  assert not isinstance(object(), SearchBackend)


def test_a_chooser_picks_the_candidate_and_a_bad_pick_fails_only_its_trajectory(tmp_path):
  """A machine continues with the chooser's candidate, not the lowest-perplexity one; a pick of a candidate that
  did not parse is a bug that ends the trajectory with a message."""
  decide = [(statement(Search("low", "first")), [-0.1]), (statement(Search("high", "second")), [-2.0]),
            ("not an action", [-0.01])]
  for chooser, query in ((None, "first"), (lambda step_input, candidates: 1, "second")):
    machine = StepMachine("Q?", AgentConfig(num_candidates=3), LINEAGE, chooser=chooser)
    request = machine.next_request()
    machine.feed_candidates(request, [make_candidate("decision", t, lp, "stop") for t, lp in decide])
    assert machine.next_request().query == query
  config = AgentConfig(num_candidates=3)
  summary = rollout([Task("q1", "Q?", "ref")], ScriptedSampler(scripted({"decision": [decide]})), FakeTool(),
                    config, tmp_path / "t.jsonl", lineage=LINEAGE, progress=False,
                    chooser=lambda step_input, candidates: 2)
  (record,) = summary.records
  assert record.status == "failed" and "the chooser picked candidate 2" in record.error
