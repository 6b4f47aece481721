"""The step machine: one question's walk through decision, search, summarize, answer and the checks.

It never calls a model or a tool itself. `next_request()` says what it needs (a model step with its
prompt, or a search), and `feed_candidates` / `feed_search` give it the outcome. That keeps the
rollout loop free to batch many machines' model steps on the engine and their searches on a thread
pool, and lets tests drive every branch with scripted outcomes.

    decision --Search--> [search] --> summarize --> decision ... --Terminate--> answer
    answer --> relevance --(Revise: answer replaced)--> grounding --(Revise)--> final answer

When REMAINING_SEARCHES reaches 0 the machine terminates on the agent's behalf. A failed search is
an observation: the machine records a SelectLink that states the error, and the agent decides again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence

from restreact.agent.actions import Answer, CheckAnswer, ReviseAnswer, ResultItem, Search, SelectLink, Terminate
from restreact.agent.interfaces import SearchHit
from restreact.agent.parser import ParseError, parse_step
from restreact.agent.prompts import step_preamble
from restreact.agent.records import (Candidate, Lineage, MachineStep, ModelStep, ToolResult, ToolStep,
                                     TrajectoryRecord)
from restreact.agent.state import DEFAULT_SEARCHES, AgentState


@dataclasses.dataclass(frozen=True)
class AgentConfig:
  """How the agent samples and searches (paper: n=4 for L and S, 16 for XS; temperature 0.5; k=3)."""

  num_candidates: int = 4
  temperature: float = 0.5
  max_new_tokens: int = 256
  top_k_results: int = 3
  max_searches: int = DEFAULT_SEARCHES
  few_shot: bool = True  # False: zero-shot prompts, for fine-tuned models
  max_model_steps: int = 40  # a guard; 10 searches need at most 2 * 10 + 4 steps

  def __post_init__(self):
    if self.num_candidates < 1 or self.top_k_results < 1 or self.max_searches < 0 or self.max_new_tokens < 1:
      raise ValueError(f"invalid agent config: {self}")
    if self.temperature < 0:
      raise ValueError(f"temperature must be >= 0, got {self.temperature}")

  def fingerprint(self) -> str:
    """A short hash of every field (part of a trajectory's lineage)."""
    return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class StepRequest:
  """A model step: sample `n` continuations of `prompt` (the step's preamble + `input`)."""

  step_type: str
  input: str
  prompt: str
  n: int


@dataclasses.dataclass(frozen=True)
class SearchRequest:
  """A tool call."""

  query: str
  k: int


def choose(candidates: list[Candidate]) -> int | None:
  """The index of the lowest-perplexity candidate that parsed, or None."""
  parsed = [i for i, c in enumerate(candidates) if c.action is not None]
  return max(parsed, key=lambda i: candidates[i].mean_logprob) if parsed else None


# Picks the candidate a machine continues with: (step input, candidates) -> an index of a parsed candidate, or
# None. The default is the paper's `choose`; growth may follow its ranker instead (`grow.follow`).
Chooser = Callable[[str, list[Candidate]], "int | None"]


def make_candidate(step_type: str, text: str, logprobs, finish_reason: str) -> Candidate:
  """A candidate with its parse (or the parse error) attached."""
  try:
    return Candidate(text, tuple(float(x) for x in logprobs), finish_reason, parse_step(step_type, text))
  except ParseError as e:
    return Candidate(text, tuple(float(x) for x in logprobs), finish_reason, None, str(e))


class StepMachine:
  """The step machine for one question (see the module docstring)."""

  def __init__(self, question: str, config: AgentConfig, lineage: Lineage, *, question_id: str = "",
               reference: str | None = None, sample: int = 0, chooser: Chooser | None = None):
    self.config, self.lineage, self.chooser = config, lineage, chooser
    self.question_id, self.reference, self.sample = question_id, reference, sample
    self.state = AgentState(question, remaining_searches=config.max_searches)
    self.steps: list = []
    self.phase = "decision"  # decision, search, summarize, answer, relevance, grounding, done, failed
    self.pending_query: str | None = None
    self.next_link_id = 1
    self.error: str | None = None

  @property
  def finished(self) -> bool:
    return self.phase in ("done", "failed")

  def next_request(self) -> StepRequest | SearchRequest | None:
    """What the machine needs next; None once finished."""
    if self.phase == "decision" and self.state.remaining_searches <= 0:
      self._terminate_for_agent()
    if self.finished:
      return None
    if self.phase == "search":
      return SearchRequest(self.pending_query, self.config.top_k_results)
    if sum(isinstance(s, ModelStep) for s in self.steps) >= self.config.max_model_steps:
      self.fail(f"more than {self.config.max_model_steps} model steps")
      return None
    text = self.state.render()
    return StepRequest(self.phase, text, step_preamble(self.phase, few_shot=self.config.few_shot) + text + "\n",
                       self.config.num_candidates)

  def feed_candidates(self, request: StepRequest, candidates: list[Candidate]) -> None:
    """Record a model step's candidates and advance with the chosen one."""
    if request.step_type != self.phase:
      raise RuntimeError(f"candidates for a {request.step_type} step fed to a machine in phase {self.phase}")
    candidates = [self._check_links(c) for c in candidates]
    chosen = self._choose(request.input, candidates)
    self.steps.append(ModelStep(request.step_type, request.input, tuple(candidates), chosen))
    if chosen is None:
      errors = "; ".join(sorted({c.error or c.finish_reason for c in candidates}))
      self.fail(f"no candidate of the {request.step_type} step parsed ({errors})")
      return
    self._advance(candidates[chosen].action)

  def _choose(self, step_input: str, candidates: list[Candidate]) -> int | None:
    if self.chooser is None:
      return choose(candidates)
    chosen = self.chooser(step_input, candidates)
    if chosen is not None and not (0 <= chosen < len(candidates) and candidates[chosen].action is not None):
      raise ValueError(f"the chooser picked candidate {chosen!r}, which is not one of the "
                       f"{len(candidates)} candidates that parsed")
    return chosen if chosen is not None else choose(candidates)

  def feed_search(self, request: SearchRequest, results: Sequence[SearchHit], latency_s: float,
                  error: str | None = None) -> None:
    """Record a search's results or its error, and move on to summarize."""
    if self.phase != "search":
      raise RuntimeError(f"search results fed to a machine in phase {self.phase}")
    items = []
    for r in results if error is None else ():
      items.append(ToolResult(self.next_link_id, r.link_text, r.snippet, r.doc_id, r.score, r.url))
      self.next_link_id += 1
    self.steps.append(ToolStep(request.query, request.k, tuple(items), float(latency_s), error))
    self.pending_query = None
    if error is not None or not items:
      # The model (and so every SFT prompt) sees only that it failed: errors may name servers, never to be learnt.
      reason = "The search failed." if error is not None else "The search returned no results."
      note = SelectLink(comments=reason, selected_link_ids=(), grounded_summarization="")
      self.steps.append(MachineStep("summarize", note, "search error" if error is not None else "no results"))
      self.state.past_actions.append(note)
      self.phase = "decision"
      return
    self.state.current_results = [ResultItem(i.link_id, i.link_text, i.snippet) for i in items]
    self.phase = "summarize"

  def _check_links(self, candidate: Candidate) -> Candidate:
    """A summary may select only the link ids it was shown; otherwise the candidate is invalid."""
    if not isinstance(candidate.action, SelectLink):
      return candidate
    shown = {r.link_id for r in self.state.current_results}
    if unknown := sorted(set(candidate.action.selected_link_ids) - shown):
      return dataclasses.replace(candidate, action=None, error=f"selected link ids {unknown} were not shown")
    return candidate

  def fail(self, reason: str) -> None:
    """End the trajectory without an answer (its steps are kept)."""
    self.phase, self.error = "failed", f"{self.phase}: {reason}"

  def _terminate_for_agent(self) -> None:
    action = Terminate(thoughts="No searches remain, so I answer with what the past actions hold.")
    self.steps.append(MachineStep("decision", action, "search budget exhausted"))
    self.state.past_actions.append(action)
    self.phase = "answer"

  def _advance(self, action) -> None:
    state = self.state
    if isinstance(action, Search):
      state.past_actions.append(action)
      state.remaining_searches -= 1
      self.pending_query, self.phase = action.query, "search"
    elif isinstance(action, Terminate):
      state.past_actions.append(action)
      self.phase = "answer"
    elif isinstance(action, SelectLink):
      state.past_actions.append(action)
      state.current_results = []
      self.phase = "decision"
    elif isinstance(action, Answer):
      state.answer = action
      self.phase = "relevance"
    elif isinstance(action, (CheckAnswer, ReviseAnswer)):
      if isinstance(action, ReviseAnswer):
        state.answer = Answer(thoughts=action.thoughts, answer=action.revised_answer)
      self.phase = "grounding" if self.phase == "relevance" else "done"
    else:  # parse_step only lets the step's own records through
      raise AssertionError(f"unexpected {action!r} in phase {self.phase}")

  def record(self) -> TrajectoryRecord:
    """The trajectory so far as a record (final once `finished`)."""
    status = "done" if self.phase == "done" else "failed"
    answer = self.state.answer.answer if self.phase == "done" and self.state.answer is not None else None
    error = self.error if self.phase == "failed" else (None if self.phase == "done" else f"unfinished ({self.phase})")
    return TrajectoryRecord(self.question_id, self.state.question, tuple(self.steps), answer, status, self.lineage,
                            self.reference, error, self.sample)
