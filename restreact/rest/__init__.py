"""The ReST algorithm: step ranking (the LLM ranker, its rule-based stand-in, perplexity order), per-step SFT
examples and the mixtures built from them. Running it as an experiment is `restreact.runner`."""

from restreact.rest.card import MixtureCard, SourceCard, read_card
from restreact.rest.mixture import MixtureSource, allocate, answer_grounded, build_mixture, read_mixture
from restreact.rest.rank import (Rankable, Ranking, RankResult, count_statuses, follow_ranker, has_empty_field,
                                 parse_ranking, perplexity_order, rank_candidates, rank_steps, ranking_prompt,
                                 shuffled_order, step_rng)
from restreact.rest.sft_data import (SFTExample, StepRanking, read_rankings, step_examples, step_prompt, target_index,
                                     write_rankings)

__all__ = ["MixtureCard", "MixtureSource", "RankResult", "Rankable", "Ranking", "SFTExample", "SourceCard",
           "StepRanking", "allocate", "answer_grounded", "build_mixture", "count_statuses", "follow_ranker", "has_empty_field",
           "parse_ranking", "perplexity_order", "rank_candidates", "rank_steps", "ranking_prompt", "read_card",
           "read_mixture", "read_rankings", "shuffled_order", "step_examples", "step_rng", "step_prompt", "target_index",
           "write_rankings"]
