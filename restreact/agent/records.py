"""Trajectory records: everything one question's run produced, as schema-versioned JSONL.

A record keeps each model step's rendered input, all sampled candidates with their log-probs and
which one was chosen, each tool call with its results, latency and error, the final answer, and
the lineage (model, generation, config fingerprint). `TrajectoryRecord.from_json(r.to_json()) == r`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

from restreact.agent.actions import ALL_ACTIONS, Action
from restreact.agent.parser import ParseError, parse_action
from restreact.jsonl import append_lines, read_lines

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One sampled continuation; `error` says why it did not parse (then `action` is None)."""

  text: str
  logprobs: tuple[float, ...]
  finish_reason: str
  action: Action | None = None
  error: str | None = None

  @property
  def mean_logprob(self) -> float:
    """Average token log-prob (minus the log-perplexity); the lowest-perplexity candidate wins."""
    return sum(self.logprobs) / len(self.logprobs) if self.logprobs else 0.0

  @property
  def parsed(self) -> Action | None:
    """The record this candidate parsed to (None if it did not)."""
    return self.action


@dataclasses.dataclass(frozen=True)
class ModelStep:
  """One LLM step: the rendered state it saw, the candidates, and the chosen index (None: none parsed)."""

  step_type: str
  input: str
  candidates: tuple[Candidate, ...]
  chosen: int | None
  kind: str = "model"

  @property
  def action(self) -> Action | None:
    """The chosen candidate's record."""
    return None if self.chosen is None else self.candidates[self.chosen].action


@dataclasses.dataclass(frozen=True)
class ToolResult:
  """One search hit as a trajectory records it: the backend's hit (`restreact.tools.SearchResult`, which has no
  link id: numbering is the trajectory's) with the link id it was shown under. The prompt shows only the
  `actions.ResultItem` part (link id, title, snippet); doc id, score and url are provenance for analysis."""

  link_id: int
  link_text: str
  snippet: str
  doc_id: str = ""
  score: float | None = None
  url: str | None = None


@dataclasses.dataclass(frozen=True)
class ToolStep:
  """One search: the query, what came back (or the error), and how long it took."""

  query: str
  k: int
  results: tuple[ToolResult, ...]
  latency_s: float
  error: str | None = None
  kind: str = "tool"


@dataclasses.dataclass(frozen=True)
class MachineStep:
  """A step the machine takes without the model (a Terminate when the search budget is spent)."""

  step_type: str
  action: Action
  reason: str
  kind: str = "machine"


@dataclasses.dataclass(frozen=True)
class Lineage:
  """Which policy produced a trajectory."""

  model: str
  generation: int
  config_fingerprint: str


@dataclasses.dataclass(frozen=True)
class TrajectoryRecord:
  """One question's run. status: "done" (an answer) or "failed" (`error` says where and why)."""

  question_id: str
  question: str
  steps: tuple[ModelStep | ToolStep | MachineStep, ...]
  final_answer: str | None
  status: str
  lineage: Lineage
  reference: str | None = None
  error: str | None = None
  sample: int = 0  # which of the trajectories grown for this question
  schema_version: int = SCHEMA_VERSION

  @property
  def key(self) -> str:
    """Unique within a run: the question id and the sample index."""
    return f"{self.question_id}#{self.sample}"

  def model_steps(self) -> list[ModelStep]:
    """The LLM steps, in order (what ranking and fine-tuning use)."""
    return [s for s in self.steps if isinstance(s, ModelStep)]

  def to_json(self) -> str:
    """One JSON line."""
    return json.dumps(_encode(self), ensure_ascii=False, sort_keys=True)

  @classmethod
  def from_json(cls, line: str) -> TrajectoryRecord:
    """The record a line holds; ValueError names what is wrong with it."""
    raw = json.loads(line)
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
      raise ValueError(f"trajectory schema version {version!r} is not supported (this code reads "
                       f"{SCHEMA_VERSION})")
    try:
      return _decode_record(raw)
    except (KeyError, TypeError, ParseError) as e:
      raise ValueError(f"malformed trajectory record {raw.get('question_id')!r}: {type(e).__name__}: {e}") from None


def _action_code(action: Action | None) -> str | None:
  return None if action is None else action.to_code()


def _action(code: str | None) -> Action | None:
  return None if code is None else parse_action(f"ACTION_SELECTED = {code}", ALL_ACTIONS)


def _encode(obj):
  if isinstance(obj, Action):
    return obj.to_code()
  if dataclasses.is_dataclass(obj):
    return {f.name: _encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
  if isinstance(obj, (list, tuple)):
    return [_encode(v) for v in obj]
  return obj


def _decode_step(raw: dict):
  kind = raw["kind"]
  if kind == "model":
    candidates = tuple(Candidate(c["text"], tuple(c["logprobs"]), c["finish_reason"], _action(c["action"]),
                                 c["error"]) for c in raw["candidates"])
    return ModelStep(raw["step_type"], raw["input"], candidates, raw["chosen"])
  if kind == "tool":
    results = tuple(ToolResult(**r) for r in raw["results"])
    return ToolStep(raw["query"], raw["k"], results, raw["latency_s"], raw["error"])
  if kind == "machine":
    return MachineStep(raw["step_type"], _action(raw["action"]), raw["reason"])
  raise KeyError(f"unknown step kind {kind!r}")


def _decode_record(raw: dict) -> TrajectoryRecord:
  fields = {f.name for f in dataclasses.fields(TrajectoryRecord)}
  if unknown := set(raw) - fields:
    raise KeyError(f"unknown fields {sorted(unknown)}")
  values = dict(raw)
  values["steps"] = tuple(_decode_step(s) for s in raw["steps"])
  values["lineage"] = Lineage(**raw["lineage"])
  return TrajectoryRecord(**values)


def append_records(path: str | os.PathLike, records: list[TrajectoryRecord]) -> None:
  """Append records and make them durable before returning (a crash after this loses none of them); a torn
  last line is cut off first (`jsonl.append_lines`)."""
  append_lines(path, [record.to_json() for record in records])


def read_records(path: str | os.PathLike) -> Iterator[TrajectoryRecord]:
  """Records in file order. A torn last line (a crash mid-write) is skipped; a bad line elsewhere is an error."""
  path = Path(path)
  if not path.exists():
    return
  lines = read_lines(path)
  last = len(lines) - 1
  for number, line in enumerate(lines):
    if not line.strip():
      continue
    try:
      yield TrajectoryRecord.from_json(line)
    except (ValueError, json.JSONDecodeError) as e:
      if number == last:  # no trailing newline: the write was cut short
        return
      raise ValueError(f"{path}:{number + 1}: {e}") from None
