"""The OpenAI-compatible server (`restreact.serve`) over real HTTP on 127.0.0.1, around a tiny random checkpoint:
OpenAI's response shapes, greedy text equal to the engine's own, seeded sampling, logprobs both forms, 400s in
OpenAI's error shape, many clients sharing the slots; and the client side (references, the ranker/judge
generator, the remote policy sampler, API keys, a server that is down)."""

import concurrent.futures
import json

import numpy as np
import pytest

from serve_util import NAME, post, start_server, tiny_checkpoint
from restreact.agent.machine import AgentConfig, StepMachine
from restreact.agent.records import Lineage
from restreact.models.chat import wrap_messages
from restreact.serve.client import ClientSettings, OpenAIClient, OpenAIRef, RemoteModelError, identity, text_generator
from restreact.serve.sampler import RemoteSampler

PROMPT = "Who wrote Hamlet?"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  return tiny_checkpoint(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(checkpoint):
  s = start_server(checkpoint, num_slots=4, max_len=512)
  yield s
  s.close()


def test_models_lists_the_served_model(server):
  status, body = post(server.base_url + "/models", None)
  assert status == 200 and body["object"] == "list"
  assert [(m["id"], m["object"], m["max_model_len"]) for m in body["data"]] == [(NAME, "model", 512)]


def test_completions_n2_with_logprobs_in_openai_shape(server):
  request = {"model": NAME, "prompt": PROMPT, "n": 2, "max_tokens": 6, "temperature": 1.0, "top_p": 0.95,
             "top_k": 50, "seed": 7, "logprobs": 2}
  status, body = post(server.base_url + "/completions", request)
  assert status == 200, body
  assert body["id"].startswith("cmpl-") and body["object"] == "text_completion" and body["model"] == NAME
  assert isinstance(body["created"], int) and [c["index"] for c in body["choices"]] == [0, 1]
  prompt_tokens = len(server.tokenizer.encode(PROMPT, add_bos=True))
  generated = 0
  for choice in body["choices"]:
    assert set(choice) >= {"index", "text", "logprobs", "finish_reason"}
    assert choice["finish_reason"] in ("stop", "length")
    lp = choice["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    n = len(lp["tokens"])
    assert 1 <= n <= 6 and len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == len(lp["text_offset"]) == n
    assert all(x <= 0 for x in lp["token_logprobs"]) and lp["text_offset"][0] == 0
    assert lp["text_offset"] == list(np.cumsum([0] + [len(t) for t in lp["tokens"]])[:-1])
    assert choice["text"].startswith("".join(lp["tokens"])[:len(choice["text"])])
    for token, value, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
      assert top[token] == value and 1 <= len(top) <= 3  # the token itself, then the 2 best (vLLM's form)
    generated += n
  assert body["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": generated,
                           "total_tokens": prompt_tokens + generated}
  assert post(server.base_url + "/completions", request)[1]["choices"] == body["choices"]  # seeded


def test_greedy_text_is_the_engines_and_top_logprobs_agree(server):
  """Greedy over HTTP = Engine.generate on the same ids; the scored alternatives' best is the sampled token."""
  status, body = post(server.base_url + "/completions", {"prompt": [PROMPT, "Hello"], "max_tokens": 8,
                                                          "temperature": 0, "logprobs": 1})
  assert status == 200 and len(body["choices"]) == 2
  worker = server.worker
  expected = worker.call(lambda: server.engine.generate(
      [server.tokenizer.encode(p, add_bos=True) for p in (PROMPT, "Hello")], max_new_tokens=8)).result()
  for choice, [completion] in zip(body["choices"], expected):
    assert choice["text"] == completion.text
    np.testing.assert_allclose(choice["logprobs"]["token_logprobs"], completion.logprobs, atol=1e-5)
    for token, value, top in zip(*(choice["logprobs"][k] for k in ("tokens", "token_logprobs", "top_logprobs"))):
      assert list(top) == [token] and abs(top[token] - value) < 1e-5  # greedy: the best alternative is it


def test_chat_completions_wrap_gemma_turns_with_chat_logprobs(server):
  messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT},
              {"role": "assistant", "content": "Shakespeare."}, {"role": "user", "content": [
                  {"type": "text", "text": "When?"}]}]
  status, body = post(server.base_url + "/chat/completions", {
      "model": NAME, "messages": messages, "max_tokens": 5, "temperature": 0, "logprobs": True, "top_logprobs": 2})
  assert status == 200, body
  assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
  [choice] = body["choices"]
  assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
  content = choice["logprobs"]["content"]
  assert 1 <= len(content) <= 5 and all(set(e) == {"token", "logprob", "bytes", "top_logprobs"} for e in content)
  assert all(e["bytes"] == list(e["token"].encode()) and len(e["top_logprobs"]) == 2 for e in content)
  assert all(e["top_logprobs"][0]["token"] == e["token"] for e in content)  # greedy
  text = wrap_messages([("system", "Be brief."), ("user", PROMPT), ("assistant", "Shakespeare."), ("user", "When?")])
  assert body["usage"]["prompt_tokens"] == len(server.tokenizer.encode(text, add_bos=True))
  greedy = server.worker.call(lambda: server.engine.generate([server.tokenizer.encode(text, add_bos=True)],
                                                             max_new_tokens=5)).result()
  assert choice["message"]["content"] == greedy[0][0].text


def test_multi_turn_chat_equals_gemma3_template(tmp_path):
  transformers = pytest.importorskip("transformers")
  from test_chat import GEMMA3_TEMPLATE, gemma_like_tokenizer
  tok = gemma_like_tokenizer(tmp_path / "tokenizer.model")
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GemmaTokenizer"}))
  hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
  hf.chat_template = GEMMA3_TEMPLATE
  turns = [("system", "Answer briefly.\n"), ("user", " Who? "), ("assistant", "Ann.\n"), ("user", "Where?")]
  for messages in (turns, turns[1:], turns[1:2]):
    ref = hf.apply_chat_template([{"role": r, "content": t} for r, t in messages], add_generation_prompt=True,
                                 tokenize=True)
    ref = list(ref["input_ids"] if not isinstance(ref, list) else ref)
    assert tok.encode(wrap_messages(messages), add_bos=True) == ref
  with pytest.raises(ValueError, match="alternate"):
    wrap_messages([("user", "a"), ("user", "b")])


@pytest.mark.parametrize("path,body,param,words", [
    ("/completions", {"prompt": "x", "n": 0}, "n", "n must be an integer >= 1"),
    ("/completions", {"prompt": "x", "n": 5}, "n", "exceeds the 4 slots"),
    ("/completions", {"prompt": "x", "temperature": -1}, "temperature", "temperature must be"),
    ("/completions", {"prompt": "x", "stream": True}, "stream", "not supported"),
    ("/completions", {"prompt": "x", "logprobs": 21}, "logprobs", "<= 20"),
    ("/completions", {"prompt": "x", "stop": [3]}, "stop", "list of strings"),
    ("/completions", {"prompt": [[]]}, "prompt", "prompt must be"),
    ("/completions", {"prompt": [99999]}, "prompt", "outside the vocabulary"),
    ("/completions", {"prompt": "word " * 600, "max_tokens": 4}, "prompt", "maximum context length is 512 tokens"),
    ("/completions", {"prompt": "x", "max_tokens": 600}, "max_tokens", "maximum context length is 512 tokens"),
    ("/chat/completions", {"messages": []}, "messages", "non-empty list"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
     "messages", "alternate"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2}, "top_logprobs",
     "needs logprobs=true"),
])
def test_bad_requests_are_400_in_openai_error_shape(server, path, body, param, words):
  status, answer = post(server.base_url + path, body)
  assert status == 400, answer
  error = answer["error"]
  assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
  assert error["param"] == param and (words is None or words in error["message"]), error


def test_other_errors(server):
  assert post(server.base_url + "/completions", None, raw=b"{not json")[0] == 400
  status, answer = post(server.base_url + "/completions", {"model": "gpt-x", "prompt": "x"})
  assert status == 404 and answer["error"]["code"] == "model_not_found"
  assert post(server.base_url + "/nowhere", {})[0] == 404
  assert post(server.base_url.removesuffix("/v1") + "/health", None) == (200, {})


def test_concurrent_clients_share_the_slots(server):
  """Six clients at once (two samples each, 4 slots): every answer is what it is alone (seeded), in fewer decode
  rounds than one after another."""
  bodies = [{"prompt": f"Question {i}: who?", "n": 2, "max_tokens": 12, "temperature": 1.0, "seed": i}
            for i in range(6)]
  rounds = lambda: server.engine.stats["decode_rounds"]
  start = rounds()
  alone = [post(server.base_url + "/completions", b)[1]["choices"] for b in bodies]
  sequential = rounds() - start
  start = rounds()
  with concurrent.futures.ThreadPoolExecutor(6) as pool:
    together = list(pool.map(lambda b: post(server.base_url + "/completions", b), bodies))
  assert [status for status, _ in together] == [200] * 6
  assert [body["choices"] for _, body in together] == alone
  assert rounds() - start < sequential


def test_references_parse_and_name_their_form():
  ref = OpenAIRef.parse("openai:google/gemma-3-27b-it@http://10.0.0.5:8000/v1/")
  assert (ref.model, ref.base_url, ref.identity) == ("google/gemma-3-27b-it", "http://10.0.0.5:8000/v1",
                                                      "openai:google/gemma-3-27b-it")
  assert OpenAIRef.parse("openai:a@b@https://api.example.com/v1").model == "a@b"
  assert identity(str(ref)) == "openai:google/gemma-3-27b-it" and identity("base:l") == "base:l"
  for bad in ("openai:", "openai:model", "openai:@http://h/v1", "openai:m@ftp://h", "openai:m@http:///v1", "base:l"):
    with pytest.raises(ValueError, match="openai:MODEL@http://HOST:PORT/v1"):
      OpenAIRef.parse(bad)


def test_client_generates_for_ranker_and_judge(server, caplog):
  client = OpenAIClient(f"openai:{NAME}@{server.base_url}", ClientSettings(timeout=60, retries=0))
  client.check()
  generate = text_generator(client, max_new_tokens=6, stop=("[END]",))
  prompts = [PROMPT, "Hello", "word " * 600]  # the last is over the server's 512 tokens: an empty reply
  replies = generate(prompts)
  text = lambda p: server.tokenizer.encode(wrap_messages([("user", p)]), add_bos=True)
  expected = server.worker.call(lambda: server.engine.generate([text(p) for p in prompts[:2]], max_new_tokens=6,
                                                               stop=("[END]",))).result()
  assert replies == [c[0].text for c in expected] + [""]
  assert "maximum context length" in caplog.text
  with pytest.raises(RemoteModelError, match="serves \\['tiny-it'\\], not 'other'"):
    OpenAIClient(f"openai:other@{server.base_url}").check()


def test_remote_policy_samples_candidates_with_logprobs(server):
  client = OpenAIClient(f"openai:{NAME}@{server.base_url}", ClientSettings(timeout=60, retries=0))
  config = AgentConfig(num_candidates=2, temperature=1.0, max_new_tokens=10, few_shot=False)
  machine = StepMachine(PROMPT, config, Lineage("remote", 0, "cfg"), question_id="q1")
  sampler = RemoteSampler(client, config, seed=1, chat=False)
  handle = sampler.submit(machine.next_request(), machine)
  results = []
  while sampler.busy:
    results += sampler.poll()
  [(got, candidates)] = results
  assert got == handle and len(candidates) == 2
  assert all(0 < len(c.logprobs) <= 10 and all(x <= 0 for x in c.logprobs) for c in candidates)


def test_api_key_is_required_and_sent_from_the_environment(checkpoint, monkeypatch):
  server = start_server(checkpoint, num_slots=2, max_len=64, api_key="sk-test-123")
  try:
    assert post(server.base_url + "/models", None)[0] == 401
    assert post(server.base_url + "/models", None, headers={"Authorization": "Bearer sk-test-123"})[0] == 200
    client = OpenAIClient(f"openai:{NAME}@{server.base_url}", ClientSettings(api_key_env="MY_KEY", retries=0))
    with pytest.raises(RemoteModelError, match="HTTP 401") as e:
      client.check()
    assert "sk-test" not in str(e.value)
    monkeypatch.setenv("MY_KEY", "sk-test-123")
    client.check()
  finally:
    server.close()


def test_a_server_that_is_down_is_a_clear_error():
  client = OpenAIClient("openai:m@http://127.0.0.1:9/v1", ClientSettings(timeout=2, retries=1, backoff=0.1))
  with pytest.raises(RemoteModelError, match="openai:m@http://127.0.0.1:9/v1.*connection failed"):
    text_generator(client, max_new_tokens=4)(["hi"])


def test_pipeline_judge_asks_the_served_model(server, tmp_path):
  """The pipeline's judge for eval.judge='openai:...': one request per answer to grade, each prompt the judge's."""
  from restreact import experiment
  from restreact.eval import JudgeItem
  from restreact.runner.pipeline import Pipeline
  config = experiment.get_config(0, "xs", "quick")
  config.eval.update(judge=f"openai:{NAME}@{server.base_url}", judge_few_shot=False)  # fits 512 tokens
  config.openai.update(timeout=60.0, retries=0)
  judge = Pipeline(config, tmp_path).judge(0)
  assert judge.name == f"openai:{NAME}"
  before = server.engine.stats["decode_rounds"]
  verdicts = judge.grade([JudgeItem("Who?", "Ann Lee", "Ann Lee"), JudgeItem("Who?", "", "Bo")], [["Ann Lee"], ["Bo"]])
  assert len(verdicts) == 2 and verdicts[1].text == "no answer" and isinstance(verdicts[0].correct, bool)
  assert server.engine.stats["decode_rounds"] > before  # the served model was asked


def test_config_check_and_pilot_policy_take_openai_references(server, tmp_path):
  from restreact import experiment
  from restreact.runner.config_check import ConfigError, check_config, models_needed
  from restreact.runner.pipeline import Pipeline
  ref = f"openai:{NAME}@{server.base_url}"
  config = experiment.get_config(0, "xs", "quick")
  config.rank.ranker = config.eval.judge = config.pilot.source = ref
  check_config(config)
  assert "l" not in models_needed(xs_only(config))  # a remote L loads no weights (XS is still trained)
  name, make_sampler, agent = Pipeline(config, tmp_path)._policy(0)
  sampler = make_sampler(5)
  assert name == f"openai:{NAME}" and isinstance(sampler, RemoteSampler) and agent.few_shot and not sampler.chat
  config.rank.ranker, config.pilot.source, config.eval.judge = "openai:m", "openai:m@ftp://x", "base:xl"
  with pytest.raises(ConfigError) as e:
    check_config(config)
  lines = str(e.value).splitlines()
  assert any(line.startswith("config.rank.ranker: model reference 'openai:m': use 'openai:MODEL@") for line in lines)
  assert any(line.startswith("config.pilot.source: model reference 'openai:m@ftp://x'") for line in lines)
  assert any(line.startswith("config.eval.judge:") and "'openai:MODEL@http://HOST:PORT/v1'" in line for line in lines)


def xs_only(config):
  """The config with eval_sizes and size set to XS alone, so only references can ask for L."""
  config = config.copy_and_resolve_references()
  config.eval_sizes, config.size = ("xs",), "xs"
  return config
