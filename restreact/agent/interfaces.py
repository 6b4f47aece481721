"""Where the agent meets a model and a search tool: the two interfaces the rollout loop talks to.

Any object with these members works (structural typing, as tunix's sampler interface): the engine
(`samplers.EngineSampler`), scripted policies (`samplers.ScriptedSampler`) and OpenAI-compatible servers
(`restreact.serve.sampler.RemoteSampler`) are Samplers; every `restreact.tools.SearchTool` is a SearchBackend.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
  from restreact.agent.machine import StepMachine, StepRequest
  from restreact.agent.records import Candidate


@runtime_checkable
class Sampler(Protocol):
  """Samples a model step's candidates asynchronously: `submit` a step, `poll` for finished ones."""

  @property
  def busy(self) -> bool:
    """Whether any submitted step has not been returned by `poll` yet."""

  def submit(self, request: StepRequest, machine: StepMachine) -> Hashable:
    """Start sampling `request.n` candidates of the machine's next step; returns a handle."""

  def poll(self) -> list[tuple[Hashable, list[Candidate]]]:
    """Do a bounded amount of work (one decode round) and return the steps that finished, by handle."""

  def cancel(self, handle: Hashable) -> None:
    """Stop a submitted step whose trajectory ended (its slots are freed)."""


@runtime_checkable
class SearchHit(Protocol):
  """One result of a search, as the step machine numbers and records it."""

  link_text: str
  snippet: str
  doc_id: str
  score: float | None
  url: str | None


@runtime_checkable
class SearchBackend(Protocol):
  """A search engine: the top `k` hits for a query; failures raise `restreact.tools.SearchError`."""

  name: str

  def search(self, query: str, k: int) -> Sequence[SearchHit]:
    """The hits, best first."""
