"""Chat turns for instruction-tuned checkpoints: the ids of Gemma's own chat templates (as transformers renders
them), the same ids in the engine and in the SFT rows, the turn end as a stop, and detection from a folder."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm

from models_util import random_model
from restreact.agent.machine import AgentConfig, StepMachine
from restreact.agent.records import Lineage, read_records
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import EngineSampler
from restreact.eval.judge import judge_prompt
from restreact.models import Tokenizer
from restreact.models.chat import MODEL_TURN, USER_TURN, detect_chat, encode_prompt, resolve_chat
from restreact.prompts import load_template
from restreact.rest.rank import ranking_prompt
from restreact.rest.sft_data import step_prompt
from restreact.runner.model_store import ModelStore
from restreact.train.data import Example, PackedDataset, encode, row_tokens

ROOT = Path(__file__).resolve().parents[1]
LINEAGE = Lineage("test", 0, "cfg")

# The chat_template values of the published tokenizer_config.json files, JSON-escaped as they are there:
# google/gemma-3-*-it (a system message would be folded into the first user turn) and google/gemma-2-*-it.
GEMMA3_TEMPLATE = json.loads('"' + (
    r"{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is st"
    r"ring -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n"
    r"        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%"
    r"}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" "
    r"-%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    r"    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"C"
    r"onversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%-"
    r" if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n  "
    r"      {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\n' "
    r"+ (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n     "
    r"   {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for"
    r" item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ "
    r"'<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['tex"
    r"t'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise"
    r"_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n{%- endfor "
    r"-%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"
) + '"')
GEMMA2_TEMPLATE = json.loads('"' + (
    r"{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    r"{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    r"{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    r"{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    r"{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}") + '"')


def gemma_like_tokenizer(path: Path) -> Tokenizer:
  """A small SentencePiece model with Gemma's settings: its special pieces and ids, turn markers, no normalizer."""
  texts = [line for name in ("decision", "summarize", "judge", "ranking") for line in load_template(name).splitlines()]
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter([t for t in texts if t.strip()] * 2), model_writer=model, vocab_size=700,
      model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
      bos_piece="<bos>", unk_piece="<unk>", user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>"],
      byte_fallback=True, allow_whitespace_only_pieces=True, character_coverage=1.0, split_digits=True,
      hard_vocab_limit=False, add_dummy_prefix=False, remove_extra_whitespaces=False,
      normalization_rule_name="identity", minloglevel=2, num_threads=1)
  path.write_bytes(model.getvalue())
  return Tokenizer(path)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A tokenizer folder as transformers reads it (tokenizer.model and a tokenizer_config.json)."""
  d = tmp_path_factory.mktemp("gemma-tiny")
  gemma_like_tokenizer(d / "tokenizer.model")
  (d / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
  return d


@pytest.fixture(scope="module")
def tok(folder):
  return Tokenizer(folder / "tokenizer.model")


def step_prompts() -> list[str]:
  zero = StepMachine("Who founded the city where 'Xy' was born?", AgentConfig(few_shot=False), LINEAGE)
  few = StepMachine("What year?\nTwo lines.", AgentConfig(few_shot=True), LINEAGE)
  return [zero.next_request().prompt, few.next_request().prompt,
          judge_prompt("Who?", "Ann  Lee\n", "Ann Lee"),
          ranking_prompt("QUESTION = 'q'\n", ["ACTION_SELECTED = Search(query='a')  # [END]", "x = 1\n\n"], [1, 0]),
          "  leading spaces\n\ttabs and trailing newlines\n\n", "Ünïcode 🙂 and <b>markup</b>"]


@pytest.mark.parametrize("template", [GEMMA3_TEMPLATE, GEMMA2_TEMPLATE], ids=["gemma3", "gemma2"])
def test_ids_equal_transformers_apply_chat_template(folder, tok, template):
  transformers = pytest.importorskip("transformers")
  hf = transformers.AutoTokenizer.from_pretrained(str(folder))
  hf.chat_template = template
  for prompt in step_prompts():
    ref = hf.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
    ref = list(ref["input_ids"] if not isinstance(ref, list) else ref)
    assert encode_prompt(tok, prompt, chat=True) == ref, prompt[:80]
    assert ref[:2] == [tok.bos_id, tok.start_of_turn_id] and tok.end_of_turn_id in ref
  # The comparison sees whitespace and the turns: unwrapped or untrimmed prompts give other ids.
  prompt = step_prompts()[0]
  ref = hf.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True)
  ref = list(ref["input_ids"] if not isinstance(ref, list) else ref)
  assert tok.encode(f"{USER_TURN}{prompt}<end_of_turn>\n{MODEL_TURN}", add_bos=True) != ref
  assert encode_prompt(tok, prompt, chat=False) != ref


def test_training_rows_are_the_prompt_ids_then_the_reply_and_the_turn_end(tok):
  example = Example(step_prompts()[0], "ACTION_SELECTED = Search(query='Xy')  # [END]")
  prompt, target = encode_prompt(tok, example.prompt, chat=True), tok.encode(example.target)
  enc = encode(tok, example, 1024, chat=True)
  assert enc.tokens.tolist() == prompt + target + [tok.end_of_turn_id] and not enc.truncated
  assert enc.num_prompt == len(prompt) - 1  # labels from the first target token on carry loss
  assert row_tokens(tok, example, chat=True) == len(enc.tokens)
  plain = encode(tok, example, 1024)
  assert plain.tokens.tolist() == [tok.bos_id] + tok.encode(example.prompt) + target + [tok.eos_id]
  short = encode(tok, example, len(target) + 40, chat=True)  # the prompt loses its start, never its turn opener
  opener = tok.encode(USER_TURN, add_bos=True)
  assert short.truncated and short.tokens.tolist()[:len(opener)] == opener
  assert short.tokens.tolist()[-len(target) - 12:] == (prompt + target + [tok.end_of_turn_id])[-len(target) - 12:]
  assert len(short.tokens) == len(target) + 41
  data = PackedDataset(tok, [example], buckets=(1024,), rows_per_step=1, chat=True)
  assert data.items[0].tokens.tolist() == enc.tokens.tolist()


def load_common():
  from restreact import experiment
  return experiment


def test_rollout_with_chat_samples_from_the_ids_sft_trains_on(tmp_path, tok):
  config = load_common().get_config(0, "xs", "quick")
  config.models.l.chat = True
  config.engine.update(num_slots=4, max_len=1024, prefill_chunk=128, prefill_buckets=(32,))
  store = ModelStore(config, tok)
  assert store.chat("l") and not store.chat("s")  # set; a preset under None is no chat model
  engine = store.engine(random_model("gemma3-tiny", vocab_size=tok.vocab_size), size="l")
  assert engine.chat and tok.end_of_turn_id in np.asarray(engine.eos_ids).tolist()  # a turn end stops a sample
  submitted, submit = [], engine.submit
  engine.submit = lambda prompt, **kw: submitted.append(submit(prompt, **kw)) or submitted[-1]
  agent = AgentConfig(num_candidates=2, max_new_tokens=6, few_shot=False)
  tasks = [Task(f"q{i}", f"Where was person number {i} born?") for i in range(3)]
  rollout(tasks, EngineSampler(engine, agent, seed=1), object(), agent, tmp_path / "t.jsonl", lineage=LINEAGE,
          progress=False)
  steps = [s for r in read_records(tmp_path / "t.jsonl") for s in r.model_steps()]
  assert len(steps) == len(submitted) == 3  # a random model writes no action: one step each
  rows = []
  for step in steps:
    example = Example(step_prompt(step), step.candidates[0].text or "x")  # as the mixture feeds the trainer
    enc = encode(tok, example, 1024, chat=True)
    rows.append(enc.tokens[:1 + enc.num_prompt].tolist())
  assert sorted(rows) == sorted(r.prompt for r in submitted)
  assert all(r.prompt[1] == tok.start_of_turn_id for r in submitted)
  assert engine.stats["prefix_tokens_reused"] > 0  # the wrapped preamble is still a shared, prefilled prefix


def checkpoint(root: Path, name: str, tok_folder: Path, **files) -> Path:
  d = root / name
  d.mkdir()
  (d / "tokenizer.model").write_bytes((tok_folder / "tokenizer.model").read_bytes())
  files.setdefault("config.json", {"model_type": "gemma3_text", "eos_token_id": 1})
  for file, content in files.items():
    (d / file).write_text(content if isinstance(content, str) else json.dumps(content))
  return d


def test_detection_from_the_checkpoint_files(tmp_path, folder, tok):
  eot = tok.end_of_turn_id
  base = checkpoint(tmp_path, "gemma", folder, **{"tokenizer_config.json": {"bos_token": "<bos>"}})
  assert detect_chat(base)[0] is False
  with_template = checkpoint(tmp_path, "tuned", folder, **{"tokenizer_config.json": {"chat_template": GEMMA3_TEMPLATE}})
  assert detect_chat(with_template) == (True, "tokenizer_config.json has a chat_template")
  assert detect_chat(checkpoint(tmp_path, "jinja", folder, **{"chat_template.jinja": GEMMA3_TEMPLATE}))[0]
  assert detect_chat(checkpoint(tmp_path, "eos", folder, **{"config.json": {"eos_token_id": [1, eot]}}))[0]
  assert detect_chat(checkpoint(tmp_path, "gen", folder, **{"generation_config.json": {"eos_token_id": [1, eot]}}))[0]
  assert detect_chat(checkpoint(tmp_path, "gemma-3-1b-it", folder))[0]
  pt = checkpoint(tmp_path, "gemma-3-1b-pt", folder, **{"tokenizer_config.json": {"chat_template": "x"}})
  assert detect_chat(pt)[0] is False  # Google's name for a base checkpoint wins over a shipped template
  assert resolve_chat(None, with_template) and not resolve_chat(None, base) and not resolve_chat(None, "")
  assert resolve_chat(False, with_template) is False and resolve_chat(True, base) is True  # the config decides
  with pytest.raises(ValueError, match="use True, False or None"):
    resolve_chat("yes", base, where="config.models.l.chat")
  with pytest.raises(FileNotFoundError):
    detect_chat(tmp_path / "missing")


def test_chat_needs_the_turn_pieces():
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(["plain text only"] * 50), model_writer=model,
                                 vocab_size=40, minloglevel=2, hard_vocab_limit=False)
  plain = Tokenizer(model.getvalue())
  with pytest.raises(ValueError, match="<start_of_turn> and <end_of_turn>"):
    encode_prompt(plain, "hi", chat=True)
  assert encode_prompt(plain, "hi", chat=False) == [plain.bos_id] + plain.encode("hi")
