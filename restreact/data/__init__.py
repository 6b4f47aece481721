"""Question sets and the synthetic world for CPU demos (issues 4 and 6)."""

from restreact.data.download import DownloadError, RemoteFile, cache_dir, fetch, sha256_of
from restreact.data.questions import (QuestionRecord, load_questions, question_sets, read_question_file,
                                      register_question_set)

__all__ = ["DownloadError", "QuestionRecord", "RemoteFile", "cache_dir", "fetch", "load_questions", "question_sets",
           "read_question_file", "register_question_set", "sha256_of"]
