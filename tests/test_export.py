"""export_hf: a folder transformers loads with our logits (fp32 within 1e-4), our tokenization and Gemma's chat
template; our loader reads back the same parameters; LoRA exports merged; the folder appears whole or not at all."""

import io
import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import sentencepiece as spm
import torch
import transformers
from flax import nnx

import hf_reference as ref
from models_util import forward, random_model
from restreact.models import LoraConfig, Tokenizer, apply_lora, export_hf, from_pretrained, train_tokenizer
from restreact.models import export as export_module

TOL = 1e-4
TOKENS = np.random.default_rng(0).integers(0, 380, (2, 24))  # 24 tokens: three times the tiny window of 8
CORPUS = [f"Who directed film number {i}?\nThe director of film {i} was born in city {i % 7}.  Twice  spaced."
          for i in range(300)]
PROBES = ["Who directed film number 12? Ünïcode 🙂 ﬁ ①", "  two  spaces ", "Hello\n\nworld\tx", " lead",
          "<start_of_turn>user\nhi<end_of_turn>\n", "a<end_of_turn>b", "director\n\n\nfilm"] + CORPUS[:20]
CHAT = [{"role": "user", "content": "Who wrote Hamlet?"}, {"role": "assistant", "content": "Shakespeare."},
        {"role": "user", "content": "When?"}]


@pytest.fixture(scope="module")
def world_tokenizer(tmp_path_factory):
  """Like the demo's: trained by train_tokenizer (NFKC, newlines become spaces)."""
  path = tmp_path_factory.mktemp("world") / "tokenizer.model"
  train_tokenizer(CORPUS, path, vocab_size=380)
  return path


@pytest.fixture(scope="module")
def gemma_like_tokenizer(tmp_path_factory):
  """Like Gemma's own: no normalization, <bos>/<eos> pieces, <mask> and the turn markers as pieces."""
  buf = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CORPUS), model_writer=buf, vocab_size=380, hard_vocab_limit=False, model_type="bpe",
      pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>",
      unk_piece="<unk>", user_defined_symbols=["<mask>", "<start_of_turn>", "<end_of_turn>", "\n", "\n\n"],
      byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
      split_digits=True, allow_whitespace_only_pieces=True, character_coverage=1.0, minloglevel=2)
  path = tmp_path_factory.mktemp("gemma_like") / "tokenizer.model"
  path.write_bytes(buf.getvalue())
  return path


def _hf_model(path, dtype=torch.float32):
  return transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager",
                                                           local_files_only=True).eval()


def _params(model) -> dict:
  return {p: np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


@pytest.mark.parametrize("preset", ["gemma3-tiny", "gemma2-tiny"])
def test_float32_export_gives_transformers_our_logits_and_our_loader_our_params(preset, world_tokenizer, tmp_path):
  model = random_model(preset)
  out = export_hf(model, world_tokenizer, tmp_path / "hf")
  assert {p.name for p in out.iterdir()} == {"model.safetensors", "config.json", "tokenizer.model",
                                             "tokenizer_config.json", "generation_config.json"}
  config = json.loads((out / "config.json").read_text())
  family = {"gemma3-tiny": "Gemma3ForCausalLM", "gemma2-tiny": "Gemma2ForCausalLM"}[preset]
  assert config["architectures"] == [family] and config["dtype"] == "float32"
  ours = np.asarray(forward(model, TOKENS))
  assert np.abs(ours).max() > 1.0  # logits are not trivially small
  hf = _hf_model(out)
  assert type(hf).__name__ == family
  np.testing.assert_allclose(ref.logits(hf, TOKENS), ours, atol=TOL, rtol=0)
  again, tokenizer = from_pretrained(out, progress=False)
  assert again.config == model.config and tokenizer.encode(PROBES[0]) == Tokenizer(world_tokenizer).encode(PROBES[0])
  expected, got = _params(model), _params(again)
  assert expected.keys() == got.keys()
  for path in expected:
    np.testing.assert_array_equal(got[path], expected[path], err_msg=str(path))


@pytest.mark.parametrize("preset", ["gemma3-tiny", "gemma2-tiny"])
def test_bfloat16_export_keeps_the_bfloat16_weights(preset, world_tokenizer, tmp_path):
  model = random_model(preset, param_dtype="bfloat16", dtype="bfloat16")
  out = export_hf(model, world_tokenizer, tmp_path / "hf")
  assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
  header = json.loads((out / "model.safetensors").read_bytes()[8:][:int.from_bytes(
      (out / "model.safetensors").read_bytes()[:8], "little")])
  assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
  again, _ = from_pretrained(out, dtype="bfloat16", progress=False)
  expected, got = _params(model), _params(again)
  for path in expected:
    assert got[path].dtype == jnp.bfloat16
    np.testing.assert_array_equal(got[path], expected[path], err_msg=str(path))
  # transformers reads the same bf16 weights: in float32 compute both give the same logits
  assert _hf_model(out).dtype == torch.float32
  upcast, _ = from_pretrained(out, dtype="float32", progress=False)
  np.testing.assert_allclose(ref.logits(_hf_model(out), TOKENS), np.asarray(forward(upcast, TOKENS)), atol=TOL,
                             rtol=0)
  assert _hf_model(out, dtype="auto").dtype == torch.bfloat16


def test_lora_model_exports_merged(world_tokenizer, tmp_path):
  model = random_model("gemma3-tiny")
  apply_lora(model, LoraConfig(rank=4, targets=("q", "v", "down")), rngs=nnx.Rngs(1))
  rng = np.random.default_rng(5)
  for _, var in nnx.to_flat_state(nnx.state(model, nnx.LoRAParam)):  # as if trained: B no longer zero
    var.set_value(jnp.asarray(rng.normal(0, 0.1, var.get_value().shape), jnp.float32))
  base = np.asarray(forward(random_model("gemma3-tiny"), TOKENS))
  ours = np.asarray(forward(model, TOKENS))
  assert np.abs(ours - base).max() > 1e-2  # the adapters change the model
  out = export_hf(model, world_tokenizer, tmp_path / "hf")
  header = (out / "model.safetensors").read_bytes()[:20_000]
  assert b"lora" not in header
  np.testing.assert_allclose(ref.logits(_hf_model(out), TOKENS), ours, atol=TOL, rtol=0)


@pytest.mark.parametrize("which, cls", [("world", "PreTrainedTokenizerFast"), ("gemma_like", "GemmaTokenizer")])
def test_auto_tokenizer_tokenizes_as_ours_offline(which, cls, world_tokenizer, gemma_like_tokenizer, tmp_path,
                                                  monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  path = world_tokenizer if which == "world" else gemma_like_tokenizer
  out = export_hf(random_model("gemma3-tiny"), path, tmp_path / "hf")
  assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == cls
  hf = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  tok = Tokenizer(path)
  assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (tok.bos_id, tok.eos_id, tok.pad_id)
  assert len(hf) == tok.vocab_size  # no token added on top of the file's
  for text in PROBES:
    assert hf(text)["input_ids"] == tok.encode(text, add_bos=True), repr(text)
    assert hf.decode(tok.encode(text), skip_special_tokens=True) == tok.decode(tok.encode(text)), repr(text)
  generation = transformers.GenerationConfig.from_pretrained(out, local_files_only=True)
  assert tok.eos_id in generation.eos_token_id and tok.end_of_turn_id in generation.eos_token_id


def test_a_model_that_does_not_chat_gets_no_chat_template(world_tokenizer, tmp_path):
  """The demo's models learned raw prompts: no template, and <end_of_turn> does not end a reply."""
  from restreact.models.chat import detect_chat
  tok = Tokenizer(world_tokenizer)
  chat = export_hf(random_model("gemma3-tiny"), world_tokenizer, tmp_path / "chat")
  plain = export_hf(random_model("gemma3-tiny"), world_tokenizer, tmp_path / "plain", chat=False)
  assert "chat_template" in json.loads((chat / "tokenizer_config.json").read_text())
  assert "chat_template" not in json.loads((plain / "tokenizer_config.json").read_text())
  assert json.loads((plain / "generation_config.json").read_text())["eos_token_id"] == [tok.eos_id]
  assert detect_chat(chat)[0] and not detect_chat(plain)[0]  # what restreact itself concludes from the folder


def test_gemma_tokenizer_class_would_misread_a_normalizing_tokenizer(world_tokenizer, tmp_path):
  """Negative control for the class choice: transformers' Gemma conversion drops the world tokenizer's normalizer."""
  out = export_hf(random_model("gemma3-tiny"), world_tokenizer, tmp_path / "hf")
  config = json.loads((out / "tokenizer_config.json").read_text())
  (out / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "GemmaTokenizer"}))
  hf = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  assert hf("a\nb")["input_ids"] != Tokenizer(world_tokenizer).encode("a\nb", add_bos=True)


def test_a_checkpoints_tokenizer_json_travels_with_its_tokenizer(gemma_like_tokenizer, tmp_path):
  source = tmp_path / "checkpoint"
  source.mkdir()
  shutil.copy(gemma_like_tokenizer, source / "tokenizer.model")
  (source / "tokenizer_config.json").write_text(json.dumps(export_module.tokenizer_config(source / "tokenizer.model",
                                                                                          "gemma3")))
  transformers.AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(source)
  assert (source / "tokenizer.json").is_file()
  out = export_hf(random_model("gemma3-tiny"), source / "tokenizer.model", tmp_path / "hf")
  assert (out / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
  hf = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  tok = Tokenizer(gemma_like_tokenizer)
  assert all(hf(text)["input_ids"] == tok.encode(text, add_bos=True) for text in PROBES)


@pytest.mark.parametrize("preset, expected", [
    ("gemma3-tiny", "{bos}<start_of_turn>user\nBe brief.\n\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n"
                    "Shakespeare.<end_of_turn>\n<start_of_turn>user\nWhen?<end_of_turn>\n<start_of_turn>model\n"),
    ("gemma2-tiny", "{bos}<start_of_turn>user\nWho wrote Hamlet?<end_of_turn>\n<start_of_turn>model\n"
                    "Shakespeare.<end_of_turn>\n<start_of_turn>user\nWhen?<end_of_turn>\n<start_of_turn>model\n"),
])
def test_chat_template_is_gemmas(preset, expected, gemma_like_tokenizer, tmp_path):
  out = export_hf(random_model(preset), gemma_like_tokenizer, tmp_path / "hf")
  hf = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
  system = [{"role": "system", "content": "Be brief."}] if preset == "gemma3-tiny" else []
  text = hf.apply_chat_template(system + CHAT, tokenize=False, add_generation_prompt=True)
  assert text == expected.format(bos="<bos>")
  if preset == "gemma2-tiny":  # Gemma 2's template has no system role
    with pytest.raises(Exception, match="System role not supported"):
      hf.apply_chat_template([{"role": "system", "content": "x"}] + CHAT, tokenize=False)
  ids = hf.apply_chat_template(system + CHAT, add_generation_prompt=True, return_dict=False)
  ids = ids["input_ids"] if isinstance(ids, dict) else ids
  assert ids == Tokenizer(gemma_like_tokenizer).encode(text.removeprefix("<bos>"), add_bos=True)


def test_the_folder_appears_whole_or_not_at_all(world_tokenizer, tmp_path, monkeypatch):
  model, target = random_model("gemma2-tiny"), tmp_path / "hf"
  real = export_module.save_pretrained

  def crash(model, path, **kwargs):
    real(model, path, **kwargs)
    raise KeyboardInterrupt("killed while writing")

  monkeypatch.setattr(export_module, "save_pretrained", crash)
  with pytest.raises(KeyboardInterrupt):
    export_hf(model, world_tokenizer, target)
  assert not target.exists() and (tmp_path / ".hf.partial").is_dir()
  monkeypatch.setattr(export_module, "save_pretrained", real)
  export_hf(model, world_tokenizer, target)
  assert not (tmp_path / ".hf.partial").exists() and (target / "tokenizer_config.json").is_file()
  with pytest.raises(FileExistsError, match="overwrite=True"):
    export_hf(model, world_tokenizer, target)
  (target / "stale.txt").write_text("from an earlier export")
  export_hf(model, world_tokenizer, target, overwrite=True)
  assert not (target / "stale.txt").exists()


def test_a_tokenizer_larger_than_the_vocabulary_is_refused(world_tokenizer, tmp_path):
  with pytest.raises(ValueError, match="not this model's tokenizer"):
    export_hf(random_model("gemma3-tiny", vocab_size=256), world_tokenizer, tmp_path / "hf")
  assert not (tmp_path / "hf").exists()
