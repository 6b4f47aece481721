"""SFT input pipeline: loss on targets only, left-cut prompts, packing, buckets, seeded shuffles, process shards."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restreact.models import train_tokenizer
from restreact.train import Example, TrainConfig
from restreact.train.data import PackedDataset, encode, encode_all, first_fit, make_batch

WORDS = "alpha beta gamma delta search query answer terminate summary link thought".split()


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  rng = np.random.default_rng(0)
  texts = [" ".join(rng.choice(WORDS, 12)) for _ in range(200)]
  return train_tokenizer(texts, tmp_path_factory.mktemp("tok") / "t.model", vocab_size=400)


def _examples(n, seed=0, max_words=12):
  rng = np.random.default_rng(seed)
  return [Example(" ".join(rng.choice(WORDS, rng.integers(1, max_words))),
                  " ".join(rng.choice(WORDS, rng.integers(1, 4)))) for _ in range(n)]


def test_example_layout_and_loss_on_target_only(tok):
  ex = Example("search query", " answer")
  enc = encode(tok, ex, 64)
  prompt, target = tok.encode(ex.prompt), tok.encode(ex.target)
  assert enc.tokens.tolist() == [tok.bos_id] + prompt + target + [tok.eos_id] and not enc.truncated
  batch = make_batch([enc], [[0]], 64, tok.pad_id)
  n = enc.length
  assert batch.inputs[0, :n].tolist() == enc.tokens[:-1].tolist()
  assert batch.labels[0, :n].tolist() == enc.tokens[1:].tolist()
  # Weighted labels are exactly the target tokens and EOS.
  assert batch.labels[0][batch.weights[0] > 0].tolist() == target + [tok.eos_id]
  assert batch.weights[0, n:].sum() == 0 and (batch.segment_ids[0, n:] == 0).all()


def test_too_long_prompt_is_cut_from_the_left_and_counted(tok):
  long_prompt = " ".join(WORDS * 4)
  ex = Example(long_prompt, " final answer")
  target = tok.encode(ex.target)
  enc = encode(tok, ex, 16)
  assert enc.truncated and enc.length == 16
  assert enc.tokens[-len(target) - 1:-1].tolist() == target  # the target is whole
  assert enc.tokens[1:1 + enc.num_prompt].tolist() == tok.encode(long_prompt)[-enc.num_prompt:]  # prompt's end kept
  too_long_target = Example("q", " ".join(WORDS * 3))
  kept, stats = encode_all(tok, [ex, too_long_target, Example("a", " b")], 16)
  assert (stats.total, stats.truncated, stats.dropped, len(kept)) == (3, 1, 1, 2)


def test_packing_restarts_positions_and_separates_segments(tok):
  items, _ = encode_all(tok, _examples(6), 64)
  rows = first_fit([e.length for e in items], 64)
  batch = make_batch(items, rows, 64, tok.pad_id)
  for r, row in enumerate(rows):
    start = 0
    for seg, i in enumerate(row, start=1):
      n = items[i].length
      assert batch.positions[r, start:start + n].tolist() == list(range(n))
      assert (batch.segment_ids[r, start:start + n] == seg).all()
      start += n
  assert sum(len(r) for r in rows) == len(items) and len(rows) < len(items)  # several examples per row


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=60), st.integers(20, 40))
def test_first_fit_places_every_item_once_within_capacity(lengths, capacity):
  rows = first_fit(lengths, capacity)
  assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
  assert all(sum(lengths[i] for i in row) <= capacity for row in rows)


def test_epoch_is_deterministic_by_seed_and_covers_every_example(tok):
  data = PackedDataset(tok, _examples(40), buckets=(8, 16, 64), rows_per_step=4)
  a, b, c = data.epoch([1, 2]), data.epoch([1, 2]), data.epoch([3, 4])
  assert a == b and a != c
  seen = sorted(i for s in a for row in s.rows for i in row)
  assert seen == list(range(len(data.items)))
  for s in a:
    assert len(s.rows) == 4 and s.length in (8, 16, 64)
    assert all(sum(data.items[i].length for i in row) <= s.length for row in s.rows)
    assert all(data.items[i].length > {8: 0, 16: 8, 64: 16}[s.length] for row in s.rows for i in row)  # shortest fit
  assert len({s.length for s in a}) > 1


def test_processes_read_disjoint_shares_and_agree_on_the_schedule(tok):
  examples = _examples(50, seed=3)
  counts = {}

  def agree_for(p):  # stands in for the all-gathers of each epoch: row counts, then each step's target room
    calls = itertools.count()

    def agree(c):
      key = next(calls) % 2
      counts[p, key] = c
      known = [v for (_, k), v in counts.items() if k == key and len(v) == len(c)]
      return np.max(known, axis=0)
    return agree

  # The first pass lets both processes report their counts; the second plans with the agreed maximum.
  shares = [PackedDataset(tok, examples, buckets=(16, 32, 64), rows_per_step=2, process_index=p, process_count=2,
                          agree=agree_for(p)) for p in range(2)]
  for s in shares:
    s.epoch([7])
  plans = [s.epoch([7]) for s in shares]
  assert [st.length for st in plans[0]] == [st.length for st in plans[1]]
  assert [st.loss_capacity for st in plans[0]] == [st.loss_capacity for st in plans[1]]
  assert all(len(st.rows) == 2 for plan in plans for st in plan)
  tokens = sorted(tuple(s.items[i].tokens) for s, plan in zip(shares, plans) for st in plan for r in st.rows for i in r)
  assert tokens == sorted(tuple(e.tokens) for e in encode_all(tok, examples, 64)[0])  # each example exactly once


def test_config_rejects_impossible_shapes():
  with pytest.raises(ValueError, match="not divisible by grad_accum"):
    TrainConfig(batch_size=6, grad_accum=4)
  with pytest.raises(ValueError, match="longest bucket"):
    TrainConfig(seq_len=128, buckets=(32, 64))
  with pytest.raises(ValueError, match="warmup_steps"):
    TrainConfig(total_steps=10, warmup_steps=20)
  with pytest.raises(ValueError, match="LoRA rank"):
    TrainConfig(lora_rank=0)
  assert TrainConfig(seq_len=256).bucket_lengths == (64, 128, 256)
  with pytest.raises(ValueError, match="target is empty"):
    Example("prompt", "")
