"""Agent step prompts: a step's prompt starts with its template (`restreact.prompts`); fine-tuned models get
only the first paragraph of the template's docstring (`step_preamble`)."""

from __future__ import annotations

from restreact.prompts import preamble


def step_preamble(step_type: str, *, few_shot: bool) -> str:
  """What an agent step's prompt starts with: the whole template for a prompted model; for a fine-tuned one,
  which learned the action language from its data, only the docstring's first paragraph (the step's task in a
  sentence), which keeps its training rows and prefills short."""
  if few_shot:
    return preamble(step_type)
  instructions = preamble(step_type, few_shot=False)
  return '"""' + instructions[3:].split("\n\n", 1)[0].removesuffix('"""').strip() + '"""\n\n'
