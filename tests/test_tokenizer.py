"""SentencePiece wrapper: round trips, special ids read from the model file, the small-model trainer."""

import pytest
import sentencepiece as spm

from restreact.models import Tokenizer, train_tokenizer

TEXTS = [f"Who directed film number {i}? The director of film {i} was born in city {i % 7}." for i in range(300)]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
  return train_tokenizer(TEXTS, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=400)


def test_round_trip_and_specials(tok):
  text = "Who directed film number 12? Ünïcode and emoji 🙂 fall back to bytes."
  ids = tok.encode(text, add_bos=True, add_eos=True)
  assert ids[0] == tok.bos_id == 2 and ids[-1] == tok.eos_id == 1 and tok.pad_id == 0
  assert tok.decode(ids) == text
  assert tok.id_to_piece(tok.start_of_turn_id) == "<start_of_turn>"
  assert tok.id_to_piece(tok.end_of_turn_id) == "<end_of_turn>"
  assert tok.encode("<start_of_turn>user")[0] == tok.start_of_turn_id  # one piece, never split
  assert tok.decode(tok.encode("  two  spaces ")) == "  two  spaces "
  assert 300 < tok.vocab_size <= 400  # a small corpus may not fill the requested size


def test_turn_ids_are_read_from_the_file(tmp_path):
  """Gemma 2 and Gemma 3 put the turn markers at different ids; nothing may hard-code them."""
  import io
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_writer=buf, vocab_size=300,
                                 pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2, byte_fallback=True,
                                 user_defined_symbols=["<mask>", "<x>", "<start_of_turn>", "<end_of_turn>"])
  other = Tokenizer(buf.getvalue())
  assert (other.start_of_turn_id, other.end_of_turn_id) == (6, 7)
  plain = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(TEXTS), model_writer=plain, vocab_size=300,
                                 minloglevel=2)
  assert Tokenizer(plain.getvalue()).start_of_turn_id is None


def test_save_and_reload(tok, tmp_path):
  tok.save(tmp_path / "tokenizer.model")
  again = Tokenizer(tmp_path / "tokenizer.model")
  assert again.encode(TEXTS[3]) == tok.encode(TEXTS[3])


def test_bad_files(tmp_path):
  with pytest.raises(FileNotFoundError):
    Tokenizer(tmp_path / "nope.model")
  (tmp_path / "junk.model").write_bytes(b"not a model")
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    Tokenizer(tmp_path / "junk.model")


def test_from_pretrained_returns_the_checkpoint_tokenizer(tok, tmp_path):
  from models_util import random_model
  from restreact.models import from_pretrained, save_pretrained
  save_pretrained(random_model("gemma3-tiny"), tmp_path, tokenizer=tok)
  _, loaded = from_pretrained(tmp_path, progress=False)
  assert loaded.encode(TEXTS[0]) == tok.encode(TEXTS[0])
