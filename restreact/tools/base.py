"""The search-tool interface: results, errors, and the disk cache that makes reruns replay exactly."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

MAX_QUERY_CHARS = 500


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """One hit: the agent sees `link_text` (a title) and `snippet`; the rest is provenance."""

  link_text: str
  snippet: str
  doc_id: str = ""
  score: float | None = None
  url: str | None = None

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, raw: dict) -> SearchResult:
    return cls(**{f.name: raw.get(f.name, f.default) for f in dataclasses.fields(cls)})


class SearchError(RuntimeError):
  """A search that failed (after retries); the agent receives it as an observation, not an exception."""


class SearchTool(abc.ABC):
  """`search(query, k)` -> the top-k results. Backends implement `_search` (and may batch `_search_many`)."""

  name: str = "search"

  def search(self, query: str, k: int = 3) -> list[SearchResult]:
    """Top-k results for one query; raises SearchError on a bad query or a failed backend."""
    return self.search_many([query], k)[0]

  def search_many(self, queries: Sequence[str], k: int = 3) -> list[list[SearchResult]]:
    """Top-k results for each query, in order."""
    for query in queries:
      _check_query(query)
    if k < 1:
      raise SearchError(f"k must be at least 1, got {k}")
    try:
      answers = self._search_many(list(queries), k)
    except SearchError:
      raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as e:  # a malformed answer
      raise SearchError(f"{self.name}: unusable answer ({type(e).__name__}: {str(e)[:200]})") from e
    for results in answers:
      for r in results:
        if not (isinstance(r, SearchResult) and isinstance(r.link_text, str) and isinstance(r.snippet, str)):
          raise SearchError(f"{self.name}: a result that is not text: {str(r)[:200]!r}")
    return answers

  def _search_many(self, queries: list[str], k: int) -> list[list[SearchResult]]:
    return [self._search(q, k) for q in queries]

  @abc.abstractmethod
  def _search(self, query: str, k: int) -> list[SearchResult]:
    ...

  def cache_key(self) -> str:
    """What distinguishes this backend's answers from another's (for the disk cache)."""
    return self.name


def _check_query(query) -> None:
  if not isinstance(query, str) or not query.strip():
    raise SearchError(f"empty search query: {query!r}")
  if len(query) > MAX_QUERY_CHARS:
    raise SearchError(f"search query of {len(query)} characters is longer than {MAX_QUERY_CHARS}")


class CachedSearch(SearchTool):
  """A disk cache of (backend, query, k) -> results in front of any tool; failures are not cached.

  SQLite keeps it safe to share between the threads of the rollout loop and the processes of a rerun.
  """

  def __init__(self, tool: SearchTool, path: str | os.PathLike):
    self.tool, self.path = tool, Path(path)
    self.name = f"cached({tool.name})"
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._lock = threading.Lock()
    self._db = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
    with self._lock, self._db:
      self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    self.hits = self.misses = 0

  def _key(self, query: str, k: int) -> str:
    return hashlib.sha256(json.dumps([self.tool.cache_key(), query, k]).encode()).hexdigest()

  def _search_many(self, queries: list[str], k: int) -> list[list[SearchResult]]:
    keys = [self._key(q, k) for q in queries]
    with self._lock:
      rows = dict(self._db.execute(f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(keys))})",
                                   keys).fetchall())
    missing = [i for i, key in enumerate(keys) if key not in rows]
    self.hits += len(queries) - len(missing)
    self.misses += len(missing)
    if missing:
      fresh = self.tool.search_many([queries[i] for i in missing], k)
      with self._lock, self._db:
        for i, results in zip(missing, fresh):
          rows[keys[i]] = json.dumps([r.to_dict() for r in results])
          self._db.execute("INSERT OR REPLACE INTO results VALUES (?, ?)", (keys[i], rows[keys[i]]))
    return [[SearchResult.from_dict(r) for r in json.loads(rows[key])] for key in keys]

  def _search(self, query: str, k: int) -> list[SearchResult]:
    return self._search_many([query], k)[0]

  def cache_key(self) -> str:
    return self.tool.cache_key()

  def close(self) -> None:
    self._db.close()
