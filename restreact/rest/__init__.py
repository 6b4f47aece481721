"""The ReST loop: step ranking, SFT mixtures, generations, distillation (issue 6)."""

from restreact.rest.rank import (Candidate, Ranking, RankResult, count_statuses, has_empty_field, parse_ranking,
                                 perplexity_order, rank_candidates, rank_steps, ranking_prompt, shuffled_order)

__all__ = ["Candidate", "RankResult", "Ranking", "count_statuses", "has_empty_field", "parse_ranking",
           "perplexity_order", "rank_candidates", "rank_steps", "ranking_prompt", "shuffled_order"]
