"""Read a model's continuation into an action record with `ast`, never evaluating it.

Accepted: anything before `ACTION_SELECTED` (ignored, like a comment), then exactly one statement
`ACTION_SELECTED = Name(field=literal, ...)`, then optionally the end marker and anything after it
(ignored). Literals are strings, ints, bools and lists
of ints. Every failure is a ParseError, which ends that candidate, never the process.
"""

from __future__ import annotations

import ast
import dataclasses
import warnings

from restreact.agent.actions import BY_CODE_NAME, STEP_ACTIONS, Action
from restreact.prompts import END_MARKER

MAX_CHARS = 20_000


class ParseError(ValueError):
  """A candidate that is not a valid action for its step."""


def _statement_text(text: str) -> str:
  if not isinstance(text, str):
    raise ParseError(f"expected text, got {type(text).__name__}")
  if len(text) > MAX_CHARS:
    raise ParseError(f"candidate of {len(text)} characters is longer than {MAX_CHARS}")
  if "\x00" in text:
    raise ParseError("candidate contains a NUL character")
  _check_unicode(text, "candidate")
  head = text.split(END_MARKER, 1)[0]
  start = head.find("ACTION_SELECTED")
  if start < 0:
    raise ParseError("no 'ACTION_SELECTED = ...' statement")
  return head[start:].strip()


def _check_unicode(text: str, where: str) -> None:
  """Text that UTF-8 cannot encode (a lone surrogate such as '\\ud800') would fail every later write of it."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError as e:
    raise ParseError(f"{where}: not valid Unicode text ({e.reason} at {e.start})") from None


def _literal(node: ast.AST, where: str):
  if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, bool)) and node.value is not None:
    if isinstance(node.value, str):
      _check_unicode(node.value, where)
    return node.value
  if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
      and type(node.operand.value) is int:
    return -node.operand.value
  if isinstance(node, (ast.List, ast.Tuple)):
    return tuple(_literal(e, where) for e in node.elts)
  raise ParseError(f"{where}: only string, int, bool and list literals are allowed")


def _check_type(value, field: dataclasses.Field, where: str):
  kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
  if kind == "str" and isinstance(value, str):
    return value
  if kind == "int" and type(value) is int:
    return value
  if kind == "bool" and isinstance(value, bool):
    return value
  if kind.startswith("tuple[int") and isinstance(value, tuple) and all(type(v) is int for v in value):
    return value
  raise ParseError(f"{where}: {field.name} must be {kind}, got {type(value).__name__}")


def parse_action(text: str, allowed: tuple[type[Action], ...]) -> Action:
  """The action in `text`, if it is one of `allowed`; ParseError otherwise."""
  code = _statement_text(text)
  try:
    with warnings.catch_warnings():  # model text may hold invalid escapes; that is its problem, not a warning
      warnings.simplefilter("ignore")
      module = ast.parse(code, mode="exec")
  except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
    raise ParseError(f"not valid Python: {type(e).__name__}: {e}") from None
  if len(module.body) != 1 or not isinstance(module.body[0], ast.Assign):
    raise ParseError("expected exactly one statement 'ACTION_SELECTED = ...'")
  assign = module.body[0]
  if len(assign.targets) != 1 or not isinstance(assign.targets[0], ast.Name) \
      or assign.targets[0].id != "ACTION_SELECTED":
    raise ParseError("the statement must assign to ACTION_SELECTED")
  call = assign.value
  if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
    raise ParseError("ACTION_SELECTED must be a call such as Search(...)")
  cls = BY_CODE_NAME.get(call.func.id)
  names = ", ".join(a.code_name for a in allowed)
  if cls not in allowed:
    raise ParseError(f"{call.func.id} is not allowed here; expected {names}")
  if call.args:
    raise ParseError(f"{cls.code_name}: use keyword arguments only")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  values = {}
  for keyword in call.keywords:
    if keyword.arg is None or keyword.arg not in fields:
      raise ParseError(f"{cls.code_name}: unknown argument {keyword.arg!r}")
    if keyword.arg in values:
      raise ParseError(f"{cls.code_name}: argument {keyword.arg!r} given twice")
    where = f"{cls.code_name}.{keyword.arg}"
    values[keyword.arg] = _check_type(_literal(keyword.value, where), fields[keyword.arg], where)
  if missing := [name for name in fields if name not in values]:
    raise ParseError(f"{cls.code_name}: missing {', '.join(missing)}")
  for name, value in values.items():
    if name in ("query", "answer", "revised_answer") and not value.strip():
      raise ParseError(f"{cls.code_name}.{name} is empty")
  return cls(**values)


def parse_step(step_type: str, text: str) -> Action:
  """The record for a step's continuation; step_type is decision, summarize, answer, relevance or grounding."""
  if step_type not in STEP_ACTIONS:
    raise ValueError(f"unknown step type {step_type!r}; expected one of {', '.join(STEP_ACTIONS)}")
  return parse_action(text, STEP_ACTIONS[step_type])
