"""Question sets (Bamboogle, BamTwoogle, HotpotQA, NQ-open, ELI5, local files) and the synthetic world for CPU demos."""

from restreact.data.download import DownloadError, RemoteFile, cache_dir, fetch, sha256_of
from restreact.data.questions import (QuestionRecord, load_questions, needs_path, question_sets, read_question_file,
                                      register_question_set)
from restreact.data.eli5 import load_eli5  # registers the "eli5" set
from restreact.data.solver import WorldSolver
from restreact.data.world import Hop, Passage, World, WorldQuestion, make_world

__all__ = ["DownloadError", "Hop", "Passage", "QuestionRecord", "RemoteFile", "World", "WorldQuestion", "WorldSolver",
           "cache_dir", "fetch", "load_eli5", "load_questions", "make_world", "needs_path", "question_sets",
           "read_question_file", "register_question_set", "sha256_of"]
