"""Step ranking by an LLM: template, prompt with shuffled candidates, reply parsing, mapping back, fallbacks."""

import dataclasses
import random
import re
from typing import Any

import numpy as np
import pytest

from restreact.agent import ParseError, Search, SelectLink, Terminate
from restreact.agent.actions import ALL_ACTIONS
from restreact.agent.parser import parse_action
from restreact.prompts import load_template
from restreact.rest import (count_statuses, has_empty_field, parse_ranking, perplexity_order, rank_candidates,
                            rank_steps, ranking_prompt, shuffled_order)

STEP_INPUT = "ORIGINAL_QUESTION: str = 'Which river flows through Florence?'\nPAST_ACTIONS: List[Action] = []"


@dataclasses.dataclass
class Cand:
  text: str
  mean_logprob: float
  parsed: Any


def search(query: str, logprob: float) -> Cand:
  action = Search(thoughts=f"look up {query}", query=query)
  return Cand(f"ACTION_SELECTED = {action.to_code()}  # [END]", logprob, action)


def presented(prompt: str) -> list[str]:
  """The candidate texts in the order the ranker sees them (the last CANDIDATES block: the query)."""
  block = prompt.rsplit("# CANDIDATES\n", 1)[1].split("\n\n# JUDGEMENT", 1)[0]
  lines = block.splitlines()
  assert [line.split(":", 1)[0] for line in lines] == [f"#{p + 1}" for p in range(len(lines))]
  return [line.split(": ", 1)[1] for line in lines]


def scoring_ranker(score):
  """A stand-in ranker that orders what it is shown by `score(text)`, best first; records its prompts."""
  prompts = []

  def generate(batch):
    prompts.extend(batch)
    out = []
    for prompt in batch:
      shown = presented(prompt)
      ranked = sorted(range(len(shown)), key=lambda p: -score(shown[p]))
      out.append(f" the best one searches for the river.\nAnswer: #{ranked[0] + 1}\n"
                 f"Ranking: {' > '.join(f'#{p + 1}' for p in ranked)}\n# [END]")
    return out
  return generate, prompts


def test_template_examples():
  text = load_template("ranking")
  head, marker, examples = text.partition("# EXAMPLES")
  assert marker and "empty element" in head and "Ranking: #X > #Y" in head
  blocks = examples.split("# STEP INPUT\n")[1:]
  assert len(blocks) >= 3
  for block in blocks:
    candidates = re.findall(r"^#\d+: (.*)$", block, re.MULTILINE)
    for candidate in candidates:
      try:
        parse_action(candidate, ALL_ACTIONS)
      except ParseError as e:
        assert "is empty" in str(e)  # the deliberately empty candidates
    judgement = block.split("# JUDGEMENT\n", 1)[1]
    ranking = parse_ranking(judgement, len(candidates))
    assert ranking.status == "ok" and judgement.rstrip().endswith("# [END]")
    assert ranking.best != 0 or len(candidates) < 3  # the best is not always shown first


def test_shuffled_order():
  for rng in (random.Random(3), np.random.default_rng(3)):
    order = shuffled_order(6, rng)
    assert sorted(order) == list(range(6)) and all(type(i) is int for i in order)
  assert shuffled_order(8, random.Random(1)) == shuffled_order(8, random.Random(1))
  assert len({tuple(shuffled_order(5, np.random.default_rng(s))) for s in range(10)}) > 1
  with pytest.raises(TypeError, match="rng must be random.Random or numpy.random.Generator"):
    shuffled_order(3, 7)


def test_ranking_prompt_shows_candidates_in_the_given_order():
  texts = ["ACTION_SELECTED = Terminate(thoughts='a')  # [END]\nleftover", "B", "C"]
  prompt = ranking_prompt(STEP_INPUT + "\n\n", texts, [2, 0, 1])
  assert presented(prompt) == ["C", "ACTION_SELECTED = Terminate(thoughts='a')", "B"]
  assert prompt.endswith("# JUDGEMENT\nExplanation:") and "# STEP INPUT\n" + STEP_INPUT + "\n\n# CANDIDATES" in prompt
  assert "Ponte Vecchio" in prompt
  zero = ranking_prompt(STEP_INPUT, texts, [0, 1, 2], few_shot=False)
  assert "# EXAMPLES" not in zero and "Ponte Vecchio" not in zero and zero.count("# CANDIDATES") == 1
  for bad in ([0, 1], [0, 0, 1], [1, 2, 3]):
    with pytest.raises(ValueError, match="is not a permutation of the 3 candidates"):
      ranking_prompt(STEP_INPUT, texts, bad)


@pytest.mark.parametrize("text, best, order, status", [
    ("Explanation: #2 is grounded.\nAnswer: #2\nRanking: #2 > #1 > #3", 1, (1, 0, 2), "ok"),
    (" #3 is best.\nAnswer: #3\nRanking: #3 > #1 > #2.\n# [END]\nRanking: #1 > #2 > #3", 2, (2, 0, 1), "ok"),
    ("Ranking: 2>3>1", 1, (1, 2, 0), "ok"),  # no Answer line, bare numbers
    ("Answer: #2\nRanking: #2 > #3", 1, (1, 2), "partial"),  # one missing
    ("Answer: #1\nRanking: #1 > #1 > #2", 0, (0, 1), "partial"),  # duplicated
    ("Ranking: #2 > #7 > #1 > #3", 1, (1, 0, 2), "partial"),  # out of range
    ("Answer: #3\nRanking: #1 > #2 > #3", 2, (0, 1, 2), "partial"),  # Answer contradicts Ranking
    ("Ranking: #2 > the rest > #1 > #3", 1, (1, 0, 2), "partial"),  # junk between ids
    ("Explanation: #1.\nAnswer: #1", 0, (0,), "partial"),  # answer only
    ("I think they are all fine.", None, (), "invalid"),
    ("Answer: none\nRanking: best > worst", None, (), "invalid"),
    ("", None, (), "invalid"),
    (None, None, (), "invalid")])
def test_parse_ranking(text, best, order, status):
  ranking = parse_ranking(text, 3)
  assert (ranking.best, ranking.order, ranking.status) == (best, order, status)


def test_parse_ranking_explanation():
  assert parse_ranking("Explanation: #2 is grounded.\nAnswer: #2\nRanking: #2 > #1", 2).explanation == \
      "#2 is grounded."
  assert parse_ranking(" it cites [1].\nmore.\nRanking: #1 > #2", 2).explanation == "it cites [1].\nmore."


def test_positions_map_back_to_original_indices():
  candidates = [search("Florence", -0.1), search("river Florence", -2.0), search("Arno river Florence", -3.0),
                search("Tuscany", -0.5)]
  generate, prompts = scoring_ranker(lambda text: len(re.search(r"query='(.*?)'", text).group(1)))
  orders = set()
  for seed in range(6):
    result = rank_candidates(STEP_INPUT, candidates, generate=generate, rng=random.Random(seed))
    assert result.order == (2, 1, 0, 3) and result.best == 2  # longest query first, whatever the shuffle
    assert (result.status, result.fallback, result.empty) == ("ok", False, ())
    assert [candidates[i].text.split("  # [END]")[0] for i in result.presented] == presented(result.prompt)
    assert result.ranking.order == tuple(result.presented.index(i) for i in result.order)
    orders.add(result.presented)
  assert len(orders) > 1 and len(prompts) == 6


def test_fallback_to_perplexity_order_is_flagged_and_counted():
  candidates = [search("a", -1.5), search("b", -0.2), search("c", float("nan")), search("d", -0.9)]
  assert perplexity_order(candidates) == [1, 3, 0, 2]
  garbage = rank_candidates(STEP_INPUT, candidates, generate=lambda ps: ["I like them all"] * len(ps),
                            rng=random.Random(0))
  partial = rank_candidates(STEP_INPUT, candidates, generate=lambda ps: ["Answer: #4\nRanking: #4 > #2"],
                            rng=random.Random(0))
  good_gen, _ = scoring_ranker(lambda text: "'c'" in text)
  good = rank_candidates(STEP_INPUT, candidates, generate=good_gen, rng=random.Random(0))
  assert (garbage.order, garbage.status, garbage.fallback) == ((1, 3, 0, 2), "invalid", True)
  assert (partial.order, partial.status, partial.fallback) == ((1, 3, 0, 2), "partial", True)
  assert good.best == 2 and not good.fallback
  assert count_statuses([garbage, partial, good]) == {"ok": 1, "partial": 1, "invalid": 1, "skipped": 0,
                                                      "perplexity": 0, "fallback": 2}
  plain = rank_candidates(STEP_INPUT, candidates, generate=None, rng=random.Random(0))  # no feedback: ablation
  assert (plain.order, plain.status, plain.fallback) == ((1, 3, 0, 2), "perplexity", False)


def test_candidates_with_empty_fields_rank_last():
  empty_thoughts = Cand("ACTION_SELECTED = Terminate(thoughts='  ')", 0.0, Terminate(thoughts="  "))
  unparsed = Cand("ACTION_SELECTED = Search(", -0.01, None)
  summary = SelectLink(comments="", selected_link_ids=(1,), grounded_summarization="Arno [link_id=1]")
  candidates = [unparsed, search("Arno", -1.0), empty_thoughts, search("Florence river", -2.0),
                Cand("ACTION_SELECTED = SelectLink(...)", -0.3, summary)]
  assert [has_empty_field(c.parsed) for c in candidates] == [True, False, True, False, True]
  assert not has_empty_field(Search(thoughts="t", query="q")) and has_empty_field({"answer": ""})
  # The ranker puts the empty ones first; they still end last (in the ranker's order among themselves).
  generate, _ = scoring_ranker(lambda text: {"Search(": 9, "Terminate(thoughts='  ')": 8, "SelectLink(...)": 7}
                               .get(text[len("ACTION_SELECTED = "):], 0) + ("Florence river" in text))
  result = rank_candidates(STEP_INPUT, candidates, generate=generate, rng=random.Random(5))
  assert result.order == (3, 1, 0, 2, 4) and result.empty == (0, 2, 4) and result.status == "ok"
  fallback = rank_candidates(STEP_INPUT, candidates, generate=lambda ps: ["?"], rng=random.Random(5))
  assert fallback.order == (1, 3, 2, 0, 4) and fallback.fallback


def test_skips_the_ranker_when_there_is_nothing_to_decide_and_batches_the_rest():
  generate, prompts = scoring_ranker(lambda text: "'b'" in text)
  lone = [search("a", -3.0), Cand("bad", -0.1, None)]
  two = [search("a", -0.1), search("b", -0.9)]
  results = rank_steps([(STEP_INPUT, lone), (STEP_INPUT, two), (STEP_INPUT, [search("z", 0.0)]), (STEP_INPUT, two)],
                       generate=generate, rng=random.Random(0))
  assert len(prompts) == 2  # one call holding only the two steps that need a judgement
  assert [(r.order, r.status, r.fallback) for r in results] == [
      ((0, 1), "skipped", False), ((1, 0), "ok", False), ((0,), "skipped", False), ((1, 0), "ok", False)]
  assert results[0].prompt is None and results[0].empty == (1,)
  with pytest.raises(ValueError, match="generate returned 1 texts for 2 prompts"):
    rank_steps([(STEP_INPUT, two), (STEP_INPUT, two)], generate=lambda ps: ["Ranking: #1 > #2"], rng=random.Random(0))
  with pytest.raises(ValueError, match="no candidates to rank"):
    rank_candidates(STEP_INPUT, [], generate=generate, rng=random.Random(0))
