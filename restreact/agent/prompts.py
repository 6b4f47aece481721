"""Prompt templates: one file per step type under `templates/`, written as Python code.

Each file holds a docstring, the dataclass definitions of the action language, and few-shot
examples that end with `ACTION_SELECTED = ...  # [END]`. The zero-shot variant is the template's
docstring alone (the instructions, without the dataclass definitions and the examples). Agent steps
of fine-tuned models start with even less: `step_preamble` keeps the docstring's first paragraph.
"""

from __future__ import annotations

import functools
from importlib import resources

EXAMPLES_MARKER = "# EXAMPLES"


@functools.cache
def load_template(name: str) -> str:
  """The text of `templates/<name>.txt`; a clear error names the templates that exist."""
  folder = resources.files("restreact.agent") / "templates"
  path = folder / f"{name}.txt"
  if not path.is_file():
    known = sorted(p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt"))
    raise ValueError(f"no prompt template {name!r}; known: {', '.join(known)}")
  return path.read_text(encoding="utf-8")


def preamble(name: str, *, few_shot: bool = True) -> str:
  """The whole template (few-shot), or its docstring alone (zero-shot, for fine-tuned models)."""
  text = load_template(name)
  if few_shot:
    return text
  head, marker, _ = text.partition(EXAMPLES_MARKER)
  if not marker:
    raise ValueError(f"template {name!r} has no {EXAMPLES_MARKER!r} line separating its examples")
  if not head.startswith('"""') or head.find('"""', 3) < 0:
    raise ValueError(f"template {name!r} does not start with a docstring (the zero-shot preamble)")
  return head[:head.find('"""', 3) + 3] + "\n\n"


def step_preamble(step_type: str, *, few_shot: bool) -> str:
  """What an agent step's prompt starts with: the whole template for a prompted model; for a fine-tuned one,
  which learned the action language from its data, only the docstring's first paragraph (the step's task in a
  sentence), which keeps its training rows and prefills short."""
  if few_shot:
    return preamble(step_type)
  instructions = preamble(step_type, few_shot=False)
  return '"""' + instructions[3:].split("\n\n", 1)[0].removesuffix('"""').strip() + '"""\n\n'
