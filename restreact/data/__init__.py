"""Question sets and the synthetic world for CPU demos (issues 4 and 6)."""
