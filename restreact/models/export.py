"""A model as a Hugging Face folder that transformers loads: weights, config, tokenizer and chat template.

`save_pretrained` writes the weights (LoRA merged in) and config.json; `export_hf` adds what a user of the
folder needs besides: tokenizer.model, tokenizer_config.json (special tokens; Gemma's chat template for a
model trained on chat turns) and generation_config.json (the ids that end a reply). The folder appears whole
or not at all: it is written under a temporary name next to the target and renamed.

Which tokenizer class transformers gets depends on the SentencePiece model's normalizer. Gemma's own
tokenizers normalize nothing ("identity", no dummy prefix); for them the folder says `GemmaTokenizer`, as
Google's checkpoints do. transformers' Gemma conversion ignores any other normalizer, so a tokenizer that has
one (the demo's world tokenizer maps newlines to spaces, NFKC) gets `PreTrainedTokenizerFast`, which
transformers >= 5 builds from tokenizer.model keeping the normalizer: both tokenize as ours does.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import jax
from jax.experimental import multihost_utils

from restreact.models.gemma.model import Transformer
from restreact.models.pretrained import save_pretrained
from restreact.models.tokenizer import TOKENIZER_FILE, Tokenizer

log = logging.getLogger(__name__)
HF_TOKENIZER_JSON = "tokenizer.json"

# Verbatim from transformers' Gemma 3 converter (convert_gemma3_weights_orbax_to_hf.py, `_CHAT_TEMPLATE`),
# the template of the published gemma-3-*-it tokenizer_config.json.
GEMMA3_CHAT_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# The published gemma-2-*-it tokenizer_config.json template (one line there; split here only for line length).
GEMMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")

CHAT_TEMPLATES = {"gemma3": GEMMA3_CHAT_TEMPLATE, "gemma2": GEMMA2_CHAT_TEMPLATE}


def tokenizer_config(tokenizer_file: str | os.PathLike, family: str, *, chat: bool = True) -> dict:
  """tokenizer_config.json for a SentencePiece file: class, special tokens (the file's own pieces) and, for a
  chat model, the chat template of its family."""
  from sentencepiece import sentencepiece_model_pb2  # needs protobuf: imported only when exporting

  proto = sentencepiece_model_pb2.ModelProto()
  proto.ParseFromString(Path(tokenizer_file).read_bytes())
  pieces = [p.piece for p in proto.pieces]
  piece = lambda i: pieces[i] if 0 <= i < len(pieces) else None
  spec = proto.trainer_spec
  norm = proto.normalizer_spec
  as_gemma = (norm.name or "identity") == "identity" and not norm.add_dummy_prefix and not norm.remove_extra_whitespaces
  out = {
      "tokenizer_class": "GemmaTokenizer" if as_gemma else "PreTrainedTokenizerFast",
      "bos_token": piece(spec.bos_id), "eos_token": piece(spec.eos_id), "pad_token": piece(spec.pad_id),
      "unk_token": piece(spec.unk_id),
      "mask_token": "<mask>" if "<mask>" in pieces else None,  # else GemmaTokenizer would add one
      "add_bos_token": True, "add_eos_token": False,
      "clean_up_tokenization_spaces": False, "spaces_between_special_tokens": False,
  }
  if chat and "<start_of_turn>" in pieces and "<end_of_turn>" in pieces:
    out["chat_template"] = CHAT_TEMPLATES[family]
  elif chat:
    log.warning("%s has no <start_of_turn>/<end_of_turn> pieces: the export gets no chat template", tokenizer_file)
  return out


def generation_config(cfg, tokenizer: Tokenizer, *, chat: bool = True) -> dict:
  """generation_config.json: a reply ends at the tokenizer's EOS, the model's EOS ids or, in a chat, <end_of_turn>."""
  turn = [tokenizer.end_of_turn_id] if chat and tokenizer.end_of_turn_id is not None else []
  eos = [tokenizer.eos_id, *cfg.eos_ids, *turn]
  return {"bos_token_id": tokenizer.bos_id, "eos_token_id": list(dict.fromkeys(eos)),
          "pad_token_id": tokenizer.pad_id}


def export_hf(model: Transformer, tokenizer_path: str | os.PathLike, out_dir: str | os.PathLike, *,
              chat: bool = True, dtype: str | None = None, overwrite: bool = False,
              max_shard_bytes: int = 2 << 30) -> Path:
  """Write `model` and its tokenizer as a Hugging Face folder `out_dir` that transformers loads.

  The architecture (Gemma2ForCausalLM / Gemma3ForCausalLM) and text config come from `model.config`; LoRA
  adapters are merged into the weights; `dtype` defaults to the parameter dtype. `chat`: the model speaks in
  Gemma's chat turns (fine-tuned from an -it checkpoint), so the folder gets the chat template and <end_of_turn>
  ends a reply; without it neither, since tools (and `restreact.models.chat.detect_chat`) read a template as
  "instruction-tuned". A tokenizer.json next to a `tokenizer.model` (a Hugging Face checkpoint's) is copied too.
  On multi-host runs every process calls this.
  """
  cfg, out_dir, tokenizer_path = model.config, Path(out_dir), Path(tokenizer_path)
  tokenizer = Tokenizer(tokenizer_path)
  if tokenizer.vocab_size > cfg.vocab_size:
    raise ValueError(f"{tokenizer_path} has {tokenizer.vocab_size} pieces, more than the model's vocab_size "
                     f"{cfg.vocab_size}: it is not this model's tokenizer")
  if (tokenizer.bos_id, tokenizer.pad_id) != (cfg.bos_id, cfg.pad_id) or tokenizer.eos_id not in cfg.eos_ids:
    log.warning("%s: bos/eos/pad ids %s differ from the model config's %s; generation_config.json takes the "
                "tokenizer's", tokenizer_path, (tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id),
                (cfg.bos_id, cfg.eos_ids, cfg.pad_id))
  if out_dir.exists() and not overwrite:
    raise FileExistsError(f"{out_dir} exists; pass overwrite=True to replace it")
  writer = jax.process_index() == 0
  tmp = out_dir.with_name(f".{out_dir.name}.partial")  # a crash leaves this, never a half-written out_dir
  if writer and tmp.exists():
    shutil.rmtree(tmp)
  save_pretrained(model, tmp, dtype=dtype, max_shard_bytes=max_shard_bytes)  # every process gathers
  if writer:
    shutil.copyfile(tokenizer_path, tmp / TOKENIZER_FILE)
    if tokenizer_path.name == TOKENIZER_FILE and (tokenizer_path.parent / HF_TOKENIZER_JSON).is_file():
      shutil.copyfile(tokenizer_path.parent / HF_TOKENIZER_JSON, tmp / HF_TOKENIZER_JSON)
    files = {"tokenizer_config.json": tokenizer_config(tokenizer_path, cfg.family, chat=chat),
             "generation_config.json": generation_config(cfg, tokenizer, chat=chat)}
    for name, content in files.items():
      (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
    if out_dir.exists():
      shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("restreact.export_hf")
  return out_dir
