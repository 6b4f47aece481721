"""A scripted solver for the synthetic world: the correct action at every step, in the action language.

It plays the role of the paper's hand-written exemplars and pilot data: its trajectories are
correct by construction (search each hop's entity, select the passage about it, summarize the
fact with its link id, answer, pass both checks), and they go through the same step machine,
records and parser as a model's.
"""

from __future__ import annotations

from restreact.agent.actions import Answer, CheckAnswer, SelectLink, Search, Terminate
from restreact.agent.machine import StepRequest, Trajectory
from restreact.data.world import World, WorldQuestion

SCRIPTED_LOGPROB = -0.05  # per token; only the ordering of candidates uses it


class WorldSolver:
  """A policy for `ScriptedSampler`: `solver(machine, request)` -> [(action, logprobs)] * n."""

  def __init__(self, world: World):
    self.by_id = {q.id: q for q in world.questions()}

  def __call__(self, machine: Trajectory, request: StepRequest):
    question = self.by_id.get(machine.question_id)
    if question is None:
      raise KeyError(f"question {machine.question_id!r} is not in this world")
    action = self.action(question, machine, request.step_type)
    return [(action, [SCRIPTED_LOGPROB] * 8)] * request.n

  def action(self, question: WorldQuestion, machine: Trajectory, step_type: str):
    """The correct action for `step_type` given what the machine has seen so far."""
    found = self._found(machine)
    if step_type == "decision":
      if len(found) == len(question.hops):
        cites = ", ".join(f"{h.fact[:-1]} [link_id={i}]" for h, i in zip(question.hops, found))
        return Terminate(thoughts=f"The past actions hold every fact needed: {cites}.")
      hop = question.hops[len(found)]
      done = f"I know that {question.hops[len(found) - 1].fact[:-1]}. " if found else ""
      return Search(thoughts=f"{done}Next I need the page about {hop.title}.", query=hop.query)
    if step_type == "summarize":
      hop = question.hops[len(found)]
      shown = machine.state.current_results
      hits = [r.link_id for r in shown if r.link_text == hop.title]
      comments = " ".join(f"Link {r.link_id} is about {r.link_text}." for r in shown)
      if not hits:
        return SelectLink(comments=comments + f" None is about {hop.title}.", selected_link_ids=(),
                          grounded_summarization="")
      return SelectLink(comments=comments + f" Link {hits[0]} answers the question.",
                        selected_link_ids=(hits[0],), grounded_summarization=f"{hop.fact[:-1]} [link_id={hits[0]}].")
    if step_type == "answer":
      reasons = " ".join(f"{h.fact[:-1]} [link_id={i}]." for h, i in zip(question.hops, found))
      return Answer(thoughts=reasons, answer=question.answer)
    return CheckAnswer(passed=True)  # relevance and grounding: the scripted answer is right

  @staticmethod
  def _found(machine: Trajectory) -> list[int]:
    """The link ids selected so far, one per hop found."""
    return [a.selected_link_ids[0] for a in machine.state.past_actions
            if isinstance(a, SelectLink) and a.selected_link_ids]
