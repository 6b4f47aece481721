"""Question sets with reference answers, behind one `load_questions(name, path)`.

| name        | what                                   | source                                                                                          | licence |
|-------------|----------------------------------------|-------------------------------------------------------------------------------------------------|---------|
| bamboogle   | 125 two-hop questions (the paper's dev set) | Google Sheet of Press et al. 2022 (self-ask), CSV export `Question,Answer`; JSON/JSONL copies too | released with github.com/ofirpress/self-ask (MIT licence there; check before redistributing) |
| bamtwoogle  | 100 questions (the paper's test set)   | github.com/google-research-datasets/BamTwoogle `bamtwoogle.csv`, columns `question,answer`       | CC BY 4.0 |
| hotpotqa    | multi-hop Wikipedia questions          | hotpotqa.github.io JSON (`_id`, `question`, `answer`) or JSONL (`id`, `question`, `answer`)      | CC BY-SA 4.0 |
| nq_open     | Natural Questions, open-domain subset  | tensorflow-datasets `natural_questions_open` (answers is a list)                                | CC BY-SA 3.0 |
| jsonl / csv | any local file with question/answer fields (case-insensitive names) | your own                                                           | yours |

Bamboogle, BamTwoogle and the HotpotQA dev set download into `$RESTREACT_CACHE/data` (default
`~/.cache/restreact/data`) when no path is given. Other modules add sets with `register_question_set`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from restreact.data.download import RemoteFile, fetch

FILE_SUFFIXES = (".csv", ".json", ".jsonl")
ID_KEYS = ("id", "_id", "qid")
QUESTION_KEYS = ("question",)
ANSWER_KEYS = ("answer", "answers")

BAMBOOGLE = RemoteFile(
    "https://docs.google.com/spreadsheets/d/1jwcsA5kE4TObr9YHn9Gc-wQHYjTbLhDGx6tmIzMhl_U/export?format=csv",
    "bamboogle.csv")
BAMTWOOGLE = RemoteFile(
    "https://raw.githubusercontent.com/google-research-datasets/BamTwoogle/main/bamtwoogle.csv", "bamtwoogle.csv")
HOTPOTQA_DEV = RemoteFile("http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json",
                          "hotpot_dev_distractor_v1.json", max_bytes=256 << 20)


@dataclasses.dataclass(frozen=True)
class QuestionRecord:
  """One question; `answer` is the main reference and `answers` every accepted one (answer first)."""

  id: str
  question: str
  answer: str
  answers: tuple[str, ...]
  source: str

  def __post_init__(self):
    if not self.question.strip():
      raise ValueError(f"question {self.id!r} is empty")
    if not self.answers or self.answers[0] != self.answer:
      raise ValueError(f"question {self.id!r}: answers must start with the main answer {self.answer!r}")


QuestionLoader = Callable[..., list[QuestionRecord]]
_REGISTRY: dict[str, QuestionLoader] = {}


def register_question_set(name: str, loader: QuestionLoader, *, replace: bool = False) -> None:
  """Make `load_questions(name, path, **options)` call `loader(path, **options)`."""
  if not name or not name.isidentifier():
    raise ValueError(f"question set name {name!r} must be a Python identifier")
  if name in _REGISTRY and not replace:
    raise ValueError(f"question set {name!r} is already registered (pass replace=True to override it)")
  _REGISTRY[name] = loader


def question_sets() -> list[str]:
  """The registered set names."""
  return sorted(_REGISTRY)


def load_questions(name: str, path: str | os.PathLike | None = None, **options) -> list[QuestionRecord]:
  """The questions of set `name` (or of a local .csv/.json/.jsonl file given as `name`)."""
  if name in _REGISTRY:
    records = _REGISTRY[name](path, **options)
  elif path is None and Path(name).suffix.lower() in FILE_SUFFIXES:
    records = read_question_file(name, **options)
  else:
    raise ValueError(f"unknown question set {name!r}; known: {', '.join(question_sets())}, "
                     f"or a path ending in {', '.join(FILE_SUFFIXES)}")
  _check_unique(records, name)
  return records


def read_question_file(path: str | os.PathLike, *, source: str | None = None,
                       fmt: str | None = None) -> list[QuestionRecord]:
  """Questions from a local CSV, JSON (a list of objects) or JSONL file with question/answer fields.

  `fmt` ("csv", "json" or "jsonl") defaults to the file's suffix.
  """
  path = Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no such question file")
  fmt = fmt or path.suffix.lower().lstrip(".")
  readers = {"csv": _csv_rows, "json": _json_rows, "jsonl": _jsonl_rows}
  if fmt not in readers:
    raise ValueError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(readers)}")
  source = source or path.stem
  records = [_record(row, where, path, index, source) for index, (where, row) in enumerate(readers[fmt](path))]
  if not records:
    raise ValueError(f"{path}: holds no questions")
  return records


def _csv_rows(path: Path) -> Iterable[tuple[str, dict]]:
  with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: spreadsheet exports may start with a BOM
    reader = csv.DictReader(f)
    if not reader.fieldnames:
      raise ValueError(f"{path}: empty CSV (no header row)")
    _require_fields(reader.fieldnames, path)
    for row in reader:
      if any((v or "").strip() for k, v in row.items() if k is not None):
        yield f"{path}:{reader.line_num}", row


def _jsonl_rows(path: Path) -> Iterable[tuple[str, dict]]:
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        yield f"{path}:{number}", _json_object(line, f"{path}:{number}")


def _json_rows(path: Path) -> Iterable[tuple[str, dict]]:
  data = _json_object(path.read_text(encoding="utf-8"), str(path), want=list)
  for index, row in enumerate(data):
    if not isinstance(row, dict):
      raise ValueError(f"{path}: item {index} is a {type(row).__name__}, expected an object")
    yield f"{path}: item {index}", row


def _json_object(text: str, where: str, want: type = dict):
  try:
    value = json.loads(text)
  except ValueError as e:
    raise ValueError(f"{where}: not valid JSON ({e})") from None
  if not isinstance(value, want):
    raise ValueError(f"{where}: expected a JSON {'object' if want is dict else 'list of objects'}, "
                     f"got {type(value).__name__}")
  return value


def _lowered(row: Mapping) -> dict:
  """Field names matched case-insensitively (spreadsheets say 'Question', JSON says 'question')."""
  return {str(k).strip().lower(): v for k, v in row.items() if k is not None}


def _require_fields(names: Iterable, path: Path) -> None:
  lowered = {str(k).strip().lower() for k in names if k is not None}
  if not any(k in lowered for k in QUESTION_KEYS) or not any(k in lowered for k in ANSWER_KEYS):
    found = ", ".join(str(k) for k in names if k is not None) or "none"
    raise ValueError(f"{path}: needs a 'question' and an 'answer' (or 'answers') field, any case; found: {found}")


def _record(row: Mapping, where: str, path: Path, index: int, source: str) -> QuestionRecord:
  _require_fields(row, path)
  fields = _lowered(row)
  question = fields["question"]
  if not isinstance(question, str) or not question.strip():
    raise ValueError(f"{where}: the question is empty or not a string")
  answers = _answers([fields.get(key) for key in ANSWER_KEYS], where)
  qid = next((fields[k] for k in ID_KEYS if fields.get(k) not in (None, "")), None)
  qid = str(qid).strip() if qid is not None else f"{source}-{index:05d}"
  return QuestionRecord(qid, question.strip(), answers[0], answers, source)


def _answers(values: list, where: str) -> tuple[str, ...]:
  """Every accepted answer, main one first, stripped and without duplicates."""
  found: list[str] = []
  for value in values:
    items = value if isinstance(value, (list, tuple)) else [] if value is None else [value]
    for item in items:
      if isinstance(item, bytes):
        item = item.decode("utf-8")
      if isinstance(item, (int, float)) and not isinstance(item, bool):
        item = str(item)  # a spreadsheet year such as 1869 is still an answer
      if not isinstance(item, str):
        raise ValueError(f"{where}: an answer must be a string, got {type(item).__name__}")
      if item.strip() and item.strip() not in found:
        found.append(item.strip())
  if not found:
    raise ValueError(f"{where}: no answer")
  return tuple(found)


def _check_unique(records: list[QuestionRecord], name: str) -> None:
  seen: set[str] = set()
  for record in records:
    if record.id in seen:
      raise ValueError(f"question set {name!r}: id {record.id!r} appears more than once")
    seen.add(record.id)


def _cached(remote: RemoteFile, url: str | None, sha256: str | None, cache_dir) -> Path:
  if url and url != remote.url:
    # Another URL gets its own cache entry, so a cached copy of the default is never mistaken for it.
    stem, _, ext = remote.filename.rpartition(".")
    tag = hashlib.sha256(url.encode()).hexdigest()[:12]
    remote = dataclasses.replace(remote, url=url, filename=f"{stem}-{tag}.{ext}", sha256=None)
  if sha256:
    remote = dataclasses.replace(remote, sha256=sha256)
  return fetch(remote, folder=cache_dir)


def _remote_loader(name: str, remote: RemoteFile) -> QuestionLoader:
  def load(path=None, *, url: str | None = None, sha256: str | None = None, cache_dir=None) -> list[QuestionRecord]:
    path = Path(path) if path is not None else _cached(remote, url, sha256, cache_dir)
    return read_question_file(path, source=name)
  load.__doc__ = f"{name}: a local file, or {remote.url} downloaded into the cache."
  return load


def load_nq_open(path=None, *, split: str = "validation", download: bool = True) -> list[QuestionRecord]:
  """NQ-open through `tfds.data_source` (ArrayRecord; no TensorFlow needed to read); `path` is the TFDS data_dir."""
  import tensorflow_datasets as tfds  # heavy: imported only when this set is asked for

  source = tfds.data_source("natural_questions_open", split=split, data_dir=path, download=download)
  records = []
  for index in range(len(source)):
    example = source[index]
    question = example["question"]
    question = question.decode("utf-8") if isinstance(question, bytes) else str(question)
    where = f"natural_questions_open/{split}[{index}]"
    if not question.strip():
      raise ValueError(f"{where}: the question is empty")
    answers = _answers([list(example["answer"])], where)
    records.append(QuestionRecord(f"nq_open-{split}-{index:05d}", question.strip(), answers[0], answers, "nq_open"))
  return records


def _local_file(kind: str) -> QuestionLoader:
  def load(path=None, *, source: str | None = None) -> list[QuestionRecord]:
    if path is None:
      raise ValueError(f"question set {kind!r} needs a path to a {kind} file")
    return read_question_file(path, source=source, fmt=kind)
  load.__doc__ = f"Questions from a local {kind} file."
  return load


register_question_set("bamboogle", _remote_loader("bamboogle", BAMBOOGLE))
register_question_set("bamtwoogle", _remote_loader("bamtwoogle", BAMTWOOGLE))
register_question_set("hotpotqa", _remote_loader("hotpotqa", HOTPOTQA_DEV))
register_question_set("nq_open", load_nq_open)
register_question_set("jsonl", _local_file("jsonl"))
register_question_set("csv", _local_file("csv"))
register_question_set("json", _local_file("json"))
