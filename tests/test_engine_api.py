"""Engine behaviour: sampling streams, n samples, stop strings, EOS, bad input, no recompilation, HF generate."""

import jax
import numpy as np
import pytest
import torch

import hf_reference as ref
from models_util import forward, random_model
from restreact.generate import Engine
from restreact.generate.stops import find_stop
from restreact.models import from_pretrained, train_tokenizer

PROMPT = np.random.default_rng(0).integers(3, 512, 11).tolist()
OTHER = np.random.default_rng(1).integers(3, 512, 17).tolist()


@pytest.fixture(scope="module")
def model():
  return random_model("gemma3-tiny")


def _engine(model, tokenizer=None, **kw):
  kw = {"num_slots": 4, "max_len": 64, "prefill_chunk": 16, "prefill_buckets": (8,), "eos_ids": (), **kw}
  return Engine(model, tokenizer, **kw)


def test_a_seed_gives_the_same_samples_whatever_shares_the_batch(model):
  engine = _engine(model)
  alone = engine.submit(PROMPT, max_new_tokens=10, temperature=1.0, seed=7)
  while not alone.done:
    engine.step()
  crowd = [engine.submit(OTHER, n=2, max_new_tokens=6, temperature=1.0),
           engine.submit(PROMPT, max_new_tokens=10, temperature=1.0, seed=7),
           engine.submit(PROMPT, max_new_tokens=10, temperature=1.0, seed=8)]
  while not all(r.done for r in crowd):
    engine.step()
  assert crowd[1].completions()[0].tokens == alone.completions()[0].tokens
  assert crowd[2].completions()[0].tokens != alone.completions()[0].tokens


def test_n_samples_share_one_prefill_and_differ(model):
  engine = _engine(model)
  [samples] = engine.generate([PROMPT], n=4, max_new_tokens=10, temperature=1.0)
  assert engine.stats["prefill_tokens"] == len(PROMPT) - 1  # once, not four times
  assert len({tuple(s.tokens) for s in samples}) > 1
  for s in samples:  # each sample's log-probs are the model's, whatever was sampled
    logits = np.asarray(forward(model, np.array([PROMPT + s.tokens[:-1]])))[0, len(PROMPT) - 1:]
    want = jax.nn.log_softmax(logits)[np.arange(len(s.tokens)), s.tokens]
    np.testing.assert_allclose(s.logprobs, want, atol=1e-4)


def test_top_k_and_top_p_restrict_the_choices(model):
  engine = _engine(model)
  [greedy] = engine.generate([PROMPT], max_new_tokens=8)[0]
  assert engine.generate([PROMPT], max_new_tokens=8, temperature=1.0, top_k=1)[0][0].tokens == greedy.tokens
  assert engine.generate([PROMPT], max_new_tokens=8, temperature=1.0, top_p=1e-6)[0][0].tokens == greedy.tokens
  samples = engine.generate([PROMPT], n=4, max_new_tokens=8, temperature=2.0, top_k=3, seed=3)[0]
  for s in samples:
    logits = np.asarray(forward(model, np.array([PROMPT + s.tokens[:-1]])))[0, len(PROMPT) - 1:]
    top3 = np.argsort(-logits, axis=-1)[:, :3]
    assert all(t in row for t, row in zip(s.tokens, top3))


def test_more_requests_than_slots_are_queued(model):
  engine = _engine(model, num_slots=2)
  out = engine.generate([PROMPT, OTHER, PROMPT[:5], OTHER[:9], PROMPT[:2]], n=2, max_new_tokens=5)
  assert [len(c) for c in out] == [2] * 5 and all(len(s.tokens) == 5 for c in out for s in c)
  assert engine.pending == 0


def test_eos_ends_a_sample(model):
  [greedy] = _engine(model).generate([PROMPT], max_new_tokens=8)[0]
  stop_token = greedy.tokens[3]
  [c] = _engine(model, eos_ids=(stop_token,)).generate([PROMPT], max_new_tokens=8)[0]
  first = greedy.tokens.index(stop_token)
  assert c.finish_reason == "eos" and c.tokens == greedy.tokens[:first + 1]


def test_no_recompilation_across_inserts_and_releases(model):
  engine = _engine(model, num_slots=3)
  fixed = ("_reset", "_copy", "_decode")  # shapes never change
  # Engines of one model structure share compiled functions, so count what this engine adds.
  before = {name: getattr(engine, name)._cache_size() for name in (*fixed, "_prefill", "_install")}
  engine.generate([(OTHER * 3)[:n] for n in (1, 8, 16, 30)], n=2, max_new_tokens=4)
  warm = {name: getattr(engine, name)._cache_size() for name in fixed}
  lengths = [2, 5, 9, 17, 40, 3, 12]
  engine.generate([(PROMPT * 4)[:n] for n in lengths], max_new_tokens=7, temperature=0.7, top_k=5)
  engine.generate([(OTHER * 3)[:n] for n in reversed(lengths)], n=3, max_new_tokens=3)
  assert {name: getattr(engine, name)._cache_size() for name in fixed} == warm
  assert engine._decode._cache_size() - before["_decode"] <= 1
  # Prefill shapes: one per (chunk bucket, lane-count bucket), whatever the prompts.
  assert engine._prefill._cache_size() - before["_prefill"] <= len(engine.chunk_sizes) * len(engine.lane_sizes)
  assert engine.stats["prefix_tokens_reused"] > 0  # repeated prompts were copied from the prefix cache
  assert engine._install._cache_size() - before["_install"] <= len(engine.lane_sizes)  # fixed-width block tables


def test_bad_input_is_a_clear_error(model):
  engine = _engine(model)
  with pytest.raises(ValueError, match="empty prompt"):
    engine.generate([[]], max_new_tokens=4)
  with pytest.raises(ValueError, match="exceeds max_len=64"):
    engine.generate([list(range(3, 63))], max_new_tokens=8)
  with pytest.raises(TypeError, match="unexpected keyword argument 'beam_width'"):
    engine.generate([PROMPT], max_new_tokens=4, beam_width=2)
  with pytest.raises(ValueError, match="n=5 must be between 1 and num_slots=4"):
    engine.generate([PROMPT], n=5, max_new_tokens=4)
  with pytest.raises(ValueError, match="temperature >= 0"):
    engine.generate([PROMPT], max_new_tokens=4, temperature=-1)
  with pytest.raises(ValueError, match="need a tokenizer"):
    engine.generate(["hello"], max_new_tokens=4)
  with pytest.raises(ValueError, match="outside the vocabulary"):
    engine.generate([[1, 2, 100_000]], max_new_tokens=4)
  with pytest.raises(TypeError, match="list of prompts"):
    engine.generate("hello", max_new_tokens=4)
  assert engine.pending == 0  # nothing half-submitted


def test_find_stop_across_token_boundaries(tmp_path):
  tok = train_tokenizer(["x = Search(query='a b')  # [END]\n"] * 50 + ["thoughts and answers"] * 50,
                        tmp_path / "t.model", vocab_size=300)
  text = "ACTION = Terminate()  # [END]\nmore text"
  ids = tok.encode(text)
  end, cut = find_stop(tok.decode, ids, ["# [END]", "never"])
  assert cut == "ACTION = Terminate()  "
  assert "# [END]" in tok.decode(ids[:end]) and "# [END]" not in tok.decode(ids[:end - 1])
  assert find_stop(tok.decode, ids, ["absent"]) is None


def test_stop_strings_cut_text_and_tokens(model, tmp_path):
  tok = train_tokenizer([f"line {i} of some sample text" for i in range(200)], tmp_path / "t.model", vocab_size=300)
  small = random_model("gemma3-tiny", vocab_size=tok.vocab_size)
  engine = _engine(small, tok)
  [free] = engine.generate(["line 3 of"], max_new_tokens=16)[0]
  pieces = [tok.decode(free.tokens[:i]) for i in range(len(free.tokens) + 1)]
  j = next(i for i in range(2, len(pieces)) if len(pieces[i]) - len(pieces[i - 1]) >= 1 and len(pieces[i - 1]) >= 2
           and pieces[i - 1] != pieces[i - 2])  # a stop string spanning the boundary of two tokens
  stop = pieces[j][len(pieces[j - 1]) - 1:len(pieces[j - 1]) + 1]
  [cut] = engine.generate(["line 3 of"], max_new_tokens=16, stop=[stop])[0]
  assert cut.finish_reason == "stop"
  assert cut.text == free.text[:free.text.index(stop)]
  assert cut.tokens == free.tokens[:len(cut.tokens)] and stop in tok.decode(cut.tokens)
  assert stop not in tok.decode(cut.tokens[:-1])


def test_greedy_equals_transformers_generate(tmp_path):
  hf = ref.causal_lm(ref.gemma3_config(rope_factor=8.0))
  hf.save_pretrained(tmp_path)
  model, _ = from_pretrained(tmp_path, progress=False)
  prompts = [PROMPT, OTHER, PROMPT[:4]]
  ours = _engine(model).generate(prompts, max_new_tokens=20)
  for prompt, [completion] in zip(prompts, ours):
    with torch.no_grad():
      out = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, eos_token_id=None,
                        pad_token_id=0, attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
    assert completion.tokens == out[0, len(prompt):].tolist()


def test_cancel_releases_slots_and_drops_queued_requests(model):
  engine = _engine(model, num_slots=2)
  running = engine.submit(PROMPT, n=2, max_new_tokens=40)
  queued = engine.submit(OTHER, max_new_tokens=5)
  engine.step()
  assert 0 < len(running.samples[0].tokens) < 40
  engine.cancel(queued)
  engine.cancel(running)
  assert [c.finish_reason for c in running.completions()] == ["cancelled"] * 2
  assert queued.done and engine.pending == 0
  [after] = engine.generate([PROMPT], n=2, max_new_tokens=4)  # the slots are free again
  assert [len(c.tokens) for c in after] == [4, 4]
