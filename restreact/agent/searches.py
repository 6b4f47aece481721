"""Where a rollout's searches run: on daemon worker threads, with a wall-clock deadline per search, and in a
multi-process run on process 0's threads alone.

The rollout loop asks `returned()` once per pass for the searches that came back since the last pass.
A search that has not returned `deadline` seconds after it was asked is given back as failed (timed out):
its thread is left to finish on its own and its late answer is dropped. The workers are daemon threads,
so a hung call never blocks an interrupt or the interpreter's exit.

With several processes, the order in which searches return differs from host to host, and so would the
engine's batches, which must be the same on every host: process 0 runs every search and hands each pass's
returned ones, with their results, to the others (`multihost.agree`), which never call the tool. Every
host then sees the same tool results in the same pass, and the trajectories advance identically.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
import threading
import time
from typing import Any

from etils import epy

from restreact import multihost
from restreact.agent.interfaces import SearchBackend
from restreact.tools import SearchResult

with epy.lazy_imports():  # jax loads on first use, as in multihost
  import jax

# (results, error or None, seconds): what a search gives the agent; a failure is an observation, never a crash
Outcome = tuple[list[SearchResult], str | None, float]


def timed_search(tool: SearchBackend, query: str, k: int) -> Outcome:
  start = time.perf_counter()
  try:
    return tool.search(query, k), None, time.perf_counter() - start
  except Exception as e:
    return [], f"{type(e).__name__}: {e}", time.perf_counter() - start


class SearchPool:
  """Outstanding searches, each tagged with its owner; `returned()` hands back (owner, outcome) pairs."""

  def __init__(self, tool: SearchBackend, workers: int, *, deadline: float | None = None):
    if deadline is not None and not deadline > 0:
      raise ValueError(f"deadline must be a positive number of seconds or None, got {deadline!r}")
    self.tool, self.deadline = tool, deadline
    self.lockstep = jax.process_count() > 1
    self._jobs: queue.SimpleQueue | None = None
    if multihost.is_writer():
      self._jobs = queue.SimpleQueue()
      for i in range(workers):
        threading.Thread(target=self._work, args=(self._jobs,), name=f"search-{i}", daemon=True).start()
    self._workers = workers
    self._pending: dict[int, tuple[Any, cf.Future | None, float]] = {}  # ticket -> (owner, future, asked at)
    self._next_ticket = 0

  def _work(self, jobs: queue.SimpleQueue) -> None:
    while (job := jobs.get()) is not None:
      future, query, k = job
      if future.set_running_or_notify_cancel():
        future.set_result(timed_search(self.tool, query, k))

  def __len__(self) -> int:
    return len(self._pending)

  def submit(self, owner, query: str, k: int) -> None:
    future = None
    if self._jobs is not None:
      future = cf.Future()
      self._jobs.put((future, query, k))
    self._pending[self._next_ticket] = (owner, future, time.monotonic())
    self._next_ticket += 1

  def returned(self) -> list[tuple[Any, Outcome]]:
    """The searches that returned (or ran out of time) since the last call, in submission order; the same list
    on every process."""
    if not self._pending:  # every process knows this without asking process 0
      return []
    done = [] if self._jobs is None else [(t, outcome) for t, (_, future, asked) in self._pending.items()
                                          if (outcome := self._outcome(future, asked)) is not None]
    if self.lockstep:
      wire = multihost.agree([[t, [r.to_dict() for r in results], error, seconds]
                              for t, (results, error, seconds) in done])
      done = [(t, ([SearchResult.from_dict(r) for r in results], error, seconds))
              for t, results, error, seconds in wire]
    return [(self._pending.pop(ticket)[0], outcome) for ticket, outcome in done]

  def _outcome(self, future: cf.Future, asked: float) -> Outcome | None:
    if future.done():
      return future.result()
    waited = time.monotonic() - asked
    if self.deadline is not None and waited >= self.deadline:
      future.cancel()  # still queued: it never runs; running: its answer is dropped
      return [], f"SearchTimeout: no answer within {self.deadline:g}s", waited
    return None

  def wait(self) -> None:
    """Block until a search returns or reaches its deadline (process 0; the others wait for its word in the next
    `returned()`)."""
    if self._jobs is None or not self._pending:
      return
    futures = [future for _, future, _ in self._pending.values()]
    timeout = None
    if self.deadline is not None:
      first = min(asked for _, _, asked in self._pending.values())
      timeout = max(0.0, first + self.deadline - time.monotonic())
    cf.wait(futures, timeout=timeout, return_when=cf.FIRST_COMPLETED)

  def close(self) -> None:
    """Drop queued searches and let idle workers end; a worker stuck in a call is a daemon and is not waited for."""
    if self._jobs is None:
      return
    for _, future, _ in self._pending.values():
      future.cancel()
    for _ in range(self._workers):
      self._jobs.put(None)
    self._jobs = None

  def __enter__(self):
    return self

  def __exit__(self, *_):
    self.close()
