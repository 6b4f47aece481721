"""Client for retrieval servers speaking `POST /retrieve` (the shape Search-R1 and verl use).

Request: {"queries": [...], "topk": k, "return_scores": true}.
Answer: {"result": [[{"document": {"id": ..., "contents": ...}, "score": ...}, ...], ...]}, one list per
query. Search-R1 indexes write contents as '"Title"\\ntext'; the title is split off when present.
"""

from __future__ import annotations

import os

import requests

from restreact.tools.base import SearchError, SearchResult, SearchTool
from restreact.tools.http import request_json


class RetrievalServerSearch(SearchTool):
  """Batched search against a retrieval server; an API key, if any, comes from an environment variable."""

  name = "retrieval_server"

  def __init__(self, url: str, *, api_key_env: str | None = "RETRIEVAL_API_KEY", timeout: float = 10.0,
               deadline: float = 30.0, retries: int = 2, backoff: float = 0.5, max_bytes: int = 8 << 20,
               snippet_chars: int = 600):
    self.url = url.rstrip("/") + ("" if url.rstrip("/").endswith("/retrieve") else "/retrieve")
    self.timeout, self.retries, self.backoff, self.max_bytes = timeout, retries, backoff, max_bytes
    self.deadline = deadline
    self.snippet_chars = snippet_chars
    self._session = requests.Session()
    key = os.environ.get(api_key_env) if api_key_env else None
    if key:
      self._session.headers["Authorization"] = f"Bearer {key}"

  def __repr__(self) -> str:  # never show the key
    return f"RetrievalServerSearch({self.url!r})"

  def cache_key(self) -> str:
    return f"retrieval_server:{self.url}"

  def _search_many(self, queries: list[str], k: int) -> list[list[SearchResult]]:
    body = request_json(self._session, "POST", self.url, json={"queries": queries, "topk": k, "return_scores": True},
                        timeout=self.timeout, max_bytes=self.max_bytes, retries=self.retries, backoff=self.backoff,
                        deadline=self.deadline)
    result = body.get("result") if isinstance(body, dict) else None
    if not isinstance(result, list) or len(result) != len(queries):
      raise SearchError(f"{self.url}: expected 'result' with {len(queries)} lists, got {str(body)[:200]!r}")
    return [[self._parse(hit) for hit in hits[:k]] for hits in result]

  def _search(self, query: str, k: int) -> list[SearchResult]:
    return self._search_many([query], k)[0]

  def _parse(self, hit) -> SearchResult:
    doc = hit.get("document", hit) if isinstance(hit, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("contents"), str):
      raise SearchError(f"{self.url}: a hit without document contents: {str(hit)[:200]!r}")
    title, _, text = doc["contents"].partition("\n")
    if not (title.startswith('"') and title.endswith('"') and len(title) > 1):
      title, text = str(doc.get("title") or doc.get("id", "")), doc["contents"]
    text = text.strip()
    if len(text) > self.snippet_chars:
      text = text[:self.snippet_chars].rsplit(" ", 1)[0] + " ..."
    score = hit.get("score")
    return SearchResult(title.strip('"'), text, str(doc.get("id", "")), float(score) if score is not None else None)
