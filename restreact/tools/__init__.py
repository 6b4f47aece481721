"""Search backends behind one SearchTool interface: BM25, retrieval servers, Wikipedia (issue 4)."""
