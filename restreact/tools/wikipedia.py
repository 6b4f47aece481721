"""Wikipedia through the public MediaWiki API: a search generator with plain-text intro extracts."""

from __future__ import annotations

import requests

from restreact.tools.base import SearchError, SearchResult, SearchTool
from restreact.tools.http import request_json

API = "https://en.wikipedia.org/w/api.php"
USER_AGENT = "restreact/0.1 (research code; https://github.com/) requests"


class WikipediaSearch(SearchTool):
  """Top-k Wikipedia articles for a query, each with the first sentences of its introduction."""

  name = "wikipedia"

  def __init__(self, *, api_url: str = API, sentences: int = 4, timeout: float = 10.0, deadline: float = 30.0,
               retries: int = 2, backoff: float = 1.0, max_bytes: int = 4 << 20):
    self.api_url, self.sentences, self.deadline = api_url, sentences, deadline
    self.timeout, self.retries, self.backoff, self.max_bytes = timeout, retries, backoff, max_bytes
    self._session = requests.Session()
    self._session.headers["User-Agent"] = USER_AGENT  # Wikimedia's policy asks for one

  def cache_key(self) -> str:
    return f"wikipedia:{self.api_url}:{self.sentences}"

  def _search(self, query: str, k: int) -> list[SearchResult]:
    params = {"action": "query", "format": "json", "formatversion": 2, "generator": "search", "gsrsearch": query,
              "gsrlimit": k, "prop": "extracts|info", "inprop": "url", "exintro": 1, "explaintext": 1,
              "exsentences": self.sentences, "exlimit": k}
    body = request_json(self._session, "GET", self.api_url, params=params, timeout=self.timeout,
                        max_bytes=self.max_bytes, retries=self.retries, backoff=self.backoff, deadline=self.deadline)
    if not isinstance(body, dict):
      raise SearchError(f"{self.api_url}: unexpected answer {str(body)[:200]!r}")
    if "error" in body:
      raise SearchError(f"{self.api_url}: {body['error'].get('info', body['error'])}")
    pages = (body.get("query") or {}).get("pages") or []
    pages = sorted(pages, key=lambda p: p.get("index", 0))[:k]
    return [SearchResult(p.get("title", ""), (p.get("extract") or "").strip(), str(p.get("pageid", "")),
                         None, p.get("fullurl")) for p in pages]
