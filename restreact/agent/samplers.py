"""Where a model step's candidates come from: the generation engine, or a scripted policy (tests, seeds).

Both are `interfaces.Sampler`s: `submit(request, machine)`, then `(handle, candidates)` pairs from `poll()`;
`busy` says whether anything is outstanding. The rollout loop only talks to that interface.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable

from restreact.agent.actions import STEP_TYPES, Action, statement
from restreact.agent.machine import AgentConfig, StepRequest, StepMachine, make_candidate
from restreact.agent.prompts import step_preamble
from restreact.agent.records import Candidate
from restreact.prompts import END_MARKER


def step_seed(seed: int, machine: StepMachine) -> int:
  """A sampling seed fixed by (run seed, question, sample, step): reruns sample the same, whatever else runs."""
  text = f"{seed}|{machine.question_id}|{machine.sample}|{len(machine.steps)}"
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


class EngineSampler:
  """Candidates from a `restreact.generate.Engine`.

  The engine's prefix cache reuses whatever a step's prompt shares with earlier prompts (the preamble, the
  question, the trajectory's past actions); each step type's preamble is also pinned there, so it is
  prefilled once and never evicted.
  """

  def __init__(self, engine, config: AgentConfig, *, seed: int = 0, reuse_preambles: bool = True):
    self.engine, self.config, self.seed = engine, config, seed
    self._requests: dict[int, tuple[object, str]] = {}  # handle (the engine's request id) -> request, step type
    if reuse_preambles:
      for step_type in STEP_TYPES:
        engine.register_prefix(step_preamble(step_type, few_shot=config.few_shot))

  @property
  def busy(self) -> bool:
    return self.engine.pending > 0

  def submit(self, request: StepRequest, machine: StepMachine):
    """Queue the step's n samples; ValueError when the prompt does not fit the engine."""
    handle = self.engine.submit(request.prompt, n=request.n, max_new_tokens=self.config.max_new_tokens,
                                temperature=self.config.temperature, stop=(END_MARKER,),
                                seed=step_seed(self.seed, machine))
    self._requests[handle.id] = (handle, request.step_type)
    return handle.id

  def poll(self) -> list[tuple[object, list[Candidate]]]:
    """Run one decode round; the steps it finished, with their parsed candidates."""
    out = []
    for finished in self.engine.step():
      _, step_type = self._requests.pop(finished.id)
      candidates = []
      for c in finished.completions():
        text = c.text + END_MARKER if c.finish_reason == "stop" else c.text  # keep the marker SFT must teach
        candidates.append(make_candidate(step_type, text, c.logprobs, c.finish_reason))
      out.append((finished.id, candidates))
    return out

  def cancel(self, handle: int) -> None:
    if handle in self._requests:
      self.engine.cancel(self._requests.pop(handle)[0])


# A policy answers a step with n candidate texts (or actions), each with its token log-probs.
Policy = Callable[[StepMachine, StepRequest], list[tuple[str | Action, list[float]]]]


class ScriptedSampler:
  """Candidates from a Python policy, handed back after `delay_polls` polls (to interleave like an engine)."""

  def __init__(self, policy: Policy, *, delay_polls: int = 0):
    self.policy, self.delay_polls = policy, delay_polls
    self._queue: collections.deque = collections.deque()
    self._next = 0
    self.polls = 0

  @property
  def busy(self) -> bool:
    return bool(self._queue)

  def submit(self, request: StepRequest, machine: StepMachine):
    outputs = self.policy(machine, request)
    candidates = []
    for text, logprobs in outputs:
      text = statement(text) if isinstance(text, Action) else text
      candidates.append(make_candidate(request.step_type, text, logprobs, "stop"))
    self._next += 1
    self._queue.append((self._next, self.polls + self.delay_polls, candidates))
    return self._next

  def poll(self) -> list[tuple[object, list[Candidate]]]:
    self.polls += 1
    out = []
    while self._queue and self._queue[0][1] < self.polls:
      handle, _, candidates = self._queue.popleft()
      out.append((handle, candidates))
    return out

  def cancel(self, handle) -> None:
    self._queue = collections.deque(q for q in self._queue if q[0] != handle)
