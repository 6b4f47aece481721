"""A rule-based stand-in for the LLM ranker, for the synthetic world of the CPU demo (`rank.ranker="world_rules"`).

Tiny demo models cannot play the paper's instruction-tuned ranker, and a ranker that never ranks turns
ReST into self-distillation. This stand-in takes the ranker's place without seeing more than it would:
it is a `generate(prompts) -> replies` function like the LLM's, it reads only the ranking prompt (the
step's input and the candidates, never the reference answer or the world), and it replies in the same
`Explanation: / Answer: / Ranking:` format, which `rank.parse_ranking` reads as it reads the LLM's.

It judges what the ranking instructions ask, understanding the text through the world's grammar (as an
LLM understands English):
- decision: a search for the entity whose fact the question needs next, not a repeat; Terminate only
  once the past summaries answer the question;
- summarize: a summary whose every sentence is stated by a result it cites, whose cited ids were
  shown and selected, and that states the fact the question needs;
- answer: an answer that the past summaries support, citing link ids that were selected;
- relevance and grounding checks: pass only a supported answer; revise an unsupported one to the
  supported one.
Ties keep the presented (shuffled) order. `answer_supported` gives the same judgement on a whole
trajectory, and `target_ok` on one candidate, for `mixture.unsupported`. Real runs rank with a real model
(`rank.ranker="base:l"`).
"""

from __future__ import annotations

import ast
import re

from restreact.agent.actions import (ALL_ACTIONS, Answer, CheckAnswer, ReviseAnswer, SelectLink, Search,
                                     STEP_ACTIONS, Terminate)
from restreact.agent.parser import ParseError, parse_action
from restreact.data import grammar

NAME = "world_rules"
_CANDIDATE = re.compile(r"^#(\d+): ", re.MULTILINE)
_CITED = re.compile(r"\[link_id=(\d+)\]")


def generate(prompts: list[str]) -> list[str]:
  """The stand-in's replies to ranking prompts (the LLM ranker's `generate` signature)."""
  return [reply(p) for p in prompts]


def reply(prompt: str) -> str:
  """Explanation, best candidate and full ranking for one ranking prompt; an empty reply if it cannot read it."""
  try:
    state, candidates = _read_prompt(prompt)
  except (ValueError, SyntaxError):
    return ""
  verdicts = _judge_texts(state, [text for _, text in candidates])
  judged = [(number, *verdict) for (number, _), verdict in zip(candidates, verdicts)]
  judged.sort(key=lambda j: -j[1])  # stable: ties keep the presented order
  explanation = " ".join(f"#{n} {why}." for n, _, why in judged)
  order = " > ".join(f"#{n}" for n, _, _ in judged)
  return f" {explanation}\nAnswer: #{judged[0][0]}\nRanking: {order}\n"


_UNGROUNDED = -4.0  # a summary citing what was not shown, or stating what its citations do not say
GOOD = 3.0  # the score of a candidate that does what the step needs (the right search, fact, answer, check)


def scores(step_input: str, texts: list[str]) -> list[float]:
  """The stand-in's score of each candidate text of one step (its step input as the agent rendered it);
  >= GOOD: the candidate does what the step needs. For diagnostics: how good were the candidates it ranked?"""
  return [score for score, _ in _judge_texts(_read_state(step_input), texts)]


def _judge_texts(state: dict, texts: list[str]) -> list[tuple[float, str]]:
  """(score, why) of each candidate text in the step `state` describes; unparseable text scores lowest."""
  step = _step_kind(state)
  actions = STEP_ACTIONS[step] if step in STEP_ACTIONS else STEP_ACTIONS["relevance"]
  out = []
  for text in texts:
    try:
      out.append(_judge(step, state, parse_action(text, actions)))
    except ParseError as e:
      out.append((-10.0, f"does not parse ({e})"))
  return out


def target_ok(step, index: int) -> bool:
  """Whether candidate `index` of a model step does what the step needs (scores >= GOOD): the test a ranker's
  correction must pass before `mixture.unsupported="cut"` keeps the steps that lead to it."""
  return scores(step.input, [step.candidates[index].text])[0] >= GOOD


def answer_supported(record) -> bool:
  """The stand-in's verdict on a whole trajectory: does its final answer follow from its own summaries (and is
  every one stated by the result it cites)? Read from its last self-check step, as the ranker judges that
  step's chosen candidate: a pass of a supported answer, or a revision to one."""
  steps = [s for s in record.model_steps() if s.chosen is not None]
  checks = [s for s in steps if s.step_type in ("relevance", "grounding")]
  if record.status != "done" or not checks:
    return False
  chosen = lambda step: scores(step.input, [step.candidates[step.chosen].text])[0]
  if any(chosen(s) <= _UNGROUNDED for s in steps if s.step_type == "summarize"):
    return False  # a summary that its cited result does not state
  return chosen(checks[-1]) >= GOOD


# ---------------------------------------------------------------------------------------------- reading

def _read_prompt(prompt: str) -> tuple[dict, list[tuple[int, str]]]:
  """The step input (as values) and the numbered candidate texts of the last block of a ranking prompt."""
  _, _, block = prompt.rpartition("# STEP INPUT\n")
  step_input, sep, rest = block.partition("\n\n# CANDIDATES\n")
  shown, sep2, _ = rest.partition("\n\n# JUDGEMENT")
  if not sep or not sep2:
    raise ValueError("not a ranking prompt")
  starts = list(_CANDIDATE.finditer(shown))
  candidates = [(int(m.group(1)), shown[m.end():(starts[i + 1].start() if i + 1 < len(starts) else len(shown))].strip())
                for i, m in enumerate(starts)]
  return _read_state(step_input), candidates


def _read_state(code: str) -> dict:
  """ORIGINAL_QUESTION, PAST_ACTIONS, REMAINING_SEARCHES, CURRENT_SEARCH_RESULTS, PROPOSED_ANSWER: literals and
  action records read with `ast` and the agent's parser, nothing evaluated."""
  state = {"PAST_ACTIONS": [], "CURRENT_SEARCH_RESULTS": [], "PROPOSED_ANSWER": None}
  for node in ast.parse(code).body:
    if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name) or node.value is None:
      continue
    name, value = node.target.id, node.value
    if isinstance(value, ast.Constant):
      state[name] = value.value
    elif isinstance(value, ast.List):
      state[name] = [parse_action(f"ACTION_SELECTED = {ast.unparse(e)}", ALL_ACTIONS) for e in value.elts]
    elif isinstance(value, ast.Call):
      state[name] = parse_action(f"ACTION_SELECTED = {ast.unparse(value)}", ALL_ACTIONS)
  if not isinstance(state.get("ORIGINAL_QUESTION"), str):
    raise ValueError("the step input has no ORIGINAL_QUESTION")
  return state


def _step_kind(state: dict) -> str:
  if state["PROPOSED_ANSWER"] is not None:
    return "check"
  if state["CURRENT_SEARCH_RESULTS"]:
    return "summarize"
  past = state["PAST_ACTIONS"]
  return "answer" if past and isinstance(past[-1], Terminate) else "decision"


def _norm(text: str) -> str:
  return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


class _Reading:
  """What the past actions establish about the question: facts, the chain's progress, searches made."""

  def __init__(self, state: dict):
    past = state["PAST_ACTIONS"]
    self.summaries = [a for a in past if isinstance(a, SelectLink)]
    self.facts = [f for a in self.summaries for f in grammar.read_facts(a.grounded_summarization)]
    self.queries = {_norm(a.query) for a in past if isinstance(a, Search)}
    self.selected = {i for a in self.summaries for i in a.selected_link_ids}
    self.remaining = state.get("REMAINING_SEARCHES", 0)
    parsed = grammar.read_question(state["ORIGINAL_QUESTION"])
    self.chain = parsed[1] if parsed else None
    self.resolved, self.entity = grammar.follow(parsed[0], parsed[1], self.facts) if parsed else (0, None)

  @property
  def complete(self) -> bool:
    return self.chain is not None and self.resolved == len(self.chain)

  @property
  def answer(self) -> str | None:
    """The answer the past summaries support, when they reach the end of the question's chain."""
    return self.entity if self.complete else None

  @property
  def needed(self) -> tuple[str, str] | None:
    """(entity, relation) still missing on the chain."""
    return None if self.chain is None or self.complete else (self.entity, self.chain[self.resolved])

  def supported(self, answer: str) -> bool:
    """Whether some past summary states `answer` as a fact's object, and it is what the question asks for
    (a year for a year question)."""
    right_kind = self.chain is None or grammar.answers_type(self.chain, answer)
    return right_kind and any(_norm(o) == _norm(answer) for _, _, o in self.facts)


# ---------------------------------------------------------------------------------------------- judging

def _judge(step: str, state: dict, action) -> tuple[float, str]:
  reading = _Reading(state)
  if step == "decision":
    return _decision(reading, action)
  if step == "summarize":
    return _summary(reading, state["CURRENT_SEARCH_RESULTS"], action)
  if step == "answer":
    return _answer(reading, action)
  return _check(reading, state["PROPOSED_ANSWER"], action)


def _decision(r: _Reading, action) -> tuple[float, str]:
  if isinstance(action, Terminate):
    if r.complete:
      return 3.0, "stops once the past actions answer the question"
    if r.remaining <= 0:
      return 1.0, "stops because no searches remain"
    return -2.0, "stops before the evidence is there"
  query = _norm(action.query)
  if query in r.queries:
    return -3.0, "repeats a past search"
  if r.complete:
    return -1.0, "searches although the past actions already answer the question"
  if r.needed is not None and query == _norm(r.needed[0]):
    return 3.0, f"searches for {r.needed[0]}, whose fact the question needs next"
  if r.needed is not None and _norm(r.needed[0]) in query:
    return 2.0, f"searches for {r.needed[0]} with extra words"
  mentioned = _norm(" ".join([r_.grounded_summarization for r_ in r.summaries]))
  if query and query in mentioned:
    return 0.0, "searches for an entity the past actions mention but the question does not need next"
  return -1.0, "searches for something neither the question nor the past actions lead to"


def _summary(r: _Reading, results, action: SelectLink) -> tuple[float, str]:
  shown = {item.link_id: item for item in results}
  selected = set(action.selected_link_ids)
  cited = [int(i) for i in _CITED.findall(action.grounded_summarization)]
  if not selected <= set(shown) or not set(cited) <= selected:
    return _UNGROUNDED, "cites or selects link ids that were not shown or not selected"
  for sentence in _sentences(action.grounded_summarization):
    ids = [int(i) for i in _CITED.findall(sentence)]
    claim = grammar.read_facts(sentence)
    sources = [grammar.read_facts(shown[i].snippet) for i in ids]
    if not ids or not claim or not all(any(c in src for src in sources) for c in claim):
      return _UNGROUNDED, "states what the cited results do not say"
  useful = {i for i, item in shown.items()
            if r.needed is not None and any((s, rel) == r.needed for s, rel, _ in grammar.read_facts(item.snippet))}
  stated = grammar.read_facts(action.grounded_summarization)
  states = r.needed is not None and any((s, rel) == r.needed for s, rel, _ in stated)
  score = (3.0 if states else 0.0) + (1.0 if selected & useful else 0.0) - 0.5 * len(selected - useful)
  if states:
    return score, f"states the fact the question needs ({r.needed[1]} of {r.needed[0]}), grounded in its citation"
  if useful:
    return score, "is grounded but misses the fact the question needs, which a shown result states"
  return score, "is grounded; no shown result states the fact the question needs"


def _sentences(text: str) -> list[str]:
  return [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]


def _answer(r: _Reading, action: Answer) -> tuple[float, str]:
  cites = {int(i) for i in _CITED.findall(action.thoughts)}
  if cites - r.selected:
    return -2.0, "cites link ids that no past summary selected"
  if r.answer is not None and _norm(action.answer) == _norm(r.answer):
    return 3.0 + 0.5 * bool(cites), "gives the answer the past summaries support"
  if r.supported(action.answer):
    return 0.0, "gives a fact from the past summaries that does not answer the question"
  return -3.0, "gives an answer the past summaries do not support"


def _check(r: _Reading, proposed: Answer | None, action) -> tuple[float, str]:
  # A question the grammar reads needs its whole chain; otherwise any fact of the right kind will do.
  good = proposed is not None and (_norm(proposed.answer) == _norm(r.answer or "") if r.chain is not None
                                   else r.supported(proposed.answer))
  if isinstance(action, CheckAnswer):
    return (3.0, "passes a supported answer") if good else (-3.0, "lets an unsupported answer pass")
  assert isinstance(action, ReviseAnswer)
  if good:
    return -1.0, "replaces an answer that the past summaries support"
  if r.answer is not None and _norm(action.revised_answer) == _norm(r.answer):
    return 3.0, "replaces an unsupported answer with the supported one"
  if r.supported(action.revised_answer):
    return 1.0, "replaces an unsupported answer with a fact from the past summaries"
  return -2.0, "replaces an unsupported answer with another unsupported one"
