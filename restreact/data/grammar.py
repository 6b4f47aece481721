"""The synthetic world's language: one sentence per relation, one relation chain per question form.

The world writes its passages and questions with `fact` and `QUESTION_FORMS`; `read_facts` and
`read_question` read the same text back. The CPU demo's stand-in ranker uses the readers to
understand a step the way an LLM ranker reads it (which fact a question needs, what a summary
states); it sees only the text, never the world.
"""

from __future__ import annotations

import dataclasses
import re

NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)*"
YEAR = r"\d{4}"
# relation -> (sentence, pattern of the object); {subject} and {object} are filled in, founder adds kind and year.
RELATIONS = {
    "founder": ("{subject} is {article} {kind} founded by {object} in {year}.", NAME),
    "based_in": ("{subject} is based in {object}.", NAME),
    "born_in": ("{subject} was born in {object}.", NAME),
    "born_year": ("{subject} was born in the year {object}.", YEAR),
    "country": ("{subject} is a city in {object}.", NAME),
    "city_founded": ("{subject} was founded in {object}.", YEAR),
}
_CITATION = re.compile(r"\s*\[link_id=\d+\]")


def _pattern(sentence: str, obj: str) -> re.Pattern:
  text = re.escape(sentence)
  for slot, pattern in (("subject", f"(?P<subject>{NAME})"), ("object", f"(?P<object>{obj})"),
                        ("article", "an?"), ("kind", "[a-z]+"), ("year", YEAR)):
    text = text.replace(re.escape("{" + slot + "}"), pattern)
  return re.compile(text)


_FACTS = {relation: _pattern(sentence, obj) for relation, (sentence, obj) in RELATIONS.items()}


@dataclasses.dataclass(frozen=True)
class QuestionForm:
  """A question template about an organisation or a person, and the relations that lead to its answer."""

  name: str
  text: str  # with {subject}
  subject: str  # "organisation" or "person"
  chain: tuple[str, ...]


QUESTION_FORMS = (
    QuestionForm("founder_city", "In which city was the founder of {subject} born?", "organisation",
                 ("founder", "born_in")),
    QuestionForm("founder_year", "In what year was the founder of {subject} born?", "organisation",
                 ("founder", "born_year")),
    QuestionForm("org_country", "In which country is {subject} based?", "organisation", ("based_in", "country")),
    QuestionForm("person_country", "In which country was {subject} born?", "person", ("born_in", "country")),
    QuestionForm("founder_country", "In which country was the founder of {subject} born?", "organisation",
                 ("founder", "born_in", "country")),
    QuestionForm("org_city_year", "In what year was the city where {subject} is based founded?", "organisation",
                 ("based_in", "city_founded")),
    QuestionForm("person_city_year", "In what year was the city where {subject} was born founded?", "person",
                 ("born_in", "city_founded")),
)
FORMS = {f.name: f for f in QUESTION_FORMS}
_QUESTIONS = [(re.compile(re.escape(f.text).replace(re.escape("{subject}"), f"(?P<subject>{NAME})") + "$"), f)
              for f in QUESTION_FORMS]


def fact(relation: str, subject: str, obj, **extra) -> str:
  """The sentence stating `relation(subject) = obj` (founder also takes kind= and year=)."""
  sentence, _ = RELATIONS[relation]
  kind = extra.get("kind", "")
  return sentence.format(subject=subject, object=obj, article="an" if kind[:1] in tuple("aeio") else "a", **extra)


def read_facts(text: str) -> list[tuple[str, str, str]]:
  """Every (subject, relation, object) the text states in the world's sentences; citations are ignored."""
  text = _CITATION.sub("", text)
  found = []
  for relation, pattern in _FACTS.items():
    found += [(m.start(), (m["subject"], relation, m["object"])) for m in pattern.finditer(text)]
  return [f for _, f in sorted(found)]


def read_question(text: str) -> tuple[str, tuple[str, ...]] | None:
  """(subject, relation chain) of a question in one of the world's forms, or None."""
  for pattern, form in _QUESTIONS:
    if m := pattern.match(text.strip()):
      return m["subject"], form.chain
  return None


def answers_type(chain: tuple[str, ...], answer: str) -> bool:
  """Whether `answer` is the kind of value the chain's last relation gives (a year, or a name)."""
  return re.fullmatch(RELATIONS[chain[-1]][1], answer.strip()) is not None


def follow(subject: str, chain: tuple[str, ...], facts) -> tuple[int, str]:
  """How far the facts go along the chain: (relations resolved, the entity reached).

  The chain is complete when the first value equals len(chain); the entity reached is then the answer,
  and otherwise the entity whose next relation is still missing.
  """
  known = {(s, r): o for s, r, o in facts}
  entity = subject
  for i, relation in enumerate(chain):
    if (entity, relation) not in known:
      return i, entity
    entity = known[entity, relation]
  return len(chain), entity


def fact_sentence(text: str, subject: str, relation: str) -> str:
  """The sentence of `text` that states `relation` of `subject` (as written there); ValueError if none does."""
  for m in _FACTS[relation].finditer(_CITATION.sub("", text)):
    if m["subject"] == subject:
      return m.group(0)
  raise ValueError(f"the text states no {relation} of {subject!r}")
