"""SentencePiece tokenizer of a Gemma checkpoint, and a trainer for small ones (tests, demos)."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

TOKENIZER_FILE = "tokenizer.model"
TURN_PIECES = ("<start_of_turn>", "<end_of_turn>")


class Tokenizer:
  """Encode/decode with the special ids read from the model file (they differ between Gemma 2 and 3)."""

  def __init__(self, model: str | os.PathLike | bytes):
    self._sp = spm.SentencePieceProcessor()
    if isinstance(model, bytes):
      self._proto = model
    else:
      path = Path(model)
      if not path.exists():
        raise FileNotFoundError(f"tokenizer model {path} does not exist")
      self._proto = path.read_bytes()
    try:
      self._sp.LoadFromSerializedProto(self._proto)
    except RuntimeError as e:
      raise ValueError(f"not a SentencePiece model: {model if not isinstance(model, bytes) else '<bytes>'}") from e
    self.start_of_turn_id = self._special(TURN_PIECES[0])
    self.end_of_turn_id = self._special(TURN_PIECES[1])

  def _special(self, piece: str) -> int | None:
    i = self._sp.piece_to_id(piece)
    return None if i == self._sp.unk_id() and piece != self._sp.id_to_piece(i) else i

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def bos_id(self) -> int:
    return self._sp.bos_id()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  @property
  def pad_id(self) -> int:
    return self._sp.pad_id()

  def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    """Token ids of `text`."""
    ids = self._sp.encode(text)
    return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids` (special control ids such as bos/eos/pad decode to nothing)."""
    return self._sp.decode([int(i) for i in ids])

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))

  def save(self, path: str | os.PathLike) -> None:
    """Write the SentencePiece model file."""
    Path(path).write_bytes(self._proto)


def train_tokenizer(texts: Iterable[str], path: str | os.PathLike, *, vocab_size: int = 512,
                    whole_words: Iterable[str] = ()) -> Tokenizer:
  """Train a small Gemma-like SentencePiece model (pad 0, eos 1, bos 2, unk 3, turn markers, byte fallback).

  The vocabulary has at most `vocab_size` pieces (fewer when the texts cannot fill it). Each of `whole_words`
  (say, the names of a synthetic world) becomes one piece wherever it occurs, so a model copies a name as one
  token instead of a string of sub-word pieces.
  """
  whole_words = sorted(set(whole_words))
  if bad := [w for w in whole_words if not w or any(c.isspace() for c in w)]:
    raise ValueError(f"whole words must be non-empty and without whitespace, got {bad[:3]}")
  if len(whole_words) + len(TURN_PIECES) + 4 >= vocab_size:
    raise ValueError(f"{len(whole_words)} whole words do not leave room in a vocabulary of {vocab_size} pieces")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(list(texts)), model_writer=model, vocab_size=vocab_size, model_type="bpe",
      pad_id=0, eos_id=1, bos_id=2, unk_id=3, user_defined_symbols=list(TURN_PIECES) + whole_words,
      byte_fallback=True, allow_whitespace_only_pieces=True,
      character_coverage=1.0, split_digits=True, hard_vocab_limit=False, minloglevel=2,
      add_dummy_prefix=False, remove_extra_whitespaces=False,  # as Gemma's tokenizer
      num_threads=min(2, os.cpu_count() or 1))
  Path(path).write_bytes(model.getvalue())
  return Tokenizer(path)
