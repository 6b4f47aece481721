"""restreact: ReST meets ReAct, self-improving search agents in JAX/Flax (arXiv 2312.10003)."""

__version__ = "0.1.0"
