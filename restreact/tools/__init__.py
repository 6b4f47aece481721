"""Search backends behind one SearchTool interface: local BM25, retrieval servers, Wikipedia; a disk cache."""

from restreact.tools.base import CachedSearch, SearchError, SearchResult, SearchTool
from restreact.tools.bm25 import BM25Search
from restreact.tools.retrieval_server import RetrievalServerSearch
from restreact.tools.wikipedia import WikipediaSearch

__all__ = ["BM25Search", "CachedSearch", "RetrievalServerSearch", "SearchError", "SearchResult", "SearchTool",
           "WikipediaSearch"]
