"""The ReAct search agent: action records, prompts, a safe parser, the step machine and the rollout loop."""

from restreact.agent.actions import (END_MARKER, STEP_TYPES, Action, Answer, CheckAnswer, ResultItem, ReviseAnswer,
                                     Search, SelectLink, Terminate, statement)
from restreact.agent.machine import AgentConfig, SearchRequest, StepRequest, Trajectory
from restreact.agent.parser import ParseError, parse_action, parse_step
from restreact.agent.prompts import load_template, preamble
from restreact.agent.records import (Candidate, Lineage, MachineStep, ModelStep, ToolStep, TrajectoryRecord,
                                     append_records, read_records)
from restreact.agent.rollout import RolloutSummary, Task, rollout
from restreact.agent.samplers import EngineSampler, ScriptedSampler
from restreact.agent.state import AgentState

__all__ = ["END_MARKER", "STEP_TYPES", "Action", "AgentConfig", "AgentState", "Answer", "Candidate", "CheckAnswer",
           "EngineSampler", "Lineage", "MachineStep", "ModelStep", "ParseError", "ResultItem", "ReviseAnswer",
           "RolloutSummary", "ScriptedSampler", "Search", "SearchRequest", "SelectLink", "StepRequest", "Task",
           "Terminate", "ToolStep", "Trajectory", "TrajectoryRecord", "append_records", "load_template",
           "parse_action", "parse_step", "preamble", "read_records", "rollout", "statement"]
