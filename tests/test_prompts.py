"""Prompt templates: valid Python, examples in exactly the form the renderer and parser use."""

import ast
import re

import pytest

from restreact.agent import STEP_TYPES, parse_step, statement
from restreact.agent.actions import ALL_ACTIONS
from restreact.agent.parser import parse_action
from restreact.prompts import EXAMPLES_MARKER, load_template, preamble

ITEM = re.compile(r"^    (\w+\(.*\)),$")


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_template_is_python_with_docstring_dataclasses_and_examples(step_type):
  text = load_template(step_type)
  module = ast.parse(text)  # parsed, never run
  assert ast.get_docstring(module)
  assert any(isinstance(n, ast.ClassDef) for n in module.body)
  examples = text.split(EXAMPLES_MARKER, 1)[1]
  actions = [line for line in examples.splitlines() if line.startswith("ACTION_SELECTED")]
  assert len(actions) >= 2
  for line in actions:
    assert line.endswith("  # [END]")
    assert statement(parse_step(step_type, line)) == line  # same rendering as the agent's own output


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_example_states_render_as_the_agent_renders_them(step_type):
  lines = load_template(step_type).split(EXAMPLES_MARKER, 1)[1].splitlines()
  items = [m.group(1) for line in lines if (m := ITEM.match(line))]
  assert items
  for code in items:  # PAST_ACTIONS and CURRENT_SEARCH_RESULTS entries re-render character for character
    assert parse_action(f"ACTION_SELECTED = {code}", ALL_ACTIONS).to_code() == code
  for line in lines:
    if line.startswith("PROPOSED_ANSWER: Answer = "):
      code = line.split(" = ", 1)[1]
      assert parse_action(f"ACTION_SELECTED = {code}", ALL_ACTIONS).to_code() == code


@pytest.mark.parametrize("step_type", STEP_TYPES)
def test_zero_shot_variant_is_the_docstring_alone(step_type):
  zero = preamble(step_type, few_shot=False)
  assert load_template(step_type).startswith(zero.rstrip())
  module = ast.parse(zero)
  assert len(module.body) == 1 and ast.get_docstring(module)  # the task in words: no classes, no examples
  assert "ACTION_SELECTED =" not in zero.split('"""', 2)[2]


def test_unknown_template_names_the_known_ones():
  with pytest.raises(ValueError, match="decision"):
    load_template("nope")
