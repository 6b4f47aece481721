"""The action language: records the agent's steps produce, and their rendering as Python code.

A model step writes one statement, for example

    ACTION_SELECTED = Search(thoughts="...", query="...")  # [END]

and `restreact.agent.parser` reads it back into these records without evaluating anything.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from restreact.prompts import END_MARKER


def _literal(value) -> str:
  """A Python literal for a str, int, bool or list of ints (repr is exact and re-parses with `ast`)."""
  if isinstance(value, (list, tuple)):
    return "[" + ", ".join(_literal(v) for v in value) + "]"
  return repr(value)


@dataclasses.dataclass(frozen=True)
class Action:
  """Base of every record; `code_name` is the callable's name in the prompts."""

  code_name: ClassVar[str] = ""

  def to_code(self) -> str:
    """`Name(field=value, ...)` with fields in declaration order."""
    args = ", ".join(f"{f.name}={_literal(getattr(self, f.name))}" for f in dataclasses.fields(self))
    return f"{self.code_name}({args})"


@dataclasses.dataclass(frozen=True)
class Search(Action):
  """Decision: search the web for `query`."""

  code_name: ClassVar[str] = "Search"
  thoughts: str
  query: str


@dataclasses.dataclass(frozen=True)
class Terminate(Action):
  """Decision: enough is known to answer."""

  code_name: ClassVar[str] = "Terminate"
  thoughts: str


@dataclasses.dataclass(frozen=True)
class ResultItem(Action):
  """One search result as the agent sees it (the prompt templates' dataclass: no provenance reaches the model);
  link ids are unique across a trajectory. Recorded in full as `records.ToolResult`."""

  code_name: ClassVar[str] = "ResultItem"
  link_id: int
  link_text: str
  snippet: str


@dataclasses.dataclass(frozen=True)
class SelectLink(Action):
  """Summarization: comments on the results, the relevant link ids, and a summary citing [link_id=N]."""

  code_name: ClassVar[str] = "SelectLink"
  comments: str
  selected_link_ids: tuple[int, ...]
  grounded_summarization: str


@dataclasses.dataclass(frozen=True)
class Answer(Action):
  """Answer generation, citing link ids in `thoughts`."""

  code_name: ClassVar[str] = "Answer"
  thoughts: str
  answer: str


@dataclasses.dataclass(frozen=True)
class CheckAnswer(Action):
  """Relevance or grounding self-check: the answer stands."""

  code_name: ClassVar[str] = "Check_Answer"
  passed: bool


@dataclasses.dataclass(frozen=True)
class ReviseAnswer(Action):
  """Relevance or grounding self-check: the answer is replaced."""

  code_name: ClassVar[str] = "Revise_Answer"
  thoughts: str
  revised_answer: str


# What each step may produce (the parser enforces it).
STEP_ACTIONS: dict[str, tuple[type[Action], ...]] = {
    "decision": (Search, Terminate),
    "summarize": (SelectLink,),
    "answer": (Answer,),
    "relevance": (CheckAnswer, ReviseAnswer),
    "grounding": (CheckAnswer, ReviseAnswer),
}
STEP_TYPES = tuple(STEP_ACTIONS)
ALL_ACTIONS = (Search, Terminate, ResultItem, SelectLink, Answer, CheckAnswer, ReviseAnswer)
BY_CODE_NAME = {a.code_name: a for a in ALL_ACTIONS}
# The identifiers of the action language and of the state, for tokenizers that keep them whole (the CPU demo's).
STATE_NAMES = ("ORIGINAL_QUESTION", "PAST_ACTIONS", "REMAINING_SEARCHES", "CURRENT_SEARCH_RESULTS", "PROPOSED_ANSWER")
CODE_WORDS = tuple(sorted({"ACTION_SELECTED", *STATE_NAMES, *(a.code_name for a in ALL_ACTIONS),
                           *(f.name for a in ALL_ACTIONS for f in dataclasses.fields(a) if "_" in f.name)}))


def statement(action: Action) -> str:
  """The line a model writes for `action`, end marker included."""
  return f"ACTION_SELECTED = {action.to_code()}  {END_MARKER}"
