"""The first stage of a run: tokenizer, synthetic world, search tool and question sets.

Real runs read the tokenizer from the L checkpoint and search Wikipedia, a retrieval server or a local
BM25 corpus. The CPU demo (`config.tokenizer = "world"`, `config.tool.corpus = "world"`) trains a small
SentencePiece model on the synthetic world's passages and the prompt templates, with every name, year
and identifier of the action language kept whole, and indexes the world. `config.world` makes the world
(seed and sizes): its question sets, corpus and tokenizer all come from that one setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from restreact.agent.actions import CODE_WORDS
from restreact.data import QuestionRecord, World, load_questions, make_world
from restreact.models import Tokenizer, train_tokenizer
from restreact.models.tokenizer import TOKENIZER_FILE
from restreact.prompts import load_template
from restreact.runner.stages import StageResult, Stages
from restreact.tools import BM25Search, CachedSearch, RetrievalServerSearch, SearchTool, WikipediaSearch

TEMPLATES = ("decision", "summarize", "answer", "relevance", "grounding", "ranking", "judge")
TOOL_KINDS = ("bm25", "retrieval_server", "wikipedia")


@dataclasses.dataclass
class Environment:
  """What every later stage uses: the tokenizer, the world (demo only), the tool and the questions."""

  tokenizer: Tokenizer
  world: World | None
  tool: SearchTool
  pilot: list[QuestionRecord]  # the pilot grows on these (config.data.pilot; data.train when unset)
  train: list[QuestionRecord]  # later generations grow on these
  dev: list[QuestionRecord]
  eval_questions: list[QuestionRecord]


def world_options(config) -> dict:
  """make_world's arguments from config.world (seed and entity counts; vocab_size is the tokenizer's)."""
  return {k: v for k, v in config.world.to_dict().items() if k != "vocab_size"}


def pilot_specs(config) -> list:
  """The question sets the pilot grows on: config.data.pilot, or the training sets when it is empty."""
  return list(config.data.pilot) or list(config.data.train)


def uses_world(config) -> bool:
  """Whether the run needs the synthetic world (its questions, corpus, tokenizer or solver)."""
  names = [d["name"] for d in [*config.data.train, *config.data.pilot]] + [config.data.dev["name"],
                                                                          config.data.test["name"]]
  return ("synthetic" in names or config.tokenizer == "world" or config.tool.corpus == "world"
          or config.pilot.source == "scripted")


def questions(spec, what: str, world: dict | None = None) -> list[QuestionRecord]:
  """One question set of the config: {name, path, limit, options}; limit 0 keeps all.

  A "synthetic" set is asked of the world that `world` (make_world's arguments) makes; options may name
  only its split, so that `config.world.seed` alone changes questions, corpus and tokenizer together.
  """
  spec = dict(spec)
  options = dict(spec.get("options") or {})
  if spec["name"] == "synthetic" and world is not None:
    if extra := sorted(set(options) - {"split"}):
      raise ValueError(f"config.data.{what}.options: {', '.join(extra)} of the synthetic world come from "
                       f"config.world, not from a question set (options take only 'split')")
    options.update(world)
  try:
    records = load_questions(spec["name"], spec.get("path") or None, **options)
  except (OSError, ValueError) as e:
    raise ValueError(f"config.data.{what}: {e}") from None
  limit = int(spec.get("limit") or 0)
  return records[:limit] if limit else records


def tokenizer_path(config, d: Path) -> Path:
  """The run's tokenizer.model (`d` is the setup stage's folder)."""
  if config.tokenizer == "world":
    return d / TOKENIZER_FILE
  if config.tokenizer:
    return Path(config.tokenizer)
  if not config.models.l.checkpoint:
    raise ValueError("config.tokenizer is empty and config.models.l.checkpoint is not set: nothing to read the "
                     "tokenizer from")
  return Path(config.models.l.checkpoint) / TOKENIZER_FILE


def _tool(config, d: Path, world: World | None) -> SearchTool:
  t = config.tool
  if t.kind == "bm25":
    corpus = d / "corpus.jsonl" if t.corpus == "world" else Path(t.corpus)
    if t.corpus == "world" and not corpus.is_file():
      world.write_corpus(corpus)
    return BM25Search(corpus, index_dir=d / "bm25_index")  # deterministic and local: nothing to cache
  if t.kind == "retrieval_server":
    tool = RetrievalServerSearch(t.url, timeout=t.timeout, deadline=t.deadline)
  elif t.kind == "wikipedia":
    tool = WikipediaSearch(timeout=t.timeout, deadline=t.deadline)
  else:
    raise ValueError(f"config.tool.kind={t.kind!r}; choose one of {TOOL_KINDS}")
  return CachedSearch(tool, d / "search_cache.sqlite") if t.cache else tool


def _environment(config, d: Path) -> Environment:
  options = world_options(config)
  world = make_world(**options) if uses_world(config) else None
  if config.tokenizer == "world" and not (d / TOKENIZER_FILE).is_file():
    texts = [p.text for p in world.passages] + [p.title for p in world.passages]
    texts += [q.question for q in world.questions()]
    texts += [line for name in TEMPLATES for line in load_template(name).splitlines() if line.strip()]
    train_tokenizer(texts, d / TOKENIZER_FILE, vocab_size=int(config.world.vocab_size),
                    whole_words=world.whole_words() + list(CODE_WORDS))
  tokenizer = Tokenizer(tokenizer_path(config, d))
  tool = _tool(config, d, world)
  pilot_what = "pilot" if config.data.pilot else "train"
  pilot = [q for i, spec in enumerate(pilot_specs(config)) for q in questions(spec, f"{pilot_what}[{i}]", options)]
  train = [q for i, spec in enumerate(config.data.train) for q in questions(spec, f"train[{i}]", options)]
  dev = questions(config.data.dev, "dev", options)
  evaluated = questions(config.data[config.eval.set], config.eval.set, options)
  return Environment(tokenizer, world, tool, pilot, train, dev, evaluated)


def _sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while block := f.read(1 << 20):
      digest.update(block)
  return digest.hexdigest()


def setup_stage(config, stages: Stages) -> StageResult:
  """The setup stage (skipped when done; the environment is rebuilt from its files either way)."""
  inputs = dict(tokenizer=config.tokenizer, world=config.world.to_dict() if uses_world(config) else None,
                whole_words=len(CODE_WORDS) if config.tokenizer == "world" else None,
                tool=config.tool.to_dict(), checkpoint_l=config.models.l.checkpoint)
  if config.tool.kind == "bm25" and config.tool.corpus != "world":  # a corpus edited in place changes every search
    inputs["corpus_sha256"] = _sha256(Path(config.tool.corpus))
  # Process 0 alone writes the tokenizer, corpus and index; the others load them.
  return stages.run("setup", inputs, lambda d: _environment(config, d), load=lambda d: _environment(config, d),
                    writer_only=True)
