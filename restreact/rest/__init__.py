"""The ReST loop: step ranking, SFT mixtures, generations, distillation (issue 6)."""
