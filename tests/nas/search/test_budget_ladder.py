"""The promotion rule (nas/search/budget_ladder.py) against hand-worked examples, and the async budget search
on the FakeCluster's simulated clock: no idle worker while work exists, brackets, the budget, a resume.

The hand-worked bracket: 9 candidates at rung 0, 3 at the short rung, 1 fully trained (the early rung
skipped), so ASHA promotes from rung 0 the best floor(n * 3 / 9) = floor(n / 3) of the n done so far.
Rung-0 scores of candidates 0..8: 5, 1, 9, 2, 8, 3, 7, 4, 6.
"""

from __future__ import annotations

import math

import optuna
import pytest

from nas.search.budget_ladder import Ladder, choose, ranked
from nas.search.plan import Plan, plan_brackets


def _load(name: str, file: str):
    import importlib.util
    import sys
    from pathlib import Path

    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_tb = _load("_gradnas_test_budget", "test_budget.py")  # its study set-up and runner
FakeCluster, _run, _setup = _tb.FakeCluster, _tb._run, _tb._setup

SCORES = [5, 1, 9, 2, 8, 3, 7, 4, 6]
BRACKET = Plan(100.0, 1, 3, (9, 0, 3, 1), (1.0, 1.0, 3.0, 6.0), 3, 1)


def score(b, k, numbers):
    return [SCORES[n] for n in numbers]


def _done(lad: Ladder, numbers, bracket: int = 0) -> None:
    for n in numbers:
        lad.add(n, bracket)
        lad.finish(n)


def test_ranked_puts_nan_last_and_breaks_ties_by_number():
    assert ranked([4, 2, 7, 1], [0.5, float("nan"), 0.5, 0.9]) == [1, 4, 7, 2]


def test_async_promotes_the_top_third_of_those_done_so_far():
    lad = Ladder([BRACKET], "async")
    _done(lad, [0, 1])
    assert lad.next_job(score) == ("new", 0)  # 2 done: floor(2/3) = 0 may climb
    _done(lad, [2])
    assert lad.next_job(score) == ("promote", 2, 2)  # 3 done: the best of {5, 1, 9} is candidate 2
    lad.start(2, 2)
    _done(lad, [3])
    assert lad.next_job(score) == ("new", 0)  # 4 done: quota 1, already used by candidate 2
    _done(lad, [4, 5])
    assert lad.next_job(score) == ("promote", 4, 2)  # 6 done: the top 2 are 2 (9) and 4 (8)
    lad.start(4, 2)
    _done(lad, [6, 7, 8])  # all 9 in: the rung is closed, its best fill the short rung
    assert lad.next_job(score) == ("promote", 6, 2)
    lad.start(6, 2)
    assert lad.stopped() == [0, 1, 3, 5, 7, 8]  # the short rung is full: nobody else can climb
    assert lad.next_job(score) is None  # nothing to do until a short rung ends


def test_sync_waits_for_the_whole_rung():
    lad = Ladder([BRACKET], "sync")
    _done(lad, range(8))
    assert lad.next_job(score) == ("new", 0)  # 8 of 9 in: no promotion yet
    lad.add(8, 0)
    assert lad.next_job(score) is None  # all asked, one still running: wait
    lad.finish(8)
    got = []
    while (job := lad.next_job(score)) is not None:
        got.append(job[1])
        lad.start(job[1], job[2])
    assert got == [2, 4, 6]  # the 3 best of the 9 (9, 8, 7)


def test_a_later_bracket_admits_candidates_whatever_their_rung0_score():
    late = Plan(100.0, 1, 3, (2, 0, 2, 1), BRACKET.costs, 3, 1, start=2)
    lad = Ladder([BRACKET, late], "async")
    _done(lad, range(9))
    for n in (2, 4, 6):
        lad.start(n, 2)
    assert lad.next_job(score) == ("new", 1)  # bracket 0 has asked its 9, bracket 1 none of its 2
    lad.add(9, 1)
    lad.finish(9)
    worst = lambda b, k, numbers: [-100.0 if n == 9 else SCORES[n] for n in numbers]
    assert lad.next_job(worst) == ("promote", 9, 2)  # the worst rung-0 score, admitted to the short rung


def test_the_ladder_round_trips_through_its_saved_state():
    lad = Ladder([BRACKET], "async")
    _done(lad, range(6))
    lad.start(2, 2)
    lad.tell(1)
    back = Ladder.from_dict(lad.to_dict(), [BRACKET])
    assert back.cands == lad.cands and back.asked == lad.asked
    assert back.next_job(score) == lad.next_job(score) == ("promote", 4, 2)


def test_choose_keeps_inside_the_budget_and_forces_a_final_training():
    cost = lambda n, k: BRACKET.costs[k] if k < 3 else 6.0  # the final rung: the epochs after the short one
    lad = Ladder([BRACKET], "async")
    _done(lad, range(3))
    # 13 s of climb (1 + 3 + 9) do not fit 10 s: with nothing above rung 0, candidate 2 goes straight to
    # the final rung, from scratch (3 + 6 = 9 s fit 10 * 0.9 = 9 s; waiting for a 1 s job would not)
    assert choose(lad, score, 10.0, cost, workers=1) == ("promote", 2, 3)
    lad.start(2, 3)
    assert lad.stop_new and choose(lad, score, 5.0, cost, workers=1) is None  # 1 + 3 + 6 s do not fit 4.5 s
    roomy = Ladder([BRACKET], "async")
    _done(roomy, range(3))
    assert choose(roomy, score, 100.0, cost, workers=1) == ("promote", 2, 2)


def test_plan_brackets_share_the_budget_when_it_allows():
    costs = (0.06, 0.5, 1.0, 2.0)
    one = plan_brackets(9, costs, 1, 3, 75, 3, 1, brackets=4)
    several = plan_brackets(144, costs, 1, 3, 75, 3, 1, brackets=4)
    assert len(one) == 1 and len(several) == 3
    assert [p.start for p in several] == [0, 2, 3]
    for p in several:  # each bracket fits its equal share, its entry rung holds at least eta
        assert p.expected <= 0.9 * 144 / 3 and p.counts[p.start] >= 3
        assert p.counts[0] >= p.counts[p.start]


# ------------------------------------------------------------------------------ on the FakeCluster
class Recording(FakeCluster):
    """Records the jobs in flight after every submit and wait."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.flight: list[tuple[float, int]] = []

    def submit(self, key, spec):
        super().submit(key, spec)
        self.flight.append((self.t, len(self.heap)))

    def wait(self):
        out = super().wait()
        self.flight.append((self.t, len(self.heap)))
        return out


def idle_before_last_start(fake: Recording, since: float) -> float:
    """Worker-seconds idle between ``since`` and the last job's start (the wind-down excluded)."""
    last = max(t for t, _ in fake.flight)
    starts = [t for (t, n), (_, m) in zip(fake.flight[1:], fake.flight) if n > m]
    end = max(starts) if starts else last
    idle, prev_t, prev_n = 0.0, 0.0, 0
    for t, n in fake.flight:
        a, b = max(prev_t, since), min(t, end)
        if b > a:
            idle += (fake.workers - prev_n) * (b - a)
        prev_t, prev_n = t, n
    return idle


def test_async_leaves_no_worker_idle_while_work_exists(tmp_path):
    idle = {}
    for promotion in ("sync", "async"):
        folder = tmp_path / promotion
        folder.mkdir()
        space, objectives, study, cfg = _setup(folder, 90, 3, promotion=promotion)
        fake = Recording(3)
        stats = _run(folder, space, objectives, study, cfg, fake)
        assert stats["best"] is not None and fake.now() <= 90 + 4 * 3.0
        pilot_end = sorted(t for (t, n), (_, m) in zip(fake.flight[1:], fake.flight) if n < m)[5]
        idle[promotion] = idle_before_last_start(fake, pilot_end)
    assert idle["async"] == 0.0 < idle["sync"]


def test_async_brackets_end_in_budget_with_a_trained_admitted_candidate(tmp_path):
    space, objectives, study, cfg = _setup(tmp_path, 240, 2, brackets=3)
    fake = FakeCluster(2)
    events = []
    stats = _run(tmp_path, space, objectives, study, cfg, fake, events)
    plan_event = next(e for e in events if e["kind"] == "plan")
    assert len(plan_event["brackets"]) >= 2 and plan_event["brackets"][1].start > 0
    assert fake.now() <= 240 + 4 * 3.0 and stats["best"] is not None
    trials = study.get_trials(deepcopy=False)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    admitted = [t for t in trials if t.user_attrs.get("bracket", 0) > 0]
    assert admitted and all(t.user_attrs["rung"] in ("short", "full") for t in admitted if t.user_attrs.get("rung_done", 0) > 0)
    assert math.isclose(sum(1 for t in trials if t.user_attrs.get("rung") == "full"), stats["rungs"]["full"])


@pytest.mark.parametrize("workers, brackets, climb", [(2, 1, "sync"), (4, 1, "async"), (2, 2, "async")])
def test_auto_promotion_climbs_async_from_4_workers_or_with_brackets(tmp_path, workers, brackets, climb):
    """promotion="auto": the synchronous climb on fewer than 4 workers with one bracket (the replay found it
    ahead on one worker); async from 4 workers on, and whenever there are brackets (only the ladder runs them)."""
    from nas.search.keys import BUDGET_STATE

    space, objectives, study, cfg = _setup(tmp_path, 60, workers, promotion="auto", brackets=brackets)
    _run(tmp_path, space, objectives, study, cfg, FakeCluster(workers))
    ladder = study.user_attrs[BUDGET_STATE]["ladder"]
    assert (ladder is None) == (climb == "sync")


def test_brackets_with_the_synchronous_climb_is_a_clear_error():
    from nas.search.config import SearchConfig, SearchError

    with pytest.raises(SearchError, match="--brackets 2 runs in the asynchronous climb"):
        SearchConfig(dataset="synthetic", smoke=True, budget="1m", promotion="sync", brackets=2).resolve(gpu=False)
    with pytest.raises(SearchError, match="promotion must be 'auto', 'sync' or 'async'"):
        SearchConfig(dataset="synthetic", smoke=True, budget="1m", promotion="fast").resolve(gpu=False)
