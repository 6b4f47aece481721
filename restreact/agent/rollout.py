"""The rollout loop: many trajectories in flight, model steps batched on the engine, searches on threads.

Each pass of the loop (1) starts new trajectories while fewer than `max_in_flight` are active,
(2) feeds back every search that has returned, (3) runs one decode round for every trajectory
waiting on the model. A trajectory that reaches a search hands it to the thread pool and holds no
engine slot while it waits, so the engine keeps decoding the others. When nothing is decoding, the
loop waits for the first search to return.

Finished trajectories are appended to the output JSONL (fsynced) the moment they end, so on
SIGTERM or Ctrl-C every finished trajectory is on disk; a rerun skips what the file already holds.
One trajectory's failure (a prompt too long, a bad model output, a broken tool) ends only that one.

In a multi-process run every process runs this loop in step (the engine is one program over all of
them), process 0 alone searches (`searches.py`) and writes the file, and what the file held at the
start is read by process 0 and handed to the others.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time
import traceback
from collections.abc import Sequence

from tqdm.auto import tqdm

from restreact import multihost
from restreact.agent.interfaces import Sampler, SearchBackend
from restreact.agent.machine import AgentConfig, Chooser, SearchRequest, StepMachine, StepRequest
from restreact.agent.records import Lineage, ToolStep, TrajectoryRecord, append_records, read_records
from restreact.agent.searches import SearchPool


@dataclasses.dataclass(frozen=True)
class Task:
  """One trajectory to grow: a question (with its reference answer, if known) and a sample index."""

  question_id: str
  question: str
  reference: str | None = None
  sample: int = 0

  @property
  def key(self) -> str:
    return f"{self.question_id}#{self.sample}"


class SearchOutage(RuntimeError):
  """Too many of a rollout's searches failed: its trajectories would teach the agent a broken tool."""


class RolloutDeadline(TimeoutError):
  """The rollout ran past its wall-clock limit; the trajectories it finished are on disk, a rerun continues."""


MIN_SEARCHES_FOR_OUTAGE = 8  # fewer searches than this are too few to call an outage before the rollout ends


@dataclasses.dataclass
class RolloutSummary:
  """What a rollout did (the records themselves are in the output file)."""

  done: int = 0
  failed: int = 0
  skipped: int = 0  # already in the output file from an earlier run
  searches: int = 0
  search_errors: int = 0
  model_steps: int = 0
  seconds: float = 0.0
  records: list[TrajectoryRecord] = dataclasses.field(default_factory=list)  # the tasks' records, skipped ones too


@contextlib.contextmanager
def _sigterm_as_interrupt():
  """Let SIGTERM unwind like Ctrl-C (only the main thread may install handlers), unless a handler is already
  installed: the trainer's, during the dev eval, which saves a checkpoint once the eval returns; or JAX's
  preemption notifier in a multi-process run (replaced, it would never tell the trainer's sync point; the
  trajectories finished before the scheduler's kill are on disk either way)."""
  if threading.current_thread() is not threading.main_thread() or multihost.preemption_service() or \
      signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
    yield
    return

  def handler(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")

  previous = signal.signal(signal.SIGTERM, handler)
  try:
    yield
  finally:
    signal.signal(signal.SIGTERM, previous)


def rollout(tasks: Sequence[Task], sampler: Sampler, tool: SearchBackend, config: AgentConfig,
            out_path: str | os.PathLike, *, lineage: Lineage, max_in_flight: int = 64, tool_workers: int = 16,
            search_deadline: float | None = 60.0, max_failure_rate: float | None = None,
            trajectory_deadline: float | None = None,
            rollout_deadline: float | None = None, progress: bool = True,
            chooser: Chooser | None = None) -> RolloutSummary:
  """Grow one trajectory per task into `out_path` (JSONL), skipping tasks the file already holds.

  A search not answered within `search_deadline` seconds fails its step (an observation, as any tool error).
  When more than `max_failure_rate` of the searches in the file's trajectories fail (counted as they return,
  once there are a few, and over the whole file at the start and the end), SearchOutage stops the rollout.
  A trajectory still running `trajectory_deadline` seconds after it started fails at its next step; a rollout
  still running after `rollout_deadline` seconds stops with RolloutDeadline. None: no limit. `chooser` picks the
  candidate each trajectory continues with (None: the lowest-perplexity one, as the paper does)."""
  if max_in_flight < 1 or tool_workers < 1:
    raise ValueError(f"max_in_flight ({max_in_flight}) and tool_workers ({tool_workers}) must be positive")
  if len({t.key for t in tasks}) != len(tasks):
    raise ValueError("tasks must have distinct (question_id, sample) keys")
  keys = {t.key for t in tasks}
  held = multihost.from_writer(lambda: [r.to_json() for r in read_records(out_path) if r.key in keys])
  summary = RolloutSummary(records=[TrajectoryRecord.from_json(line) for line in held])
  existing = {r.key for r in summary.records}
  todo = [t for t in tasks if t.key not in existing]
  summary.skipped = len(tasks) - len(todo)
  start = time.perf_counter()
  loop = _Loop(sampler, config, out_path, lineage, summary, max_failure_rate, trajectory_deadline, chooser)
  loop.check_outage(final=True)  # a file grown through an outage stays refused until it is deleted
  with _sigterm_as_interrupt(), SearchPool(tool, tool_workers, deadline=search_deadline) as searches, \
      tqdm(total=len(tasks), initial=summary.skipped, desc="rollout", unit="traj", disable=not progress) as bar:
    loop.searches, loop.bar = searches, bar
    try:
      loop.run(todo, max_in_flight, None if rollout_deadline is None else start + rollout_deadline)
    except BaseException:
      loop.abandon()
      raise
    finally:
      summary.seconds = time.perf_counter() - start
  loop.check_outage(final=True)
  return summary


class _Loop:
  """The state of one rollout: active machines, outstanding model steps and searches."""

  def __init__(self, sampler, config, out_path, lineage, summary, max_failure_rate, trajectory_deadline, chooser):
    self.sampler, self.config, self.chooser = sampler, config, chooser
    self.out_path, self.lineage, self.summary = out_path, lineage, summary
    self.max_failure_rate, self.trajectory_deadline = max_failure_rate, trajectory_deadline
    self.started: dict[StepMachine, float] = {}  # when each active trajectory started
    tool_steps = [s for r in summary.records for s in r.steps if isinstance(s, ToolStep)]
    self.searched = len(tool_steps)  # searches in the file's trajectories and this run's, and how many failed
    self.search_failed = sum(s.error is not None for s in tool_steps)
    self.first_errors = list(dict.fromkeys(s.error for s in tool_steps if s.error is not None))[:3]
    self.handles: dict = {}  # sampler handle -> (machine, request)
    self.active = 0
    self.searches: SearchPool | None = None
    self.bar = None

  def run(self, todo: list[Task], max_in_flight: int, stop_at: float | None) -> None:
    queue = list(reversed(todo))
    while queue or self.active:
      if stop_at is not None and time.perf_counter() > stop_at:
        raise RolloutDeadline(
            f"the rollout into {self.out_path} ran past its deadline with {len(queue) + self.active} trajectories "
            f"unfinished ({self.summary.done + self.summary.failed} finished this run, saved); rerun to continue, "
            "or raise config.engine.rollout_deadline")
      while queue and self.active < max_in_flight:
        task = queue.pop()
        machine = StepMachine(task.question, self.config, self.lineage, question_id=task.question_id,
                             reference=task.reference, sample=task.sample, chooser=self.chooser)
        self.active += 1
        self.started[machine] = time.perf_counter()
        self._advance(machine)
      for (machine, request), (results, error, latency) in self.searches.returned():
        self.summary.searches += 1
        self.summary.search_errors += error is not None
        self.searched += 1
        if error is not None:
          self.search_failed += 1
          if len(self.first_errors) < 3 and error not in self.first_errors:
            self.first_errors.append(error)
        self._guarded(machine, machine.feed_search, request, results, latency, error)
      self.check_outage(final=False)
      if self.sampler.busy:
        for handle, candidates in self.sampler.poll():
          machine, request = self.handles.pop(handle)
          self.summary.model_steps += 1
          self._guarded(machine, machine.feed_candidates, request, candidates)
      elif self.searches:
        self.searches.wait()
      elif self.active:
        raise RuntimeError("rollout stalled: active trajectories wait on nothing")

  def check_outage(self, *, final: bool) -> None:
    """SearchOutage when the share of failed searches is over the limit (mid-run: once there are a few)."""
    if self.max_failure_rate is None or not self.searched or (not final and self.searched < MIN_SEARCHES_FOR_OUTAGE):
      return
    if self.search_failed / self.searched > self.max_failure_rate:
      raise SearchOutage(
          f"{self.search_failed} of {self.searched} searches failed ({self.search_failed / self.searched:.0%}, more "
          f"than the {self.max_failure_rate:.0%} allowed by config.tool.max_failure_rate); first errors: "
          f"{'; '.join(self.first_errors)}. Fix the search tool, then delete {self.out_path} (its trajectories saw "
          f"the outage and must not become training data) and rerun.")

  def _guarded(self, machine: StepMachine, feed, *args) -> None:
    try:
      feed(*args)
    except Exception as e:  # a bug or bad data in one trajectory ends that trajectory only
      machine.fail(f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    self._advance(machine)

  def _advance(self, machine: StepMachine) -> None:
    deadline = self.trajectory_deadline
    if deadline is not None and not machine.finished and time.perf_counter() - self.started[machine] > deadline:
      machine.fail(f"deadline: the trajectory ran for more than {deadline:g} s (config.engine.trajectory_deadline)")
    try:
      request = machine.next_request()
      if isinstance(request, StepRequest):
        self.handles[self.sampler.submit(request, machine)] = (machine, request)
      elif isinstance(request, SearchRequest):
        self.searches.submit((machine, request), request.query, request.k)
    except Exception as e:  # e.g. a prompt longer than the engine's max_len
      machine.fail(f"{type(e).__name__}: {e}")
    if machine.finished:
      self._finish(machine)

  def _finish(self, machine: StepMachine) -> None:
    record = machine.record()
    try:
      record.to_json().encode("utf-8")
    except Exception as e:  # text no file can hold (the parser rejects lone surrogates; this is the last guard)
      record = dataclasses.replace(record, steps=(), final_answer=None, status="failed",
                                   error=f"the record could not be written: {type(e).__name__}: {e}")
    self.started.pop(machine, None)
    if multihost.is_writer():
      append_records(self.out_path, [record])
    self.summary.records.append(record)
    self.summary.done += record.status == "done"
    self.summary.failed += record.status == "failed"
    self.active -= 1
    self.bar.update(1)
    self.bar.set_postfix(done=self.summary.done, failed=self.summary.failed, searching=len(self.searches),
                         refresh=False)

  def abandon(self) -> None:
    """On interrupt: withdraw outstanding model steps (the search pool drops queued searches; finished records
    are on disk)."""
    for handle in list(self.handles):
      with contextlib.suppress(Exception):
        self.sampler.cancel(handle)
