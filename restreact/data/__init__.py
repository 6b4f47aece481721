"""Question sets and the synthetic world for CPU demos (issues 4 and 6)."""

from restreact.data.solver import WorldSolver
from restreact.data.world import Hop, Passage, World, WorldQuestion, make_world

__all__ = ["Hop", "Passage", "World", "WorldQuestion", "WorldSolver", "make_world"]
