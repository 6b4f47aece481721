"""The ReAct search agent: action records, state rendering and a safe parser (more arrives with issue 4)."""

from restreact.agent.actions import (END_MARKER, STEP_TYPES, Action, Answer, CheckAnswer, ResultItem, ReviseAnswer,
                                     Search, SelectLink, Terminate, statement)
from restreact.agent.parser import ParseError, parse_action, parse_step
from restreact.agent.state import AgentState

__all__ = ["END_MARKER", "STEP_TYPES", "Action", "AgentState", "Answer", "CheckAnswer", "ParseError", "ResultItem",
           "ReviseAnswer", "Search", "SelectLink", "Terminate", "parse_action", "parse_step", "statement"]
