"""A synthetic world for CPU demos and tests: invented people, places, organisations and years.

`make_world(seed)` generates entities and relations, one Wikipedia-like passage per entity (the
corpus the BM25 tool searches), and 2- and 3-hop questions whose answers follow from the passages,
split into train/dev/test by seed. Every fact a question needs sits in the first sentences of the
passage about the entity it concerns, so a snippet shows it. Names are made of invented syllables:
no question can be answered from a pretrained model's memory, only by searching.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

from restreact.data.questions import QuestionRecord, register_question_set

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "k", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "m", "nd", "rk"]
_FIELDS = ["chemist", "painter", "engineer", "poet", "architect", "botanist", "composer", "mathematician"]
_ORG_KINDS = [("company", "Works"), ("company", "Instruments"), ("university", "University"),
              ("museum", "Museum"), ("orchestra", "Orchestra"), ("company", "Shipping")]


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


@dataclasses.dataclass
class World:
  """Entities' passages and questions; `questions(split)` selects train, dev or test."""

  seed: int
  passages: list[Passage]
  all_questions: list[WorldQuestion]

  def questions(self, split: str | None = None) -> list[WorldQuestion]:
    """The questions of one split (all of them when split is None)."""
    if split not in (None, "train", "dev", "test"):
      raise ValueError(f"split must be train, dev or test, got {split!r}")
    return [q for q in self.all_questions if split is None or q.split == split]

  def write_corpus(self, path: str | os.PathLike) -> Path:
    """Write the passages as JSONL `{id, title, text}` (the BM25 tool's input) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
      for p in self.passages:
        f.write(json.dumps(dataclasses.asdict(p)) + "\n")
    os.replace(tmp, path)
    return path


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


def make_world(seed: int = 0, *, num_countries: int = 8, num_cities: int = 30, num_people: int = 90,
               num_orgs: int = 45, split_fractions: tuple[float, float] = (0.7, 0.15)) -> World:
  """Generate a world; the same seed gives the same world, passages, questions and splits."""
  if min(num_countries, num_cities, num_people, num_orgs) < 1:
    raise ValueError("every entity count must be positive")
  rng = random.Random(seed)
  names = _Names(rng)
  countries = [names.word(2) + rng.choice(["ia", "and", "ora"]) for _ in range(num_countries)]
  cities = [{"name": names.word(2) + rng.choice(["port", "ford", "holm", "ville", "grad"]),
             "country": rng.choice(countries), "founded": rng.randint(1100, 1850)} for _ in range(num_cities)]
  people = [{"name": f"{names.word(2)} {names.word(2)}", "field": rng.choice(_FIELDS),
             "city": rng.choice(cities), "born": rng.randint(1890, 1990)} for _ in range(num_people)]
  orgs = []
  for _ in range(num_orgs):
    kind, suffix = rng.choice(_ORG_KINDS)
    founder = rng.choice(people)
    orgs.append({"name": f"{names.word(2)} {suffix}", "kind": kind, "founder": founder,
                 "city": rng.choice(cities), "founded": founder["born"] + rng.randint(22, 50)})
  passages = _passages(countries, cities, people, orgs, rng)
  questions = _questions(cities, people, orgs, rng)
  order = list(range(len(questions)))
  random.Random(seed + 1).shuffle(order)
  n_train = int(len(order) * split_fractions[0])
  n_dev = int(len(order) * split_fractions[1])
  split_of = {i: "train" if r < n_train else "dev" if r < n_train + n_dev else "test" for r, i in enumerate(order)}
  questions = [dataclasses.replace(q, split=split_of[i]) for i, q in enumerate(questions)]
  return World(seed, passages, questions)


# Facts, phrased once so passages and hops agree word for word.
def _fact_city_country(c):
  return f"{c['name']} is a city in {c['country']}."


def _fact_born_in(p):
  return f"{p['name']} was born in {p['city']['name']}."


def _fact_born_year(p):
  return f"{p['name']} was born in the year {p['born']}."


def _fact_founder(o):
  article = "an" if o["kind"][0] in "aeiou" else "a"
  return f"{o['name']} is {article} {o['kind']} founded by {o['founder']['name']} in {o['founded']}."


def _fact_org_city(o):
  return f"{o['name']} is based in {o['city']['name']}."


def _passages(countries, cities, people, orgs, rng) -> list[Passage]:
  out = []
  for country in countries:
    members = sorted(c["name"] for c in cities if c["country"] == country)[:4]
    tail = f" Its cities include {', '.join(members)}." if members else ""
    out.append(Passage("", country, f"{country} is a country.{tail}"))
  for c in cities:
    out.append(Passage("", c["name"], f"{_fact_city_country(c)} It was founded in {c['founded']}. "
                                      f"It lies on the {rng.choice(['north', 'south', 'east', 'west'])} bank of a river."))
  for p in people:
    pronoun = rng.choice(["She", "He"])
    article = "an" if p["field"][0] in "aeiou" else "a"
    out.append(Passage("", p["name"], f"{p['name']} is {article} {p['field']}. {_fact_born_in(p)} "
                                      f"{_fact_born_year(p)} {pronoun} is known for work on {rng.choice(_FIELDS)}s' methods."))
  for o in orgs:
    out.append(Passage("", o["name"], f"{_fact_founder(o)} {_fact_org_city(o)} "
                                      f"It employs about {rng.randint(2, 90) * 10} people."))
  return [dataclasses.replace(p, id=f"w{i:05d}") for i, p in enumerate(out)]


def _hop_founder(o):
  return Hop(o["name"], o["name"], _fact_founder(o), o["founder"]["name"])


def _hop_born_in(p):
  return Hop(p["name"], p["name"], _fact_born_in(p), p["city"]["name"])


def _hop_born_year(p):
  return Hop(p["name"], p["name"], _fact_born_year(p), str(p["born"]))


def _hop_org_city(o):
  return Hop(o["name"], o["name"], _fact_org_city(o), o["city"]["name"])


def _hop_country(c):
  return Hop(c["name"], c["name"], _fact_city_country(c), c["country"])


def _questions(cities, people, orgs, rng) -> list[WorldQuestion]:
  qs = []
  for o in orgs:
    f = o["founder"]
    qs.append((f"In which city was the founder of {o['name']} born?", (_hop_founder(o), _hop_born_in(f))))
    qs.append((f"In what year was the founder of {o['name']} born?", (_hop_founder(o), _hop_born_year(f))))
    qs.append((f"In which country is {o['name']} based?", (_hop_org_city(o), _hop_country(o["city"]))))
    qs.append((f"In which country was the founder of {o['name']} born?",
               (_hop_founder(o), _hop_born_in(f), _hop_country(f["city"]))))
  for p in people:
    qs.append((f"In which country was {p['name']} born?", (_hop_born_in(p), _hop_country(p["city"]))))
  rng.shuffle(qs)
  return [WorldQuestion(f"world-{i:04d}", text, hops[-1].value, hops, "") for i, (text, hops) in enumerate(qs)]


def _load_synthetic(path=None, *, seed: int = 0, split: str | None = None) -> list[QuestionRecord]:
  """`load_questions("synthetic", seed=0, split="test")`: a generated world's questions (path is unused)."""
  if path is not None:
    raise ValueError("the synthetic question set is generated from a seed; it takes no path")
  return [QuestionRecord(q.id, q.question, q.answer, (q.answer,), "synthetic")
          for q in make_world(seed).questions(split)]


register_question_set("synthetic", _load_synthetic)
