"""Where a rollout's searches run: on worker threads, and in a multi-process run on process 0's alone.

The rollout loop asks `returned()` once per pass for the searches that came back since the last pass.
With one process that is whatever the threads finished. With several, the order in which searches
return differs from host to host, and so would the engine's batches, which must be the same on every
host: process 0 runs every search and hands each pass's returned ones, with their results, to the
others (`multihost.agree`), which never call the tool. Every host then sees the same tool results in the
same pass, and the trajectories advance identically everywhere.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Any

import jax

from restreact import multihost
from restreact.tools import SearchResult

# (results, error or None, seconds): what a search gives the agent; a failure is an observation, never a crash
Outcome = tuple[list[SearchResult], str | None, float]


def timed_search(tool, query: str, k: int) -> Outcome:
  start = time.perf_counter()
  try:
    return tool.search(query, k), None, time.perf_counter() - start
  except Exception as e:
    return [], f"{type(e).__name__}: {e}", time.perf_counter() - start


class SearchPool:
  """Outstanding searches, each tagged with its owner; `returned()` hands back (owner, outcome) pairs."""

  def __init__(self, tool, workers: int):
    self.tool = tool
    self.lockstep = jax.process_count() > 1
    self._threads = cf.ThreadPoolExecutor(workers, thread_name_prefix="search") if multihost.is_writer() else None
    self._pending: dict[int, tuple[Any, cf.Future | None]] = {}  # ticket -> (owner, future on process 0)
    self._next_ticket = 0

  def __len__(self) -> int:
    return len(self._pending)

  def submit(self, owner, query: str, k: int) -> None:
    future = self._threads.submit(timed_search, self.tool, query, k) if self._threads else None
    self._pending[self._next_ticket] = (owner, future)
    self._next_ticket += 1

  def returned(self) -> list[tuple[Any, Outcome]]:
    """The searches that returned since the last call, in submission order; the same list on every process."""
    if not self._pending:  # every process knows this without asking process 0
      return []
    done = [] if self._threads is None else \
        [(ticket, future.result()) for ticket, (_, future) in self._pending.items() if future.done()]
    if self.lockstep:
      wire = multihost.agree([[t, [r.to_dict() for r in results], error, seconds]
                              for t, (results, error, seconds) in done])
      done = [(t, ([SearchResult.from_dict(r) for r in results], error, seconds))
              for t, results, error, seconds in wire]
    return [(self._pending.pop(ticket)[0], outcome) for ticket, outcome in done]

  def wait(self) -> None:
    """Block until a search returns (process 0; the others wait for its word in the next `returned()`)."""
    if self._threads is not None and self._pending:
      cf.wait([future for _, future in self._pending.values()], return_when=cf.FIRST_COMPLETED)

  def close(self, cancel: bool = False) -> None:
    """Shut the threads down; `cancel` drops queued searches (on an interrupt)."""
    if self._threads is not None:
      self._threads.shutdown(wait=True, cancel_futures=cancel)

  def __enter__(self):
    return self

  def __exit__(self, kind, *_):
    self.close(cancel=kind is not None)
