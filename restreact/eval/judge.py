"""The paper's auto-eval: an LLM judges whether an ANSWER implies the REF_ANSWER (template `judge.txt`).

The prompt is code-shaped: the template's docstring and examples, then the item as three string
assignments and an open `IMPLIES =` that the model completes with `True  # [END]` or `False  # [END]`.
Callers wire `generate` to the engine with the stop string `# [END]`. A verdict the judge did not
write readably counts as False and is counted, so a run reports how often that happened.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence

from restreact.eval.metrics import exact_match
from restreact.prompts import END_MARKER, preamble

TEMPLATE = "judge"
EXACT_MATCH_JUDGE = "exact_match"  # the stand-in judge of CPU demos: no model
_VERDICT = re.compile(r"\s*(?:IMPLIES\s*=\s*)?(True|False)\b", re.IGNORECASE)

Generate = Callable[[list[str]], list[str]]


@dataclasses.dataclass(frozen=True)
class JudgeItem:
  """One answer to grade against its reference."""

  question: str
  answer: str
  ref_answer: str


@dataclasses.dataclass(frozen=True)
class Verdict:
  """The judge's reading (`implies`, None when unparseable), what counts (`correct`), and its raw text."""

  implies: bool | None
  text: str

  @property
  def correct(self) -> bool:
    """Unparseable verdicts count as False."""
    return bool(self.implies)

  @property
  def parsed(self) -> bool:
    """Whether the judge's text held a verdict."""
    return self.implies is not None


@dataclasses.dataclass(frozen=True)
class JudgeSummary:
  """Accuracy over a set of verdicts and how many of them were unparseable."""

  n: int
  correct: int
  unparseable: int

  @property
  def accuracy(self) -> float:
    """Fraction judged correct (unparseable ones count as wrong)."""
    return self.correct / self.n if self.n else float("nan")


def _literal(value, name: str) -> str:
  if not isinstance(value, str):
    raise TypeError(f"{name} must be a string, got {type(value).__name__}")
  # A JSON string is a valid Python literal; newlines become \n so model text cannot start a new line.
  return json.dumps(value, ensure_ascii=False)


def judge_prompt(question: str, answer: str, ref_answer: str, few_shot: bool = True) -> str:
  """The judge's prompt for one item, ending in an open `IMPLIES =`."""
  item = (f"QUESTION = {_literal(question, 'question')}\n"
          f"ANSWER = {_literal(answer, 'answer')}\n"
          f"REF_ANSWER = {_literal(ref_answer, 'ref_answer')}\n"
          "IMPLIES =")
  return preamble(TEMPLATE, few_shot=few_shot).rstrip() + "\n\n" + item


def parse_verdict(text: str) -> bool | None:
  """True or False from the judge's continuation (the stop string may be there or not); None if unreadable."""
  if not isinstance(text, str):
    return None
  match = _VERDICT.match(text.split(END_MARKER, 1)[0])
  return match.group(1).lower() == "true" if match else None


def auto_eval(items: Sequence[JudgeItem], generate: Generate, *, few_shot: bool = True) -> list[Verdict]:
  """One verdict per item, asking `generate` for all prompts in one call (so the engine can batch them)."""
  prompts = [judge_prompt(i.question, i.answer, i.ref_answer, few_shot=few_shot) for i in items]
  if not prompts:
    return []
  texts = list(generate(prompts))
  if len(texts) != len(prompts):
    raise ValueError(f"generate returned {len(texts)} texts for {len(prompts)} prompts")
  return [Verdict(parse_verdict(text), text if isinstance(text, str) else repr(text)) for text in texts]


def summarize_verdicts(verdicts: Sequence[Verdict]) -> JudgeSummary:
  """Counts of correct and unparseable verdicts."""
  return JudgeSummary(len(verdicts), sum(v.correct for v in verdicts), sum(not v.parsed for v in verdicts))


class Judge:
  """Grades answers: an LLM asked whether ANSWER implies REF_ANSWER, or exact match (CPU demos).

  `make_generate` builds the LLM's `generate(prompts) -> texts` on first use, so a run that has
  nothing to grade never loads the judge model.
  """

  def __init__(self, name: str, make_generate: Callable[[], Callable] | None = None, *, few_shot: bool = True):
    if name != EXACT_MATCH_JUDGE and make_generate is None:
      raise ValueError(f"judge {name!r} needs a model")
    self.name, self.few_shot = name, few_shot
    self._make_generate, self._generate = make_generate, None

  def grade(self, items: Sequence[JudgeItem], references: Sequence[Sequence[str]]) -> list[Verdict]:
    """One verdict per item; an empty answer is False without asking anyone."""
    out: list[Verdict | None] = [None] * len(items)
    asked = []
    for i, (item, refs) in enumerate(zip(items, references)):
      if not item.answer.strip():
        out[i] = Verdict(False, "no answer")
      elif self.name == EXACT_MATCH_JUDGE:
        out[i] = Verdict(bool(exact_match(item.answer, list(refs))), EXACT_MATCH_JUDGE)
      else:
        asked.append(i)
    if asked:
      if self._generate is None:
        self._generate = self._make_generate()
      for i, verdict in zip(asked, auto_eval([items[i] for i in asked], self._generate, few_shot=self.few_shot)):
        out[i] = verdict
    return out
