"""A scripted solver for the synthetic world: the right action at every step, from what it has observed.

It plays the role of the paper's hand-written exemplars and pilot data. It reads the question and
the search results with the world's grammar, searches each entity on the question's chain, selects
the result that states the fact it needs and summarizes that fact with its link id, then answers
from its own summaries and passes both checks. It never reads the reference answer: when a search
does not show the fact it needs, it says so, and an answer it cannot ground says that too. Its
trajectories go through the same step machine, records and parser as a model's.
"""

from __future__ import annotations

from restreact.agent.actions import Answer, CheckAnswer, SelectLink, Search, Terminate
from restreact.agent.machine import StepRequest, StepMachine
from restreact.data import grammar
from restreact.data.world import World

SCRIPTED_LOGPROB = -0.05  # per token; only the ordering of candidates uses it
NOT_FOUND = "The past actions do not say."


class WorldSolver:
  """A policy for `ScriptedSampler`: `solver(machine, request)` -> [(action, logprobs)] * n."""

  def __init__(self, world: World | None = None):
    self.world = world  # kept for callers; the solver reads only the trajectory's own text

  def __call__(self, machine: StepMachine, request: StepRequest):
    action = self.action(machine, request.step_type)
    return [(action, [SCRIPTED_LOGPROB] * 8)] * request.n

  def action(self, machine: StepMachine, step_type: str):
    """The right action for `step_type` given what the machine has seen so far."""
    state = machine.state
    parsed = grammar.read_question(state.question)
    if parsed is None:
      raise ValueError(f"the question {state.question!r} is not in the synthetic world's language")
    subject, chain = parsed
    facts = [f for a in state.past_actions if isinstance(a, SelectLink)
             for f in grammar.read_facts(a.grounded_summarization)]
    resolved, entity = grammar.follow(subject, chain, facts)
    if step_type == "decision":
      if resolved == len(chain):
        return Terminate(thoughts="The past actions hold every fact needed.")
      return Search(thoughts=f"I need the page about {entity}.", query=entity)
    if step_type == "summarize":
      relation = chain[resolved] if resolved < len(chain) else None
      for result in state.current_results:
        for s, r, o in grammar.read_facts(result.snippet):
          if (s, r) == (entity, relation):
            return SelectLink(comments=f"Link {result.link_id} is about {entity}.", selected_link_ids=(result.link_id,),
                              grounded_summarization=f"{grammar.fact_sentence(result.snippet, s, r)[:-1]} "
                                                     f"[link_id={result.link_id}].")
      return SelectLink(comments=f"No result is about {entity}.", selected_link_ids=(), grounded_summarization="")
    if step_type == "answer":
      if resolved < len(chain):
        return Answer(thoughts=NOT_FOUND, answer=NOT_FOUND)
      cited = next(a for a in reversed(state.past_actions) if isinstance(a, SelectLink) and a.selected_link_ids)
      return Answer(thoughts=cited.grounded_summarization, answer=entity)
    return CheckAnswer(passed=True)  # relevance and grounding: the answer came from its own summaries
