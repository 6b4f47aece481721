"""A trajectory as readable text, step by step: each model step's candidates with their log-probs (the chosen one
marked), each search with its results, the machine's own steps, and the final answer."""

from __future__ import annotations

import textwrap

from restreact.agent.records import MachineStep, ModelStep, ToolStep, TrajectoryRecord

CHOSEN, OTHER = "->", "  "


def _indent(text: str, prefix: str) -> str:
  """`text` with every line after the first indented to line up under `prefix`."""
  lines = text.rstrip("\n").split("\n")
  return lines[0] + "".join("\n" + " " * len(prefix) + line for line in lines[1:])


def _model_step(number: int, step: ModelStep, show_inputs: bool) -> list[str]:
  parsed = sum(c.action is not None for c in step.candidates)
  chosen = "none parsed: the trajectory ends here" if step.chosen is None else f"chose #{step.chosen}"
  out = [f"[{number}] {step.step_type}: {len(step.candidates)} candidates, {parsed} parsed, {chosen}"]
  if show_inputs:
    out.append(textwrap.indent(step.input.rstrip("\n"), "      | "))
  for i, c in enumerate(step.candidates):
    mark = CHOSEN if i == step.chosen else OTHER
    score = f"mean logprob {c.mean_logprob:7.3f} over {len(c.logprobs):3d} tokens"
    prefix = f"  {mark} #{i} {score}  "
    body = c.text if c.action is not None else f"{c.text}\n(unparsed: {c.error})"
    out.append(prefix + _indent(body, prefix))
  return out


def _tool_step(number: int, step: ToolStep) -> list[str]:
  head = f"[{number}] search {step.query!r} (top {step.k}, {step.latency_s:.2f} s)"
  if step.error is not None:
    return [head, f"     failed: {step.error}"]
  if not step.results:
    return [head, "     no results"]
  out = [head]
  for r in step.results:
    prefix = f"     [{r.link_id}] "
    out.append(prefix + _indent(f"{r.link_text}: {r.snippet}", prefix))
  return out


def format_trajectory(record: TrajectoryRecord, *, show_inputs: bool = False) -> str:
  """The record as text: a header, one block per step, then the answer and how the trajectory ended."""
  lines = [f"Question: {record.question}", f"Policy: {record.lineage.model}"]
  if record.reference is not None:
    lines.append(f"Reference answer: {record.reference}")
  lines.append("")
  for number, step in enumerate(record.steps, 1):
    if isinstance(step, ModelStep):
      lines += _model_step(number, step, show_inputs)
    elif isinstance(step, ToolStep):
      lines += _tool_step(number, step)
    elif isinstance(step, MachineStep):
      lines.append(f"[{number}] {step.step_type} by the machine: {step.action.to_code()} ({step.reason})")
  model_steps = len(record.model_steps())
  searches = sum(isinstance(s, ToolStep) for s in record.steps)
  lines += ["", f"Final answer: {record.final_answer if record.final_answer is not None else '(none)'}",
            f"Status: {record.status}" + (f" ({record.error})" if record.error else "")
            + f"; {model_steps} model steps, {searches} searches"]
  return "\n".join(lines) + "\n"
