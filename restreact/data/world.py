"""A synthetic world for CPU demos and tests: invented people, places, organisations and years.

`make_world(seed)` generates entities and relations, one Wikipedia-like passage per entity (the
corpus the BM25 tool searches), and 2- and 3-hop questions whose answers follow from the passages,
split into pilot / train / dev / test. Names are made of invented syllables: no question can be
answered from a pretrained model's memory, only by searching.

The world speaks a small language, defined once in `grammar.py`: each relation has one fact sentence
and each question form one relation chain. Passages are written with it, and `grammar` reads it back
for the demo's stand-in ranker, which must understand the text the way an LLM ranker would.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import re
from pathlib import Path

from restreact.data import grammar
from restreact.data.questions import QuestionRecord, register_question_set
from restreact.files import write_atomic

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk"]
_FIELDS = ["chemist", "painter", "engineer", "poet", "architect", "botanist", "composer", "mathematician"]
_ORG_KINDS = [("company", "Works"), ("company", "Instruments"), ("university", "University"),
              ("museum", "Museum"), ("orchestra", "Orchestra"), ("company", "Shipping")]
SPLITS = ("pilot", "train", "dev", "test")
# pilot: the small scripted set the pilot learns from; train: the larger pool later generations grow on.
DEFAULT_SPLIT_SIZES = {"pilot": 100, "dev": 24, "test": 50}  # the rest is train


@dataclasses.dataclass(frozen=True)
class Passage:
  """One corpus document, in the `{id, title, text}` shape the BM25 tool reads."""

  id: str
  title: str
  text: str


@dataclasses.dataclass(frozen=True)
class Hop:
  """One fact on a question's chain: search `query`, read `fact` in the passage titled `title`."""

  query: str
  title: str
  fact: str
  value: str


@dataclasses.dataclass(frozen=True)
class WorldQuestion:
  """A multi-hop question with its answer and the chain of facts that leads there."""

  id: str
  question: str
  answer: str
  hops: tuple[Hop, ...]
  split: str
  form: str = ""  # the grammar's question form


@dataclasses.dataclass
class World:
  """Entities' passages and questions; `questions(split)` selects pilot, train, dev or test."""

  seed: int
  passages: list[Passage]
  all_questions: list[WorldQuestion]

  def questions(self, split: str | None = None) -> list[WorldQuestion]:
    """The questions of one split (all of them when split is None)."""
    if split not in (None, *SPLITS):
      raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return [q for q in self.all_questions if split is None or q.split == split]

  def write_corpus(self, path: str | os.PathLike) -> Path:
    """Write the passages as JSONL `{id, title, text}` (the BM25 tool's input) and return the path."""
    path = Path(path)
    write_atomic(path, "".join(json.dumps(dataclasses.asdict(p)) + "\n" for p in self.passages))
    return path

  def whole_words(self) -> list[str]:
    """Every name word and year of the world: a demo tokenizer keeps each whole, so a model copies it as one
    token (tiny models learn to copy one token from a search result far sooner than a run of sub-words)."""
    words = {w for p in self.passages for w in p.title.split()}
    words |= {y for p in self.passages for y in re.findall(r"\b\d{4}\b", p.text)}
    return sorted(words)


class _Names:
  """Unique invented names from one seeded stream."""

  def __init__(self, rng: random.Random):
    self.rng, self.used = rng, set()

  def word(self, syllables: int) -> str:
    while True:
      w = "".join(self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)
                  for _ in range(syllables)).capitalize()
      if w not in self.used and len(w) >= 4:
        self.used.add(w)
        return w


def make_world(seed: int = 0, *, num_countries: int = 8, num_cities: int = 30, num_people: int = 110,
               num_orgs: int = 55, split_sizes: dict[str, int] | None = None,
               pilot_forms: tuple[str, ...] | None = None) -> World:
  """Generate a world; the same seed (and sizes) give the same world, passages, questions and splits.

  `split_sizes` gives the pilot, dev and test counts (default DEFAULT_SPLIT_SIZES); the rest is train. Test
  and dev questions are drawn from every question form, leaving each subject a question for the pilot; pilot
  questions only from `pilot_forms` (grammar form names; default all), so the later generations can meet forms
  the pilot never showed, taken form by form and first those that search an entity not yet searched.
  """
  pilot_forms = tuple(pilot_forms) if pilot_forms else tuple(grammar.FORMS)
  if unknown := sorted(set(pilot_forms) - set(grammar.FORMS)):
    raise ValueError(f"unknown question forms {unknown}; the grammar has {', '.join(grammar.FORMS)}")
  if min(num_countries, num_cities, num_people, num_orgs) < 1:
    raise ValueError("every entity count must be positive")
  sizes = dict(DEFAULT_SPLIT_SIZES, **(split_sizes or {}))
  if set(sizes) - set(SPLITS) - {"train"} or "train" in sizes or min(sizes.values()) < 0:
    raise ValueError(f"split_sizes takes non-negative pilot, dev and test counts, got {split_sizes}")
  rng = random.Random(seed)
  names = _Names(rng)
  countries = [names.word(2) + rng.choice(["ia", "and", "ora"]) for _ in range(num_countries)]
  cities = [{"name": names.word(2) + rng.choice(["port", "ford", "holm", "ville", "grad"]),
             "country": rng.choice(countries), "founded": rng.randrange(1100, 1850, 10)} for _ in range(num_cities)]
  people = [{"name": f"{names.word(2)} {names.word(2)}", "field": rng.choice(_FIELDS),
             "city": rng.choice(cities), "born": rng.randint(1890, 1990)} for _ in range(num_people)]
  orgs = []
  for _ in range(num_orgs):
    kind, suffix = rng.choice(_ORG_KINDS)
    founder = rng.choice(people)
    orgs.append({"name": f"{names.word(2)} {suffix}", "kind": kind, "founder": founder,
                 "city": rng.choice(cities), "founded": founder["born"] + rng.randint(22, 50)})
  passages = _passages(countries, cities, people, orgs)
  questions = _questions(cities, people, orgs, rng)
  order = list(range(len(questions)))
  random.Random(seed + 1).shuffle(order)
  split_of = {}
  for split in ("test", "dev", "pilot"):
    free = [i for i in order if i not in split_of and (split != "pilot" or questions[i].form in pilot_forms)]
    if len(free) < sizes[split]:
      raise ValueError(f"the {split} split needs {sizes[split]} questions; only {len(free)} are left")
    if split == "pilot":
      free = _pilot_order(free, questions)
    else:
      free = _subjects_kept_for_the_pilot(free, questions, pilot_forms, sizes[split])
    split_of.update({i: split for i in free[:sizes[split]]})
  questions = [dataclasses.replace(q, split=split_of.get(i, "train")) for i, q in enumerate(questions)]
  return World(seed, passages, questions)


def _subjects_kept_for_the_pilot(indices: list[int], questions: list[WorldQuestion], pilot_forms: tuple[str, ...],
                                 size: int) -> list[int]:
  """`indices` reordered so that the first `size` leave every subject a question the pilot may ask, where
  the order allows: a test question's subject is then one the pilot can have searched (`_pilot_order`)."""
  # pilot-form questions still unassigned, per subject
  left = collections.Counter(questions[i].hops[0].query for i in indices if questions[i].form in pilot_forms)
  taken, skipped = [], []
  for i in indices:
    subject, pilot_form = questions[i].hops[0].query, questions[i].form in pilot_forms
    if len(taken) < size and (not pilot_form or left[subject] > 1):
      taken.append(i)
      if pilot_form:
        left[subject] -= 1
    else:
      skipped.append(i)
  return taken + skipped


def _pilot_order(indices: list[int], questions: list[WorldQuestion]) -> list[int]:
  """`indices` reordered for the pilot: taking each form in turn (so the forms stay balanced), first every
  question that searches an entity no earlier one searched, then the rest, each form in its given order.

  The pilot then names every entity it can. Tiny random-init models write only the names their fine-tuning
  targets wrote: a test question whose subject no training query named got a first search for another entity
  every time (README, Results), and growth cannot fix that, since the grown trajectories are the policy's own.
  Real checkpoints copy any name; here the pilot has to have shown it.
  """
  by_form: dict[str, list[int]] = {}
  for i in indices:
    by_form.setdefault(questions[i].form, []).append(i)
  searched: set[str] = set()
  order: list[int] = []
  for new_entities_only in (True, False):
    progress = True
    while progress:
      progress = False
      for form, pending in by_form.items():
        i = next((i for i in pending
                  if not new_entities_only or {h.query for h in questions[i].hops} - searched), None)
        if i is not None:
          pending.remove(i)
          order.append(i)
          searched |= {h.query for h in questions[i].hops}
          progress = True
  return order


def _passages(countries, cities, people, orgs) -> list[Passage]:
  f = grammar.fact
  out = []
  for country in countries:
    members = sorted(c["name"] for c in cities if c["country"] == country)[:3]
    tail = f" Its cities include {', '.join(members)}." if members else ""
    out.append(Passage("", country, f"{country} is a country.{tail}"))
  for c in cities:
    out.append(Passage("", c["name"], f"{f('country', c['name'], c['country'])} "
                                      f"{f('city_founded', c['name'], c['founded'])}"))
  for p in people:
    article = "an" if p["field"][0] in "aeiou" else "a"
    born = f"{f('born_in', p['name'], p['city']['name'])} {f('born_year', p['name'], p['born'])}"
    out.append(Passage("", p["name"], f"{p['name']} is {article} {p['field']}. {born}"))
  for o in orgs:
    founder = f("founder", o["name"], o["founder"]["name"], kind=o["kind"], year=o["founded"])
    out.append(Passage("", o["name"], f"{founder} {f('based_in', o['name'], o['city']['name'])}"))
  return [dataclasses.replace(p, id=f"w{i:05d}") for i, p in enumerate(out)]


def _questions(cities, people, orgs, rng) -> list[WorldQuestion]:
  """Every question form of the grammar for every entity it applies to, each hop written as its passage says it."""
  objects = {}  # (subject, relation) -> (object, fact sentence)
  for c in cities:
    objects[c["name"], "country"] = (c["country"], grammar.fact("country", c["name"], c["country"]))
    objects[c["name"], "city_founded"] = (str(c["founded"]), grammar.fact("city_founded", c["name"], c["founded"]))
  for p in people:
    objects[p["name"], "born_in"] = (p["city"]["name"], grammar.fact("born_in", p["name"], p["city"]["name"]))
    objects[p["name"], "born_year"] = (str(p["born"]), grammar.fact("born_year", p["name"], p["born"]))
  for o in orgs:
    objects[o["name"], "founder"] = (o["founder"]["name"], grammar.fact("founder", o["name"], o["founder"]["name"],
                                                                        kind=o["kind"], year=o["founded"]))
    objects[o["name"], "based_in"] = (o["city"]["name"], grammar.fact("based_in", o["name"], o["city"]["name"]))
  qs = []
  for form in grammar.QUESTION_FORMS:
    for entity in (orgs if form.subject == "organisation" else people):
      hops, subject = [], entity["name"]
      for relation in form.chain:
        value, sentence = objects[subject, relation]
        hops.append(Hop(subject, subject, sentence, value))
        subject = value
      qs.append((form.text.format(subject=entity["name"]), tuple(hops), form.name))
  rng.shuffle(qs)
  return [WorldQuestion(f"world-{i:04d}", text, hops[-1].value, hops, "", form)
          for i, (text, hops, form) in enumerate(qs)]


def _load_synthetic(path=None, *, seed: int = 0, split: str | None = None, **sizes) -> list[QuestionRecord]:
  """`load_questions("synthetic", seed=0, split="test")`: a generated world's questions (path is unused)."""
  if path is not None:
    raise ValueError("the synthetic question set is generated from a seed; it takes no path")
  return [QuestionRecord(q.id, q.question, q.answer, (q.answer,), "synthetic")
          for q in make_world(seed, **sizes).questions(split)]


register_question_set("synthetic", _load_synthetic)
