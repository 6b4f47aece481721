"""The judge and the ranker wired to the real generation engine (tiny random model: its replies are noise)."""

import random
from types import SimpleNamespace

import pytest

from models_util import random_model
from restreact.agent import END_MARKER, AgentState, Search, statement
from restreact.eval import JudgeItem, auto_eval, summarize_verdicts
from restreact.generate import Engine
from restreact.models import train_tokenizer
from restreact.prompts import load_template
from restreact.rest import count_statuses, rank_steps


@pytest.mark.slow
def test_judge_and_ranker_through_the_engine(tmp_path):
  corpus = (load_template("judge") + load_template("ranking")).splitlines() * 4
  tok = train_tokenizer([line for line in corpus if line.strip()], tmp_path / "t.model", vocab_size=800)
  engine = Engine(random_model("gemma3-tiny", vocab_size=tok.vocab_size), tok, num_slots=4, max_len=1024,
                  prefill_chunk=256, prefill_buckets=(256,), eos_ids=())

  def generate(prompts):
    completions = engine.generate(prompts, max_new_tokens=12, temperature=0.5, stop=[END_MARKER], seed=0)
    return [c[0].text for c in completions]

  items = [JudgeItem("Which river flows through Florence?", "The Arno", "Arno"),
           JudgeItem("Which river flows through Paris?", "I am not sure", "Seine")]
  verdicts = auto_eval(items, generate, few_shot=False)
  summary = summarize_verdicts(verdicts)
  assert len(verdicts) == 2 and all(END_MARKER not in v.text for v in verdicts)
  assert summary.correct + summary.unparseable <= 2 and summary.correct == sum(v.implies is True for v in verdicts)

  state = AgentState("Which river flows through Florence?").render()
  actions = [Search(thoughts=f"search {i}", query=q) for i, q in enumerate(["Florence river", "Arno", "Tuscany"])]
  candidates = [SimpleNamespace(text=statement(a), mean_logprob=-float(i), parsed=a) for i, a in enumerate(actions)]
  [result] = rank_steps([(state, candidates)], generate=generate, rng=random.Random(0), few_shot=False)
  assert sorted(result.order) == [0, 1, 2] and result.fallback == (result.status != "ok")
  if result.fallback:  # noise rarely ranks three ids correctly: then it is perplexity order
    assert result.order == (0, 1, 2)
  assert count_statuses([result])["fallback"] == int(result.fallback)
