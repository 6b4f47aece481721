"""Question sets: local files in each shape, downloads over real HTTP on 127.0.0.1 with checksums, TFDS mock data."""

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from restreact.data import (DownloadError, QuestionRecord, RemoteFile, fetch, load_questions, needs_path,
                            question_sets, read_question_file, register_question_set)
from restreact.data import questions as questions_module

HOTPOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hotpotqa"
BAMBOOGLE_CSV = ('Question,Answer\n'
                 'Who painted the ceiling of the chapel that hosts papal conclaves?,Michelangelo\n'
                 '"In what year was the founder of Lisbon\'s oldest bookshop born, roughly?",1732\n'
                 ',\n')  # spreadsheet exports end in blank rows


@contextlib.contextmanager
def serve_bytes(body: bytes, status: int = 200):
  """Serve `body` at every path on 127.0.0.1; yields (base_url, list of paths requested)."""
  seen: list[str] = []

  class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
      seen.append(self.path)
      self.send_response(status)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
  finally:
    server.shutdown()
    server.server_close()


def write(path: Path, text: str) -> Path:
  path.write_text(text, encoding="utf-8")
  return path


def test_bamboogle_csv_with_capitalised_columns(tmp_path):
  records = load_questions("bamboogle", write(tmp_path / "bamboogle.csv", BAMBOOGLE_CSV))
  assert [r.answer for r in records] == ["Michelangelo", "1732"]
  assert records[1].question.startswith("In what year was the founder of Lisbon's")  # quoted comma kept
  assert records[0] == QuestionRecord("bamboogle-00000", records[0].question, "Michelangelo", ("Michelangelo",),
                                      "bamboogle")


def test_bamtwoogle_and_generic_csv(tmp_path):
  path = write(tmp_path / "bamtwoogle.csv", "question,answer\nWhich river runs through the city of the Uffizi?,Arno\n")
  [record] = load_questions("bamtwoogle", path)
  assert (record.id, record.answer, record.source) == ("bamtwoogle-00000", "Arno", "bamtwoogle")
  other = write(tmp_path / "mine.txt", "ID,QUESTION,ANSWER\nq7,Where is the Tagus mouth?,Lisbon\n")
  [mine] = load_questions("csv", other)  # the set name gives the format when the suffix does not
  assert (mine.id, mine.answer, mine.source) == ("q7", "Lisbon", "mine")


def test_hotpotqa_official_json_and_jsonl(tmp_path):
  official = [{"_id": "5ab1", "question": "Which band was formed first?", "answer": "The Kinks", "level": "hard"},
              {"_id": "5ab2", "question": "Are both cities in Italy?", "answer": "yes"}]
  records = load_questions("hotpotqa", write(tmp_path / "hotpot_dev.json", json.dumps(official)))
  assert [(r.id, r.answer, r.source) for r in records] == [("5ab1", "The Kinks", "hotpotqa"),
                                                            ("5ab2", "yes", "hotpotqa")]
  lines = "".join(json.dumps({"id": o["_id"], "question": o["question"], "answer": o["answer"]}) + "\n"
                  for o in official)
  assert load_questions("hotpotqa", write(tmp_path / "dev.jsonl", lines)) == records


@pytest.mark.skipif(not (HOTPOT / "dev100.jsonl").exists(), reason="../shared/data/hotpotqa is absent")
def test_hotpotqa_dev100():
  records = load_questions("hotpotqa", HOTPOT / "dev100.jsonl")
  assert len(records) == 100 and len({r.id for r in records}) == 100
  first = json.loads((HOTPOT / "dev100.jsonl").read_text().splitlines()[0])
  assert (records[0].id, records[0].question, records[0].answer) == (first["id"], first["question"], first["answer"])


def test_jsonl_with_answer_lists_any_case_and_a_path_as_name(tmp_path):
  rows = [{"Question": "Name a Tuscan river.", "Answers": ["Arno", " Serchio ", "Arno", ""]},
          {"question": "Capital of Tuscany?", "answer": "Florence", "answers": ["Firenze", "Florence"]},
          {"question": "Year of the flood?", "answer": 1966}]
  path = write(tmp_path / "rivers.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
  records = load_questions(str(path))
  assert [r.answers for r in records] == [("Arno", "Serchio"), ("Florence", "Firenze"), ("1966",)]
  assert [r.answer for r in records] == ["Arno", "Florence", "1966"] and records[0].id == "rivers-00000"
  assert load_questions("jsonl", path, source="mine")[0].source == "mine"


def test_bad_files_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.csv: no such question file"):
    load_questions("bamboogle", tmp_path / "missing.csv")
  wrong = write(tmp_path / "wrong.csv", "Q,A,Notes\nWho?,Me,\n")
  with pytest.raises(ValueError, match=r"wrong.csv: needs a 'question' and an 'answer'.*found: Q, A, Notes"):
    load_questions("bamtwoogle", wrong)
  header_only = write(tmp_path / "header.csv", "Prompt,Target\n")
  with pytest.raises(ValueError, match=r"header.csv: needs .*found: Prompt, Target"):
    load_questions("csv", header_only)
  with pytest.raises(ValueError, match=r"noanswer.csv:3: no answer"):
    load_questions("csv", write(tmp_path / "noanswer.csv", "question,answer\nA?,x\nB?,  \n"))
  with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
    load_questions("jsonl", write(tmp_path / "bad.jsonl", '{"question": "a?", "answer": "b"}\n{oops\n'))
  with pytest.raises(ValueError, match=r"list.json: expected a JSON list of objects, got dict"):
    load_questions("hotpotqa", write(tmp_path / "list.json", '{"data": []}'))
  with pytest.raises(ValueError, match=r"types.jsonl:1: an answer must be a string, got dict"):
    load_questions("jsonl", write(tmp_path / "types.jsonl", '{"question": "a?", "answer": {"x": 1}}\n'))
  with pytest.raises(ValueError, match=r"id 'q1' appears more than once"):
    load_questions("jsonl", write(tmp_path / "dup.jsonl", '{"id": "q1", "question": "a?", "answer": "b"}\n' * 2))
  with pytest.raises(ValueError, match=r"empty.jsonl: holds no questions"):
    load_questions("jsonl", write(tmp_path / "empty.jsonl", "\n"))
  with pytest.raises(ValueError, match=r"unknown question set 'trivia'; known: bamboogle"):
    load_questions("trivia")
  with pytest.raises(ValueError, match=r"needs a path to a jsonl file"):
    load_questions("jsonl")


def test_download_checks_the_checksum_and_caches(tmp_path, monkeypatch, caplog):
  body = BAMBOOGLE_CSV.encode()
  good = hashlib.sha256(body).hexdigest()
  monkeypatch.setenv("RESTREACT_CACHE", str(tmp_path / "cache"))
  with serve_bytes(body) as (url, seen):
    with pytest.raises(DownloadError, match=rf"SHA-256 {good}, expected {'0' * 64}.*nothing was cached"):
      load_questions("bamboogle", url=url + "/sheet.csv", sha256="0" * 64)
    assert not list((tmp_path / "cache" / "data").iterdir())  # rejected bytes never look cached
    records = load_questions("bamboogle", url=url + "/sheet.csv", sha256=good)
    assert [r.answer for r in records] == ["Michelangelo", "1732"] and len(seen) == 2
    assert load_questions("bamboogle", url=url + "/sheet.csv", sha256=good) == records and len(seen) == 2
    with caplog.at_level(logging.WARNING):  # no pinned checksum: log it so the user can pin it
      load_questions("bamtwoogle", url=url + "/b.csv", cache_dir=tmp_path / "other")
    assert good in caplog.text and len(seen) == 3
  [cached] = [p for p in (tmp_path / "cache" / "data").iterdir()]
  cached.write_text(BAMBOOGLE_CSV + "Who edited this?,Someone\n")
  with pytest.raises(DownloadError, match=r"cached copy has SHA-256 .* delete it"):
    load_questions("bamboogle", url=url + "/sheet.csv", sha256=good)


def test_download_failures(tmp_path):
  with serve_bytes(b"missing", status=404) as (url, _):
    with pytest.raises(DownloadError, match=r"/x.csv: HTTP 404"):
      fetch(RemoteFile(url + "/x.csv", "x.csv"), folder=tmp_path)
  with serve_bytes(b"busy", status=503) as (url, seen):
    with pytest.raises(DownloadError, match=r"HTTP 503 \(after 2 attempts\)"):
      fetch(RemoteFile(url + "/x.csv", "x.csv"), folder=tmp_path, retries=1, backoff=0.01)
    assert len(seen) == 2
  with serve_bytes(b"x" * 5000) as (url, _):
    with pytest.raises(DownloadError, match=r"larger than the 1000-byte limit"):
      fetch(RemoteFile(url + "/x.csv", "x.csv", max_bytes=1000), folder=tmp_path)
  assert not list((tmp_path / "data").iterdir())


def test_register_question_set():
  def synthetic(path=None, *, n=2):
    return [QuestionRecord(f"s{i}", f"Question {i}?", "yes", ("yes",), "synthetic") for i in range(n)]
  register_question_set("synthetic_test", synthetic)
  try:
    assert "synthetic_test" in question_sets()
    assert [r.id for r in load_questions("synthetic_test", n=3)] == ["s0", "s1", "s2"]
    with pytest.raises(ValueError, match="already registered"):
      register_question_set("synthetic_test", synthetic)
    register_question_set("synthetic_test", lambda path=None: synthetic(n=1), replace=True)
    assert len(load_questions("synthetic_test")) == 1
  finally:
    questions_module._REGISTRY.pop("synthetic_test")
  with pytest.raises(ValueError, match="must start with the main answer"):
    QuestionRecord("x", "Why?", "a", ("b", "a"), "t")


HOTPOT_ROWS = {"train": [{"_id": "t1", "question": "Which river is longer?", "answer": "Nile"}],
               "dev": [{"_id": "d1", "question": "Are both bands British?", "answer": "yes"}]}


def fake_fetch(tmp_path, calls):
  """A `fetch` that records the RemoteFile it was asked for and returns a local copy of that split."""
  def fetch(remote, *, folder=None):
    calls.append(remote)
    split = next(s for s, r in questions_module.HOTPOTQA.items() if r.filename == remote.filename)
    return write(tmp_path / remote.filename, json.dumps(HOTPOT_ROWS[split]))
  return fetch


def test_hotpotqa_split_picks_the_official_file(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(questions_module, "fetch", fake_fetch(tmp_path, calls))
  [train] = load_questions("hotpotqa", split="train")
  [dev] = load_questions("hotpotqa", split="dev")
  assert (train.id, dev.id) == ("t1", "d1")
  assert [c.url.rsplit("/", 1)[1] for c in calls] == ["hotpot_train_v1.1.json", "hotpot_dev_distractor_v1.json"]
  assert calls == [questions_module.HOTPOTQA["train"], questions_module.HOTPOTQA["dev"]]  # pinned checksums kept
  assert calls[0].sha256 == "26650cf50234ef5fb2e664ed70bbecdfd87815e6bffc257e068efea5cf7cd316"
  with pytest.raises(ValueError, match=r"hotpotqa: say which file to download: split='train'"):
    load_questions("hotpotqa")  # never a silent default: training on the dev file is what this prevents
  with pytest.raises(ValueError, match=r"unknown split 'validation'; choose one of train, dev"):
    load_questions("hotpotqa", split="validation")
  dev_file = write(tmp_path / "hotpot_dev_distractor_v1.json", json.dumps(HOTPOT_ROWS["dev"]))
  with pytest.raises(ValueError, match=r"split='train' but .*hotpot_dev_distractor_v1.json is the official dev file"):
    load_questions("hotpotqa", dev_file, split="train")
  assert load_questions("hotpotqa", dev_file, split="dev") == [dev] and len(calls) == 2  # a path: no download


def test_the_default_config_grows_on_hotpotqa_train_and_three_eli5_files(tmp_path, monkeypatch):
  from restreact.runner.setup import questions
  from restreact import experiment as common
  calls = []
  monkeypatch.setattr(questions_module, "fetch", fake_fetch(tmp_path, calls))
  train = common.get_config(2, "xs").data.train
  assert [(s["name"], s["options"]) for s in train] == [
      ("hotpotqa", {"split": "train"}), ("eli5", {"subreddit": "eli5"}), ("eli5", {"subreddit": "askhistorians"}),
      ("eli5", {"subreddit": "askscience"})]
  assert [r.id for r in questions(train[0], "train[0]")] == ["t1"] and calls == [questions_module.HOTPOTQA["train"]]
  with pytest.raises(ValueError, match=r"config\.data\.train\[2\]: question set 'eli5' has no download: set its path"):
    questions(train[2], "train[2]")
  rows = [{"id": "h1", "question": "Why did Rome fall?", "answers": ["Many reasons."], "subreddit": "AskHistorians"}]
  path = write(tmp_path / "eli5.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
  assert [r.source for r in questions(dict(train[2], path=str(path)), "train[2]")] == ["eli5_askh"]


def test_a_pinned_default_rejects_other_bytes(tmp_path, monkeypatch):
  with serve_bytes(json.dumps(HOTPOT_ROWS["dev"]).encode()) as (url, seen):
    # The real train entry and its real checksum, served other bytes from 127.0.0.1.
    moved = dataclasses.replace(questions_module.HOTPOTQA["train"], url=url + "/hotpot_train_v1.1.json")
    monkeypatch.setitem(questions_module.HOTPOTQA, "train", moved)
    with pytest.raises(DownloadError, match=r"expected 26650cf5.*nothing was cached"):
      load_questions("hotpotqa", split="train", cache_dir=tmp_path)
  assert seen == ["/hotpot_train_v1.1.json"] and not list((tmp_path / "data").iterdir())


def test_every_default_download_is_pinned_and_https_or_a_documented_exception():
  downloads = questions_module.DEFAULT_DOWNLOADS
  assert {questions_module.BAMBOOGLE, questions_module.BAMTWOOGLE, *questions_module.HOTPOTQA.values()} == set(
      downloads.values())
  for name, remote in downloads.items():
    host = urlparse(remote.url).hostname
    assert remote.url.startswith("https://") or host in questions_module.PLAIN_HTTP, f"{name}: {remote.url}"
    if remote.sha256 is None:
      assert name in questions_module.UNPINNED, f"{name} has no pinned SHA-256 and no documented reason"
      assert remote.url.startswith("https://"), f"{name}: plain http needs a pinned checksum"
    else:
      assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256) and name not in questions_module.UNPINNED, name
  # No stale exceptions: each one still names a default that needs it.
  assert all(downloads[name].sha256 is None for name in questions_module.UNPINNED)
  assert {urlparse(r.url).hostname for r in downloads.values() if r.url.startswith("http://")} == set(
      questions_module.PLAIN_HTTP)
  assert "/main/" not in questions_module.BAMTWOOGLE.url  # a branch can move under a pinned checksum


def test_needs_path():
  assert needs_path("eli5") and needs_path("jsonl") and not needs_path("hotpotqa") and not needs_path("synthetic")


def test_nq_open_through_tfds_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  rows = [{"question": b"who wrote the divine comedy", "answer": [b"Dante Alighieri", b"Dante"]},
          {"question": "when did the arno flood florence", "answer": ["4 November 1966"]}]
  # tfds.data_source reads ArrayRecord without TensorFlow; tfds.load would need TensorFlow.
  with tfds.testing.mock_data(as_data_source_fn=lambda builder, split, **kwargs: rows):
    records = load_questions("nq_open")
  assert [(r.id, r.answer, r.answers, r.source) for r in records] == [
      ("nq_open-validation-00000", "Dante Alighieri", ("Dante Alighieri", "Dante"), "nq_open"),
      ("nq_open-validation-00001", "4 November 1966", ("4 November 1966",), "nq_open")]
  with tfds.testing.mock_data(num_examples=4):  # random examples shaped by the real builder's features
    records = load_questions("nq_open", split="train")
  assert len(records) == 4 and all(r.question and r.answers for r in records)
