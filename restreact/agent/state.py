"""The agent's state as the prompts show it: Python assignments the model reads before it acts."""

from __future__ import annotations

import dataclasses

from restreact.agent.actions import Action, Answer, ResultItem, SelectLink, Search, Terminate

DEFAULT_SEARCHES = 10
_PAST = (Search, SelectLink, Terminate, Answer)


@dataclasses.dataclass
class AgentState:
  """ORIGINAL_QUESTION, PAST_ACTIONS, REMAINING_SEARCHES, CURRENT_SEARCH_RESULTS (and the answer under check)."""

  question: str
  past_actions: list[Action] = dataclasses.field(default_factory=list)
  remaining_searches: int = DEFAULT_SEARCHES
  current_results: list[ResultItem] = dataclasses.field(default_factory=list)
  answer: Answer | None = None

  def __post_init__(self):
    if bad := [a for a in self.past_actions if not isinstance(a, _PAST)]:
      raise ValueError(f"PAST_ACTIONS holds Search, SelectLink, Terminate and Answer records, not {bad[0]!r}")

  def render(self) -> str:
    """The state as code, exactly as in the prompts' examples."""
    lines = [f"ORIGINAL_QUESTION: str = {self.question!r}"]
    lines += _list("PAST_ACTIONS: List[Action]", self.past_actions)
    lines.append(f"REMAINING_SEARCHES: int = {self.remaining_searches}")
    if self.current_results:
      lines += _list("CURRENT_SEARCH_RESULTS: List[ResultItem]", self.current_results)
    if self.answer is not None:
      lines.append(f"PROPOSED_ANSWER: Answer = {self.answer.to_code()}")
    return "\n".join(lines)


def _list(head: str, items: list[Action]) -> list[str]:
  if not items:
    return [f"{head} = []"]
  return [f"{head} = ["] + [f"    {item.to_code()}," for item in items] + ["]"]
