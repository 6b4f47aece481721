"""SFT data: ranked targets from real (synthetic-world) trajectories, rankings on disk, weighted mixtures, cards."""

import collections
import dataclasses
import json
import re

import pytest

from restreact.agent import CheckAnswer
from restreact.agent.machine import AgentConfig
from restreact.agent.prompts import step_preamble
from restreact.agent.records import Lineage, read_records
from restreact.agent.rollout import Task, rollout
from restreact.agent.samplers import ScriptedSampler
from restreact.data.solver import WorldSolver
from restreact.data.world import make_world
from restreact.rest import (MixtureSource, RankResult, SFTExample, StepRanking, allocate, build_mixture, read_card,
                            read_mixture, read_rankings, step_examples, write_rankings)
from restreact.tools import BM25Search

GARBAGE = "ACTION_SELECTED = Search(thoughts=  # [END]"  # never parses


def variant(action):
  """A worse but parseable version of the solver's action."""
  if isinstance(action, CheckAnswer):
    return CheckAnswer(passed=False)
  name = next(f.name for f in dataclasses.fields(action) if isinstance(getattr(action, f.name), str))
  return dataclasses.replace(action, **{name: getattr(action, name) + " Or maybe not."})


class ThreeCandidates:
  """Solver action (best log-prob among parsed), a worse variant, and unparseable text with the highest log-prob."""

  def __init__(self, world, fail=()):
    self.solver, self.fail = WorldSolver(world), set(fail)

  def __call__(self, machine, request):
    if machine.question_id in self.fail and request.step_type == "answer":
      return [(GARBAGE, [-0.1] * 4)] * 3
    action = self.solver.action(machine, request.step_type)
    return [(action, [-0.05] * 8), (variant(action), [-0.5] * 8), (GARBAGE, [-0.01] * 8)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  """gen1: q0..q3 (q3 fails at its answer step); gen2: q2 again (same steps) and q4, from another 'model'."""
  root = tmp_path_factory.mktemp("sft")
  world = make_world(seed=3)
  tool = BM25Search(world.write_corpus(root / "corpus.jsonl"), index_dir=root / "index")
  qs = world.questions("dev")[:5]
  config = AgentConfig(num_candidates=3)
  files = {}
  for name, chosen, model, gen in (("gen1", qs[:4], "prompted-L", 0), ("gen2", [qs[2], qs[4]], "L-gen1", 1)):
    files[name] = root / f"{name}.jsonl"
    summary = rollout([Task(q.id, q.question, q.answer) for q in chosen],
                      ScriptedSampler(ThreeCandidates(world, fail={qs[3].id})), tool, config, files[name],
                      lineage=Lineage(model, gen, config.fingerprint()), progress=False)
    assert summary.failed == (1 if name == "gen1" else 0)
  records = {r.question_id: r for r in read_records(files["gen1"])}
  gen2 = {r.question_id: r for r in read_records(files["gen2"])}
  r0, r1 = records[qs[0].id], records[qs[1].id]
  rankings = [StepRanking(r0.key, i, (2, 1, 0), "ok", False) for i in range(len(r0.model_steps()))]
  rankings += [StepRanking(r1.key, 0, (2, 0, 1), "invalid", True), StepRanking(r1.key, 1, (1, 2, 0), "partial", True)]
  write_rankings(root / "gen1.rank.jsonl", rankings)
  return dict(root=root, qs=qs, files=files, records=records, gen2=gen2, rankings=rankings)


def n_steps(q):
  """Model steps of a solved question, by hand: (decision, summarize) per hop, then terminate, answer, 2 checks."""
  return 2 * len(q.hops) + 4


def test_rankings_round_trip_and_reject_bad_lines(tmp_path):
  result = RankResult(order=(1, 0, 2), status="partial", fallback=True, empty=(2,))
  rankings = [StepRanking.from_result("q1#0", 3, result), StepRanking("q2#1", 0, (0,), "skipped", False)]
  write_rankings(tmp_path / "r.jsonl", rankings)
  assert read_rankings(tmp_path / "r.jsonl") == {("q1#0", 3): rankings[0], ("q2#1", 0): rankings[1]}
  assert rankings[0] == StepRanking("q1#0", 3, (1, 0, 2), "partial", True)
  with pytest.raises(ValueError, match="two rankings"):
    write_rankings(tmp_path / "d.jsonl", rankings + rankings[:1])
  assert not (tmp_path / "d.jsonl").exists()
  good = (tmp_path / "r.jsonl").read_text().splitlines()[0]
  for bad, message in (("{", "not JSON"), ('{"step": 1}', "missing fields"), (good.replace('"ok"', '"x"')
                       .replace('"partial"', '"great"'), "status"), (good.replace('"step": 3', '"step": -1'), "step"),
                       (good, "second ranking"), ("[1, 2]", "expected a JSON object"),
                       ("\udcff", "not UTF-8")):
    (tmp_path / "bad.jsonl").write_bytes((good + "\n\n" + bad + "\n").encode("utf-8", "surrogateescape"))
    with pytest.raises(ValueError, match=f"bad.jsonl:3: .*{message}"):
      read_rankings(tmp_path / "bad.jsonl")
  with pytest.raises(FileNotFoundError, match="nope.jsonl"):
    read_rankings(tmp_path / "nope.jsonl")


def test_target_is_ranked_best_parseable_else_chosen(data):
  r0, r1 = data["records"][data["qs"][0].id], data["records"][data["qs"][1].id]
  rankings = read_rankings(data["root"] / "gen1.rank.jsonl")
  assert rankings == {r.key: r for r in data["rankings"]}
  steps = r0.model_steps()
  assert all(len(s.candidates) == 3 and s.chosen == 0 and s.candidates[2].action is None for s in steps)
  ranked = step_examples(r0, rankings, source="s", generation=7)
  # order (2, 1, 0): #2 did not parse, so the variant #1 is the target
  assert [e.target for e in ranked] == [s.candidates[1].text for s in steps]
  assert [e.prompt for e in ranked] == [step_preamble(s.step_type, few_shot=False) + s.input + "\n" for s in steps]
  assert all(e.target.endswith("# [END]") and "# EXAMPLES" not in e.prompt for e in ranked)
  assert {(e.source, e.generation, e.trajectory_key) for e in ranked} == {("s", 7, r0.key)}
  assert [e.step_type for e in ranked] == [s.step_type for s in steps]
  # without rankings: the chosen (lowest-perplexity parsed) candidate, never the unparseable one
  assert [e.target for e in step_examples(r0)] == [s.candidates[0].text for s in steps]
  assert step_examples(r0)[0].generation == 0
  # fallback orders are used as they are: step 0 (2, 0, 1) -> 0; step 1 (1, 2, 0) -> 1; the rest chosen
  got = [e.target for e in step_examples(r1, rankings)]
  want = [s.candidates[i].text for s, i in zip(r1.model_steps(), [0, 1] + [0] * 20)]
  assert got == want
  few = step_examples(r0, few_shot=True)[0]
  assert few.prompt == step_preamble(steps[0].step_type, few_shot=True) + steps[0].input + "\n"
  assert "# EXAMPLES" in few.prompt


def test_failed_trajectories_skipped_by_default_and_misfit_rankings_rejected(data):
  failed = data["records"][data["qs"][3].id]
  assert failed.status == "failed" and step_examples(failed) == []
  examples = step_examples(failed, include_failed=True)
  assert len(examples) == len(failed.model_steps()) - 1 == n_steps(data["qs"][3]) - 3  # dies at its answer step
  r0 = data["records"][data["qs"][0].id]
  with pytest.raises(ValueError, match="has 3 candidates"):
    step_examples(r0, {(r0.key, 0): StepRanking(r0.key, 0, (1, 0), "ok", False)})


def sources(data, w1=1.0, w2=1.0):
  return [MixtureSource("gen1", data["files"]["gen1"], data["root"] / "gen1.rank.jsonl", w1, 1),
          MixtureSource("gen2", data["files"]["gen2"], None, w2, 2)]


def test_mixture_dedup_and_card_match_hand_counts(data, tmp_path):
  qs = data["qs"]
  card = build_mixture(sources(data), tmp_path / "mix.jsonl", seed=0)
  s1, s2 = card.sources
  gen1_steps = sum(n_steps(q) for q in qs[:3])
  assert (s1.trajectories_used, s1.trajectories_skipped, s1.model_steps) == (3, 1, gen1_steps)
  assert (s1.examples, s1.duplicates, s1.unique) == (gen1_steps, 0, gen1_steps)
  # gen2's q2 is step-for-step gen1's unranked q2: all its examples are duplicates
  assert (s2.examples, s2.duplicates, s2.unique) == (n_steps(qs[2]) + n_steps(qs[4]), n_steps(qs[2]), n_steps(qs[4]))
  assert card.duplicates_removed == n_steps(qs[2]) and card.unique_examples == gen1_steps + n_steps(qs[4])
  # no size: every unique example once (weights 1), whatever the sources' sizes
  assert card.size == card.examples == card.unique_examples
  assert (s1.taken, s2.taken) == (s1.unique, s2.unique) and s1.repetition == s2.repetition == 1.0
  assert (s1.upsampled, s2.upsampled) == (False, False) and s1.share == s1.taken / card.size
  assert s1.ranking_statuses == {"ok": n_steps(qs[0]), "partial": 1, "invalid": 1, "skipped": 0, "perplexity": 0,
                                 "unranked": gen1_steps - n_steps(qs[0]) - 2}
  assert s1.retargeted == n_steps(qs[0]) + 1 and s2.retargeted == 0 == card.retargeted - s1.retargeted  # by hand
  assert card.fallbacks == 2 and card.ranking_statuses["unranked"] == s1.ranking_statuses["unranked"] + s2.model_steps
  assert card.mean_candidates_per_step == 3.0 and s1.candidates == 3 * gen1_steps
  assert card.parents == {"L-gen1@1": 2, "prompted-L@0": 3} and card.generations == (1, 2)
  assert (card.trajectories_used, card.trajectories_skipped) == (5, 1)
  mixture = read_mixture(tmp_path / "mix.jsonl")
  assert len(mixture) == card.examples and all(isinstance(e, SFTExample) for e in mixture)
  assert card.step_types == dict(sorted(collections.Counter(e.step_type for e in mixture).items()))
  assert card.step_types["decision"] > card.step_types["answer"] > 0
  assert collections.Counter(e.source for e in mixture) == {"gen1": s1.taken, "gen2": s2.taken}
  assert {e.generation for e in mixture if e.source == "gen2"} == {2}
  gen1 = [e for e in mixture if e.source == "gen1"]
  assert len({(e.prompt, e.target) for e in gen1}) == len(gen1)  # sampled without replacement
  assert read_card(tmp_path) == card and json.loads((tmp_path / "card.json").read_text())["size"] == card.size
  md = (tmp_path / "card.md").read_text()
  assert "| source | gen | weight |" in md and "| gen2 | 2 | 1 |" in md and card.sha256 in md


def test_default_weights_repeat_and_ungrounded_answers_are_dropped(data, tmp_path):
  card = build_mixture(sources(data, 1, 2), tmp_path / "a" / "mix.jsonl", seed=0)
  s1, s2 = card.sources
  assert (s1.taken, s2.taken) == (s1.unique, 2 * s2.unique) and (s1.repetition, s2.repetition) == (1.0, 2.0)
  # an answer that no search result showed: with drop_ungrounded its trajectory gives nothing, and is counted
  good = data["records"][data["qs"][0].id]
  unsupported = dataclasses.replace(good, final_answer="Nowhere at all")
  path = tmp_path / "two.jsonl"
  path.write_text(good.to_json() + "\n" + dataclasses.replace(unsupported, sample=1).to_json() + "\n")
  kept = build_mixture([MixtureSource("g", path, None, 1, 1)], tmp_path / "b" / "mix.jsonl", seed=0)
  dropped = build_mixture([MixtureSource("g", path, None, 1, 1, drop_ungrounded=True)], tmp_path / "c" / "mix.jsonl",
                          seed=0)
  assert kept.sources[0].trajectories_used == 2 and sum(kept.sources[0].dropped.values()) == 0
  assert dropped.sources[0].trajectories_used == 1 and dropped.sources[0].dropped == {"failed": 0, "ungrounded": 1,
                                                                                      "unsupported": 0}
  # a verdict on whole trajectories (the ranker's): the ones it rejects are dropped and counted
  judged = build_mixture([MixtureSource("g", path, None, 1, 1, supported=lambda r: r.sample == 0)],
                         tmp_path / "d" / "mix.jsonl", seed=0)
  assert judged.sources[0].trajectories_used == 1 and judged.sources[0].dropped["unsupported"] == 1


def test_cut_keeps_unsupported_trajectories_up_to_the_rankers_first_accepted_correction(data, tmp_path):
  qs, records = data["qs"], data["records"]
  r0, r1 = records[qs[0].id], records[qs[1].id]
  rejected = lambda **kw: MixtureSource("gen1", data["files"]["gen1"], data["root"] / "gen1.rank.jsonl", 1, 1,
                                        supported=lambda r: False, **kw)
  accept_all = lambda step, index: True
  card = build_mixture([rejected(target_ok=accept_all)], tmp_path / "a" / "mix.jsonl", seed=0)
  s = card.sources[0]
  # r0: every step ranked (2, 1, 0), so its first step is already corrected (the variant, not the chosen);
  # r1: step 0's best is the chosen one, step 1's is not; q2 has no ranking (never corrected); q3 failed
  assert (s.trajectories_used, s.cut, s.model_steps) == (2, 2, 1 + 2)
  assert s.dropped == {"failed": 1, "ungrounded": 0, "unsupported": 1}
  want = {(r0.key, r0.model_steps()[0].candidates[1].text), (r1.key, r1.model_steps()[0].candidates[0].text),
          (r1.key, r1.model_steps()[1].candidates[1].text)}
  assert {(e.trajectory_key, e.target) for e in read_mixture(tmp_path / "a" / "mix.jsonl")} == want
  assert s.retargeted == 2 and "2 unsupported trajectories give their steps up to" in (tmp_path / "a" / "card.md") \
      .read_text()
  with pytest.raises(ValueError, match="no source has examples"):  # without the cut, all of them are dropped
    build_mixture([rejected()], tmp_path / "b" / "mix.jsonl", seed=0)
  # a correction counts only when the ranker accepts its target, and every earlier target: rejecting r0's
  # corrected first step drops r0; rejecting r1's unchanged first step drops r1 though its step 1 is corrected
  r0_fix, r1_first = r0.model_steps()[0].candidates[1].text, r1.model_steps()[0].candidates[0].text
  only_r1 = build_mixture([rejected(target_ok=lambda step, i: step.candidates[i].text != r0_fix)],
                          tmp_path / "d" / "mix.jsonl", seed=0).sources[0]
  assert (only_r1.trajectories_used, only_r1.cut, only_r1.model_steps, only_r1.dropped["unsupported"]) == (1, 1, 2, 2)
  assert {e.trajectory_key for e in read_mixture(tmp_path / "d" / "mix.jsonl")} == {r1.key}
  with pytest.raises(ValueError, match="no source has examples"):
    build_mixture([rejected(target_ok=lambda step, i: step.candidates[i].text not in (r0_fix, r1_first))],
                  tmp_path / "e" / "mix.jsonl", seed=0)
  # a supported trajectory is never cut
  whole = build_mixture([dataclasses.replace(rejected(target_ok=accept_all), supported=lambda r: True)],
                        tmp_path / "c" / "mix.jsonl", seed=0).sources[0]
  assert whole.cut == 0 and whole.trajectories_used == 3 and whole.model_steps == sum(
      len(records[q.id].model_steps()) for q in qs[:3])


def test_the_demo_cuts_with_the_stand_ins_judgements_and_the_ablation_judges_nothing():
  """The mixture gets the stand-in's verdict and candidate test only when the config asks for them."""
  from restreact import experiment
  from restreact.rest import stand_in_ranker
  from restreact.runner.plan import cut_test, trajectory_verdict

  c = experiment.get_config(2, "xs", "demo")
  judged = lambda: (trajectory_verdict(c), cut_test(c))
  assert judged() == (stand_in_ranker.answer_supported, stand_in_ranker.target_ok)
  c.mixture.unsupported = "drop"
  assert judged() == (stand_in_ranker.answer_supported, None)
  c.mixture.unsupported, c.rank.ranker = "cut", "perplexity"
  assert judged() == (None, None)


def test_weights_give_stated_shares_and_seed_fixes_the_file(data, tmp_path):
  assert allocate(10, [1, 1, 1]) == [4, 3, 3] and allocate(7, [2.0, 1.0]) == [5, 2]
  assert allocate(100, [3, 1]) == [75, 25] and allocate(1, [1, 1]) == [1, 0]
  card = build_mixture(sources(data, 3, 1), tmp_path / "a" / "mix.jsonl", seed=5, size=200)
  mixture = read_mixture(tmp_path / "a" / "mix.jsonl")
  assert collections.Counter(e.source for e in mixture) == {"gen1": 150, "gen2": 50}
  assert [s.taken for s in card.sources] == [150, 50] and [s.share for s in card.sources] == [0.75, 0.25]
  # upsampling repeats every example size // len times, plus a remainder drawn without replacement
  for s in card.sources:
    counts = collections.Counter((e.prompt, e.target) for e in mixture if e.source == s.name)
    assert len(counts) == s.unique and set(counts.values()) <= {s.taken // s.unique, s.taken // s.unique + 1}
  assert [e.source for e in mixture] != sorted(e.source for e in mixture)  # shuffled, not grouped
  again = build_mixture(sources(data, 3, 1), tmp_path / "b" / "mix.jsonl", seed=5, size=200)
  assert (tmp_path / "a" / "mix.jsonl").read_bytes() == (tmp_path / "b" / "mix.jsonl").read_bytes()
  assert again == card
  other = build_mixture(sources(data, 3, 1), tmp_path / "c" / "mix.jsonl", seed=6, size=200)
  assert other.sha256 != card.sha256 and [s.taken for s in other.sources] == [150, 50]


def test_bad_input_is_a_clear_error_and_leaves_nothing(data, tmp_path):
  out = tmp_path / "mix.jsonl"
  for w, message in ((0, "positive"), (-1, "positive"), (float("nan"), "positive"), (True, "positive")):
    with pytest.raises(ValueError, match=f"'gen2'.*{message}"):
      build_mixture(sources(data, 1, w), out, seed=0)
  with pytest.raises(ValueError, match="distinct"):
    build_mixture(sources(data)[:1] * 2, out, seed=0)
  with pytest.raises(ValueError, match="size"):
    build_mixture(sources(data), out, seed=0, size=0)
  missing = dataclasses.replace(sources(data)[1], trajectories_path=tmp_path / "gone.jsonl")
  with pytest.raises(FileNotFoundError, match="'gen2'.*gone.jsonl"):
    build_mixture([missing], out, seed=0)
  with pytest.raises(FileNotFoundError, match="gone.rank.jsonl"):
    build_mixture([dataclasses.replace(missing, trajectories_path=data["files"]["gen2"],
                                       rankings_path=tmp_path / "gone.rank.jsonl")], out, seed=0)
  short = tmp_path / "short.jsonl"  # a ranking over fewer candidates than the step has
  r2 = data["gen2"][data["qs"][2].id]
  write_rankings(short, [StepRanking(r2.key, 1, (1, 0), "ok", False)])
  with pytest.raises(ValueError, match=f"short.jsonl: ranking for step 1 of '{r2.key}'.*has 3 candidates"):
    build_mixture([dataclasses.replace(sources(data)[1], rankings_path=short)], out, seed=0)
  short.unlink()
  # rankings from another trajectory file name a step that is not there
  stray = tmp_path / "stray.jsonl"
  write_rankings(stray, [StepRanking("nobody#0", 0, (0, 1, 2), "ok", False)])
  with pytest.raises(ValueError, match="stray.jsonl.*'nobody#0'"):
    build_mixture([dataclasses.replace(sources(data)[1], rankings_path=stray)], out, seed=0)
  assert list(tmp_path.iterdir()) == [stray]  # no output, no temp files
  # a source of only failed trajectories has nothing to give: it takes no share; alone, it is an error
  only_failed = tmp_path / "failed.jsonl"
  only_failed.write_text(data["records"][data["qs"][3].id].to_json() + "\n")
  with pytest.raises(ValueError, match="no source has examples: gen2"):
    build_mixture([MixtureSource("gen2", only_failed, None, 1, 2)], out, seed=0)
  card = build_mixture([sources(data)[0], MixtureSource("gen2", only_failed, None, 1, 2)], out, seed=0)
  assert [s.taken for s in card.sources] == [card.examples, 0] and card.examples == card.sources[0].unique
  out.unlink()
  for name in ("card.json", "card.md"):
    (tmp_path / name).unlink()
  # one card per folder
  build_mixture(sources(data), out, seed=0)
  with pytest.raises(ValueError, match="another mixture"):
    build_mixture(sources(data), tmp_path / "other.jsonl", seed=0)
  lines = out.read_text().splitlines()
  broken = re.sub(r'"generation": (\d+)', r'"generation": "\1"', lines[1])
  (tmp_path / "broken.jsonl").write_text(lines[0] + "\n" + broken + "\n")
  with pytest.raises(ValueError, match="broken.jsonl:2: generation"):
    read_mixture(tmp_path / "broken.jsonl")
