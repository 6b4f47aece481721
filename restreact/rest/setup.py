"""The first stage of a run: tokenizer, synthetic world, search tool and question sets.

Real runs read the tokenizer from the L checkpoint and search Wikipedia, a retrieval server or a local
BM25 corpus. The CPU demo (`config.tokenizer = "world"`, `config.tool.corpus = "world"`) trains a small
SentencePiece model on the synthetic world's passages and the prompt templates, and indexes the world.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from restreact.agent.prompts import load_template
from restreact.data import QuestionRecord, World, load_questions, make_world
from restreact.models import Tokenizer, train_tokenizer
from restreact.models.tokenizer import TOKENIZER_FILE
from restreact.rest.stages import StageResult, Stages
from restreact.tools import BM25Search, CachedSearch, RetrievalServerSearch, SearchTool, WikipediaSearch

TEMPLATES = ("decision", "summarize", "answer", "relevance", "grounding", "ranking", "judge")
TOOL_KINDS = ("bm25", "retrieval_server", "wikipedia")


@dataclasses.dataclass
class Environment:
  """What every later stage uses: the tokenizer, the world (demo only), the tool and the questions."""

  tokenizer: Tokenizer
  world: World | None
  tool: SearchTool
  train: list[QuestionRecord]
  dev: list[QuestionRecord]
  eval_questions: list[QuestionRecord]


def uses_world(config) -> bool:
  """Whether the run needs the synthetic world (its questions, corpus, tokenizer or solver)."""
  names = [d["name"] for d in config.data.train] + [config.data.dev["name"], config.data.test["name"]]
  return ("synthetic" in names or config.tokenizer == "world" or config.tool.corpus == "world"
          or config.pilot.source == "scripted")


def questions(spec, what: str) -> list[QuestionRecord]:
  """One question set of the config: {name, path, limit, options}; limit 0 keeps all."""
  spec = dict(spec)
  try:
    records = load_questions(spec["name"], spec.get("path") or None, **dict(spec.get("options") or {}))
  except (OSError, ValueError) as e:
    raise ValueError(f"config.data.{what}: {e}") from None
  limit = int(spec.get("limit") or 0)
  return records[:limit] if limit else records


def _tokenizer_path(config, d: Path) -> Path:
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
    tool = RetrievalServerSearch(t.url, timeout=t.timeout)
  elif t.kind == "wikipedia":
    tool = WikipediaSearch(timeout=t.timeout)
  else:
    raise ValueError(f"config.tool.kind={t.kind!r}; choose one of {TOOL_KINDS}")
  return CachedSearch(tool, d / "search_cache.sqlite") if t.cache else tool


def _environment(config, d: Path) -> Environment:
  world = make_world(config.world.seed) if uses_world(config) else None
  if config.tokenizer == "world" and not (d / TOKENIZER_FILE).is_file():
    texts = [p.text for p in world.passages] + [p.title for p in world.passages]
    texts += [q.question for q in world.questions()]
    texts += [line for name in TEMPLATES for line in load_template(name).splitlines() if line.strip()]
    train_tokenizer(texts, d / TOKENIZER_FILE, vocab_size=int(config.world.vocab_size))
  tokenizer = Tokenizer(_tokenizer_path(config, d))
  tool = _tool(config, d, world)
  train = [q for i, spec in enumerate(config.data.train) for q in questions(spec, f"train[{i}]")]
  dev = questions(config.data.dev, "dev")
  evaluated = questions(config.data[config.eval.set], config.eval.set)
  return Environment(tokenizer, world, tool, train, dev, evaluated)


def run(config, stages: Stages) -> StageResult:
  """The setup stage (skipped when done; the environment is rebuilt from its files either way)."""
  inputs = dict(tokenizer=config.tokenizer, world=config.world.to_dict() if uses_world(config) else None,
                tool=config.tool.to_dict(), checkpoint_l=config.models.l.checkpoint)
  return stages.run("setup", inputs, lambda d: _environment(config, d), load=lambda d: _environment(config, d))
