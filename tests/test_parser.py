"""The parser reads actions back exactly, rejects everything else with ParseError, and never evaluates text."""

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restreact.agent import (END_MARKER, AgentState, Answer, CheckAnswer, ParseError, ResultItem, ReviseAnswer,
                             Search, SelectLink, Terminate, parse_step, statement)
from restreact.agent.actions import STEP_ACTIONS

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=80).filter(
    lambda s: END_MARKER not in s)  # the end marker is reserved
nonblank = text.filter(lambda s: s.strip())
ids = st.lists(st.integers(0, 10_000), max_size=6).map(tuple)
actions = st.one_of(
    st.builds(Search, thoughts=text, query=nonblank), st.builds(Terminate, thoughts=text),
    st.builds(SelectLink, comments=text, selected_link_ids=ids, grounded_summarization=text),
    st.builds(Answer, thoughts=text, answer=nonblank), st.builds(CheckAnswer, passed=st.booleans()),
    st.builds(ReviseAnswer, thoughts=text, revised_answer=nonblank))
STEP_OF = {cls: step for step, classes in STEP_ACTIONS.items() for cls in classes}


@given(actions)
def test_rendered_actions_parse_back_equal(action):
  assert parse_step(STEP_OF[type(action)], statement(action)) == action


@given(actions, st.sampled_from(["", "\n", "  # a comment\n"]), st.sampled_from(["", "\nmore text", "\n\n"]))
def test_surrounding_text_is_tolerated(action, before, after):
  assert parse_step(STEP_OF[type(action)], before + statement(action) + after) == action


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(STEP_ACTIONS)), st.text(max_size=300))
def test_random_text_never_crashes(step, junk):
  try:
    parse_step(step, junk)
  except ParseError:
    pass


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(actions, st.data())
def test_mutated_outputs_parse_or_raise_parse_error(action, data):
  """Deletions, insertions and truncations of a valid output: a valid record of the step, or ParseError."""
  good = statement(action)
  chars = list(good)
  for _ in range(data.draw(st.integers(1, 4))):
    kind = data.draw(st.sampled_from(["delete", "insert", "truncate"]))
    pos = data.draw(st.integers(0, max(0, len(chars) - 1)))
    if kind == "delete" and chars:
      del chars[pos]
    elif kind == "insert":
      chars.insert(pos, data.draw(st.sampled_from(list(string.printable) + ["'", '"', "(", ")", "[", "]"])))
    else:
      chars = chars[:pos]
  step = STEP_OF[type(action)]
  try:
    record = parse_step(step, "".join(chars))
  except ParseError:
    return
  assert isinstance(record, STEP_ACTIONS[step])


@pytest.mark.parametrize("text,message", [
    ("ACTION_SELECTED = __import__('os').system('touch /tmp/pwned')", "must be a call such as"),
    ("ACTION_SELECTED = Search(thoughts=open('/etc/passwd').read(), query='x')", "only string, int, bool"),
    ("ACTION_SELECTED = Search(thoughts='', query=f'{1+1}')", "only string, int, bool"),
    ("ACTION_SELECTED = Search('positional', query='x')", "keyword arguments only"),
    ("ACTION_SELECTED = Search(thoughts='', query='x', extra=1)", "unknown argument 'extra'"),
    ("ACTION_SELECTED = Search(thoughts='')", "missing query"),
    ("ACTION_SELECTED = Search(thoughts='', query='   ')", "query is empty"),
    ("ACTION_SELECTED = Answer(thoughts='', answer='x')", "not allowed here"),
    ("ACTION_SELECTED = Search(thoughts='', query=7)", "query must be str"),
    ("ACTION_SELECTED = Terminate(thoughts='')\nimport os", "exactly one statement"),
    ("ACTION_SELECTED = Search(thoughts='', query='x'", "not valid Python"),
    ("Search(thoughts='', query='x')", "no 'ACTION_SELECTED"),
    ("ACTION_SELECTED = Search(thoughts='', query='\\ud800')", "not valid Unicode"),  # a lone surrogate: no
    ("ACTION_SELECTED = Search(thoughts='\ud800', query='x')", "not valid Unicode"),    # JSONL write could hold it
])
def test_bad_outputs(text, message):
  with pytest.raises(ParseError, match=message):
    parse_step("decision", text)


def test_unknown_step_type_is_a_programming_error():
  with pytest.raises(ValueError, match="unknown step type"):
    parse_step("plan", "ACTION_SELECTED = Terminate(thoughts='')")


def test_selectlink_and_checks():
  out = parse_step("summarize", "ACTION_SELECTED = SelectLink(comments='[4] is about the film.', "
                                "selected_link_ids=[4], grounded_summarization='Directed by R. Wallace [link_id=4].')")
  assert out.selected_link_ids == (4,)
  assert parse_step("grounding", "ACTION_SELECTED = Check_Answer(passed=True)  # [END]") == CheckAnswer(True)
  with pytest.raises(ParseError, match="passed must be bool"):
    parse_step("relevance", "ACTION_SELECTED = Check_Answer(passed=1)")


def test_state_renders_as_code():
  state = AgentState("Who directed the film?", [Search(thoughts="Find it.", query="film director")],
                     remaining_searches=9, current_results=[ResultItem(1, "Film", "A 1945 film.")])
  assert state.render() == (
      "ORIGINAL_QUESTION: str = 'Who directed the film?'\n"
      "PAST_ACTIONS: List[Action] = [\n"
      "    Search(thoughts='Find it.', query='film director'),\n"
      "]\n"
      "REMAINING_SEARCHES: int = 9\n"
      "CURRENT_SEARCH_RESULTS: List[ResultItem] = [\n"
      "    ResultItem(link_id=1, link_text='Film', snippet='A 1945 film.'),\n"
      "]")
  with pytest.raises(ValueError, match="PAST_ACTIONS holds"):
    AgentState("q", [CheckAnswer(True)])
