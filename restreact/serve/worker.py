"""The thread that owns the engine: HTTP handler threads hand it jobs and wait on futures.

The engine is not thread-safe (its queue, slots and host-side state change in `submit` and `step`), so only this
thread touches it. It takes every waiting job, submits them, runs one decode round, resolves the futures of the
requests that round finished, and repeats; with nothing in flight it sleeps until a job arrives. Requests from
many clients share the slots exactly as a rollout's requests do.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future

from restreact.generate import Engine, Request

log = logging.getLogger(__name__)


class EngineStopped(RuntimeError):
  """The worker was stopped, or its engine failed, before a request finished."""


class EngineWorker:
  """Serves `submit` and `call` jobs on one thread over `engine` (see module docstring)."""

  def __init__(self, engine: Engine):
    self.engine = engine
    self._jobs: queue.SimpleQueue = queue.SimpleQueue()
    self._waiting: dict[int, tuple[Request, Future]] = {}  # request id -> request, its client's future
    self._failed: BaseException | None = None
    self._stopped = False
    self._thread = threading.Thread(target=self._loop, name="restreact-engine", daemon=True)
    self._thread.start()

  def submit(self, prompt: Sequence[int], **settings) -> Future:
    """A future of the finished `Request` (`Engine.submit`'s arguments); a ValueError from the engine is its
    exception."""
    future: Future = Future()
    self._put(("submit", (list(prompt), settings), future))
    return future

  def call(self, fn: Callable[[], object]) -> Future:
    """A future of `fn()` run on the engine's thread (device work that must not overlap a decode round)."""
    future: Future = Future()
    self._put(("call", fn, future))
    return future

  def cancel(self, future: Future) -> None:
    """Give up on a submitted request (a client that timed out): its slots are freed."""
    self._put(("cancel", future, None))

  def stop(self, timeout: float = 30.0) -> None:
    """Stop the thread; requests still waiting fail with EngineStopped."""
    self._put(("stop", None, None))
    self._thread.join(timeout)

  def _put(self, job) -> None:
    if self._stopped or self._failed is not None:
      raise EngineStopped(f"the engine is not running ({self._failed or 'stopped'})")
    self._jobs.put(job)

  def _loop(self) -> None:
    try:
      while True:
        jobs = [self._jobs.get()] if not self.engine.pending else []  # idle: sleep until there is work
        while True:
          try:
            jobs.append(self._jobs.get_nowait())
          except queue.Empty:
            break
        if not self._run_jobs(jobs):
          break
        if self.engine.pending:
          for request in self.engine.step():
            _, future = self._waiting.pop(request.id, (None, None))
            if future is not None:
              future.set_result(request)
    except BaseException as e:  # a device error ends the engine: every waiting client hears why
      log.exception("the engine failed; no further requests are served")
      self._failed = e
      self._fail_all(EngineStopped(f"the engine failed: {type(e).__name__}: {e}"))
      return
    self._stopped = True
    self._fail_all(EngineStopped("the server is shutting down"))

  def _run_jobs(self, jobs: list) -> bool:
    """Run jobs in order; False once a stop job is seen."""
    for kind, payload, future in jobs:
      if kind == "stop":
        return False
      if kind == "cancel":
        self._cancel(payload)
      elif future.set_running_or_notify_cancel():
        try:
          if kind == "call":
            future.set_result(payload())
          else:
            prompt, settings = payload
            request = self.engine.submit(prompt, **settings)
            self._waiting[request.id] = (request, future)
        except Exception as e:  # a bad request (ValueError) fails only its own future
          future.set_exception(e)
    return True

  def _cancel(self, future: Future) -> None:
    for rid, (request, waiting) in list(self._waiting.items()):
      if waiting is future:
        self.engine.cancel(request)
        del self._waiting[rid]
        future.set_exception(EngineStopped("cancelled"))

  def _fail_all(self, error: Exception) -> None:
    for _, future in self._waiting.values():
      if not future.done():
        future.set_exception(error)
    self._waiting.clear()
    while True:  # jobs nobody will run
      try:
        _, _, future = self._jobs.get_nowait()
      except queue.Empty:
        break
      if future is not None and future.set_running_or_notify_cancel():
        future.set_exception(error)
