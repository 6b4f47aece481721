"""A step's candidates from a model behind an OpenAI-compatible server: the pilot's policy when
`config.pilot.source` is a reference `openai:MODEL@URL` (the prompted base L served by vLLM, say).

Each step asks for n samples in one request, with per-token log-probs (the candidates' perplexity), the end
marker as the stop string and the step's seed, so a rerun asks the same. Requests run on a thread pool; `poll`
hands back the ones that finished, waiting briefly when none has, like a decode round would.
"""

from __future__ import annotations

import concurrent.futures

import jax

from restreact.agent.machine import AgentConfig, StepRequest, StepMachine, make_candidate
from restreact.agent.records import Candidate
from restreact.agent.samplers import step_seed
from restreact.prompts import END_MARKER
from restreact.serve.client import OpenAIClient, RequestRejected

POLL_WAIT_S = 0.05


class RemoteSampler:
  """The Sampler interface of `restreact.agent.samplers` over an `OpenAIClient`.

  `chat`: send each prompt as a user message (/chat/completions: the server applies the model's chat template),
  else as text to continue (/completions). A step the server refuses (prompt too long) fails its trajectory, as
  the local engine's ValueError does; other failures stop the stage.
  """

  def __init__(self, client: OpenAIClient, config: AgentConfig, *, seed: int = 0, chat: bool = False):
    if jax.process_count() > 1:  # every process would sample on its own and their trajectories would differ
      raise ValueError("a remote policy (config.pilot.source='openai:...') runs in single-process launches only")
    self.client, self.config, self.seed, self.chat = client, config, seed, chat
    self._pool = concurrent.futures.ThreadPoolExecutor(max(1, client.settings.workers), thread_name_prefix="remote")
    self._pending: dict[int, tuple[concurrent.futures.Future, str]] = {}
    self._next = 0

  @property
  def busy(self) -> bool:
    return bool(self._pending)

  def submit(self, request: StepRequest, machine: StepMachine) -> int:
    self._next += 1
    future = self._pool.submit(self.client.sample, request.prompt, chat=self.chat, n=request.n,
                               max_tokens=self.config.max_new_tokens, temperature=self.config.temperature,
                               stop=(END_MARKER,), seed=step_seed(self.seed, machine), logprobs=True)
    self._pending[self._next] = (future, request.step_type)
    return self._next

  def poll(self) -> list[tuple[object, list[Candidate]]]:
    """The steps whose replies came back, with their parsed candidates; raises what a failed request raised."""
    concurrent.futures.wait([f for f, _ in self._pending.values()], timeout=POLL_WAIT_S,
                            return_when=concurrent.futures.FIRST_COMPLETED)
    out = []
    for handle, (future, step_type) in list(self._pending.items()):
      if not future.done():
        continue
      del self._pending[handle]
      try:
        samples = future.result()
      except RequestRejected as e:  # this step only: its trajectory ends with no candidates to choose from
        samples = []
        error = str(e)
      else:
        error = ""
      candidates = []
      for s in samples:
        ended = s.stopped_by == END_MARKER
        text = s.text + END_MARKER if ended else s.text  # keep the marker SFT must teach, as EngineSampler does
        candidates.append(make_candidate(step_type, text, s.logprobs, "stop" if ended else s.finish_reason))
      if not candidates:
        candidates = [Candidate("", (), "error", None, f"the server refused the step: {error}"[:500])]
      out.append((handle, candidates))
    return out

  def cancel(self, handle: int) -> None:
    if handle in self._pending:
      self._pending.pop(handle)[0].cancel()
