"""The ReAct search agent: action records, prompts, a safe parser, the step machine and the rollout loop."""

from restreact.agent.actions import (STEP_TYPES, Action, Answer, CheckAnswer, ResultItem, ReviseAnswer, Search,
                                     SelectLink, Terminate, statement)
from restreact.agent.machine import AgentConfig, SearchRequest, StepMachine, StepRequest
from restreact.agent.parser import ParseError, parse_action, parse_step
from restreact.agent.records import (Candidate, Lineage, MachineStep, ModelStep, ToolStep, TrajectoryRecord,
                                     append_records, read_records)
from restreact.agent.rollout import RolloutSummary, Task, rollout
from restreact.agent.samplers import EngineSampler, ScriptedSampler
from restreact.agent.state import AgentState
from restreact.prompts import END_MARKER

__all__ = ["END_MARKER", "STEP_TYPES", "Action", "AgentConfig", "AgentState", "Answer", "Candidate", "CheckAnswer",
           "EngineSampler", "Lineage", "MachineStep", "ModelStep", "ParseError", "ResultItem", "ReviseAnswer",
           "RolloutSummary", "ScriptedSampler", "Search", "SearchRequest", "SelectLink", "StepMachine",
           "StepRequest", "Task", "Terminate", "ToolStep", "TrajectoryRecord", "append_records", "parse_action",
           "parse_step", "read_records", "rollout", "statement"]
