"""Local BM25 search over a JSONL corpus of {id, title, text}, with bm25s; the offline default."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import Stemmer

from restreact.tools.base import SearchError, SearchResult, SearchTool

log = logging.getLogger(__name__)


def _bm25s():
  """bm25s, imported on first use: importing it runs a JAX op, which must wait for jax.distributed.initialize."""
  import bm25s
  return bm25s
DEFAULT_CACHE = Path(os.environ.get("RESTREACT_CACHE", Path.home() / ".cache" / "restreact"))
CORPUS_STAMP = "corpus.sha256"


def read_corpus(path: str | os.PathLike) -> list[dict]:
  """The corpus records; a line that is not a JSON object with string id/title/text is an error naming it."""
  docs = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        doc = json.loads(line)
      except ValueError as e:
        raise ValueError(f"{path}:{number}: not JSON ({e})") from None
      if not isinstance(doc, dict) or not all(isinstance(doc.get(key), str) for key in ("id", "title", "text")):
        raise ValueError(f"{path}:{number}: expected an object with string 'id', 'title' and 'text'")
      docs.append(doc)
  if not docs:
    raise ValueError(f"{path}: the corpus is empty")
  return docs


class BM25Search(SearchTool):
  """BM25 over title + text. The index is built once per corpus content and saved under `index_dir`."""

  name = "bm25"

  def __init__(self, corpus_path: str | os.PathLike, *, index_dir: str | os.PathLike | None = None,
               snippet_chars: int = 600):
    self.corpus_path = Path(corpus_path)
    if not self.corpus_path.exists():
      raise FileNotFoundError(f"corpus {self.corpus_path} does not exist")
    self.docs = read_corpus(self.corpus_path)
    self.fingerprint = hashlib.sha256(self.corpus_path.read_bytes()).hexdigest()[:16]
    self.index_dir = Path(index_dir) if index_dir else DEFAULT_CACHE / "bm25" / f"{self.fingerprint}-stem"
    self.snippet_chars = snippet_chars
    self.built = False
    stamp = self.index_dir / CORPUS_STAMP  # the index is of this corpus content, not of an older one at this path
    if (self.index_dir / "params.index.json").exists() and stamp.is_file() and \
        stamp.read_text().strip() == self.fingerprint:
      self.retriever = _bm25s().BM25.load(str(self.index_dir), show_progress=False)
    else:
      if self.index_dir.exists():
        log.warning("%s: the index is not of %s as it is now (edited in place?); rebuilding it", self.index_dir,
                    self.corpus_path)
      log.info("building the BM25 index of %s (%d documents)", self.corpus_path, len(self.docs))
      self.retriever = _bm25s().BM25()
      self.retriever.index(self._tokenize([f"{d['title']} {d['text']}" for d in self.docs]), show_progress=False)
      tmp = self.index_dir.with_name(self.index_dir.name + ".tmp")
      shutil.rmtree(tmp, ignore_errors=True)
      self.retriever.save(str(tmp), show_progress=False)
      (tmp / CORPUS_STAMP).write_text(self.fingerprint + "\n")
      shutil.rmtree(self.index_dir, ignore_errors=True)
      tmp.replace(self.index_dir)
      self.built = True

  _stemmer = Stemmer.Stemmer("english")

  @classmethod
  def _tokenize(cls, texts: list[str]):
    return _bm25s().tokenize(texts, stopwords="en", stemmer=cls._stemmer.stemWords, show_progress=False)

  def cache_key(self) -> str:
    return f"bm25:{self.fingerprint}"

  def _search_many(self, queries: list[str], k: int) -> list[list[SearchResult]]:
    k = min(k, len(self.docs))
    ids, scores = self.retriever.retrieve(self._tokenize(queries), k=k, show_progress=False, n_threads=1)
    out = []
    for row_ids, row_scores in zip(np.asarray(ids), np.asarray(scores)):
      hits = [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if s > 0]  # no shared term: no result
      out.append([self._result(i, s) for i, s in hits])
    return out

  def _search(self, query: str, k: int) -> list[SearchResult]:
    return self._search_many([query], k)[0]

  def _result(self, index: int, score: float) -> SearchResult:
    doc = self.docs[index]
    text = doc["text"]
    if len(text) > self.snippet_chars:
      text = text[:self.snippet_chars].rsplit(" ", 1)[0] + " ..."
    return SearchResult(doc["title"], text, doc["id"], score)


__all__ = ["BM25Search", "SearchError", "read_corpus"]
