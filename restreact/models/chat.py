"""The chat format of instruction-tuned Gemma checkpoints, and how to tell that a checkpoint was tuned on it.

A Gemma `-it` checkpoint learned turns: `<bos><start_of_turn>user\\n{prompt}<end_of_turn>\\n<start_of_turn>model\\n`,
then its reply, closed by `<end_of_turn>`. That is what the chat template of Gemma 2 and 3 (tokenizer_config.json)
renders for one user message with add_generation_prompt=True, the prompt stripped of surrounding whitespace as
the template's `trim` does. Every prompt of a chat model is encoded by `encode_prompt`: the engine's (policy,
ranker, judge) and the SFT rows' alike, so what a model is trained on cannot drift from what it samples from.

`detect_chat` decides whether a checkpoint folder is instruction-tuned (a model's `chat` setting left None), in
this order:
1. a folder name ending in `-it` says yes, one ending in `-pt` says no (Google's names for Gemma checkpoints);
2. else yes when the folder ships a chat template (`chat_template` in tokenizer_config.json, or a
   chat_template.jinja / chat_template.json file) or lists `<end_of_turn>` among the `eos_token_id` of
   config.json or generation_config.json (instruction-tuned Gemma checkpoints stop on it, base ones do not);
3. else no.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from restreact.models.tokenizer import TOKENIZER_FILE, Tokenizer

log = logging.getLogger(__name__)
USER_TURN = "<start_of_turn>user\n"
MODEL_TURN = "<start_of_turn>model\n"
END_OF_TURN = "<end_of_turn>"
AUTO = "auto"
TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")


def wrap(prompt: str) -> str:
  """`prompt` as the user turn of a chat, followed by the opening of the model's turn (no BOS: encoding adds it)."""
  return f"{USER_TURN}{prompt.strip()}{END_OF_TURN}\n{MODEL_TURN}"


def wrap_messages(messages: list[tuple[str, str]]) -> str:
  """A conversation of (role, text) turns as Gemma 3's chat template renders it with add_generation_prompt (no
  BOS): a leading "system" text prefixes the first user turn, "assistant" turns are the model's, roles must
  alternate user/assistant starting with user. One user turn gives `wrap(text)`."""
  if messages and messages[0][0] == "system":
    system, messages = messages[0][1], messages[1:]
  else:
    system = None
  if not messages:
    raise ValueError("a conversation needs at least one user message")
  out = []
  for i, (role, text) in enumerate(messages):
    if role not in ("user", "assistant") or (role == "user") != (i % 2 == 0):
      raise ValueError("conversation roles must alternate user/assistant/user/assistant/... after an optional "
                       f"first system message; message {i + (system is not None)} has role {role!r}")
    prefix = system + "\n\n" if i == 0 and system is not None else ""
    out.append(f"<start_of_turn>{'model' if role == 'assistant' else 'user'}\n{prefix}{text.strip()}{END_OF_TURN}\n")
  return "".join(out) + MODEL_TURN


def wrap_prefix(prefix: str) -> str:
  """How the wrapped prompts that start with `prefix` start (a shared preamble, prefilled once by the engine)."""
  return USER_TURN + prefix.lstrip()


def check_tokenizer(tokenizer: Tokenizer) -> None:
  """A chat model's tokenizer must hold the turn markers as single pieces."""
  if tokenizer is None or tokenizer.start_of_turn_id is None or tokenizer.end_of_turn_id is None:
    raise ValueError("chat prompts need a tokenizer with <start_of_turn> and <end_of_turn> pieces (Gemma's has "
                     "them); set the model's chat setting to False for a tokenizer without them")


def encode_prompt(tokenizer: Tokenizer, prompt: str, *, chat: bool) -> list[int]:
  """The ids a model is prompted with: BOS and `prompt`, wrapped in a user turn for a chat model."""
  if chat:
    check_tokenizer(tokenizer)
  return tokenizer.encode(wrap(prompt) if chat else prompt, add_bos=True)


def encode_prefix(tokenizer: Tokenizer, prefix: str, *, chat: bool) -> list[int]:
  """The ids every `encode_prompt(prefix + rest)` starts with (when the tokenizer does not merge across the seam)."""
  if chat:
    check_tokenizer(tokenizer)
  return tokenizer.encode(wrap_prefix(prefix) if chat else prefix, add_bos=True)


def head_length(tokenizer: Tokenizer, ids: list[int], *, chat: bool) -> int:
  """How many leading ids of an encoded prompt must survive truncation: BOS, and a chat model's user-turn opener."""
  if not chat:
    return 1
  head = tokenizer.encode(USER_TURN, add_bos=True)
  return len(head) if ids[:len(head)] == head else 1  # else a merge across the seam: keep BOS alone


def _json(path: Path) -> dict:
  try:
    value = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:
    raise ValueError(f"{path}: not readable JSON ({e})") from None
  return value if isinstance(value, dict) else {}


def _eos_ids(config: dict) -> set[int]:
  ids = set()
  for c in (config, config.get("text_config") or {}):
    value = c.get("eos_token_id")
    ids |= {int(i) for i in (value if isinstance(value, list) else [value]) if isinstance(i, int)}
  return ids


def detect_chat(checkpoint: str | os.PathLike) -> tuple[bool, str]:
  """(instruction-tuned?, why) for a Hugging Face checkpoint folder, by the rule of the module docstring."""
  path = Path(checkpoint)
  if not path.is_dir():
    raise FileNotFoundError(f"checkpoint {path} is not a directory")
  name = path.name.lower()
  if name.endswith("-it") or name.endswith("-pt"):
    return name.endswith("-it"), f"its folder name ends in {name[-3:]}"
  template = _json(path / "tokenizer_config.json").get("chat_template") \
      if (path / "tokenizer_config.json").is_file() else None
  if template:
    return True, "tokenizer_config.json has a chat_template"
  for file in TEMPLATE_FILES:
    if (path / file).is_file():
      return True, f"it ships {file}"
  if (path / TOKENIZER_FILE).is_file():
    end_of_turn = Tokenizer(path / TOKENIZER_FILE).end_of_turn_id
    for file in ("generation_config.json", "config.json"):
      if end_of_turn is not None and (path / file).is_file() and end_of_turn in _eos_ids(_json(path / file)):
        return True, f"{file} lists <end_of_turn> ({end_of_turn}) in eos_token_id"
  return False, "no chat template, no <end_of_turn> in eos_token_id, and no -it at the end of its folder name"


def resolve_chat(setting, checkpoint: str | os.PathLike | None, *, where: str = "chat") -> bool:
  """A model's chat setting: True or False as given; None (or "auto") = `detect_chat(checkpoint)`, False without
  a checkpoint."""
  if isinstance(setting, bool):
    return setting
  if setting not in (None, AUTO):
    raise ValueError(f"{where}={setting!r}; use True, False or None (detect from the checkpoint)")
  if not checkpoint:  # a preset with random weights was tuned on nothing
    return False
  chat, why = detect_chat(checkpoint)
  log.info("%s: %s is %sinstruction-tuned: %s", where, checkpoint, "" if chat else "not ", why)
  return chat
