"""The promotion rule (nas/search/budget_ladder.py) against hand-worked examples, and the async budget search
on the FakeCluster's simulated clock: no idle worker while work exists, brackets, the budget, a resume; the
end-of-run tail (shortened final trainings) by hand and on the FakeCluster.

The hand-worked bracket: 9 candidates at rung 0, 3 at the short rung, 1 fully trained (the early rung
skipped), so ASHA promotes from rung 0 the best floor(n * 3 / 9) = floor(n / 3) of the n done so far.
Rung-0 scores of candidates 0..8: 5, 1, 9, 2, 8, 3, 7, 4, 6.
"""

from __future__ import annotations

import math

import optuna
import pytest

from nas.search.budget_ladder import Ladder, ranked
from nas.search.budget_policy import choose, fit_epochs
from nas.search.plan import Plan, plan, plan_brackets


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
    assert lad.no_new and choose(lad, score, 5.0, cost, workers=1) is None  # 1 + 3 + 6 s do not fit 4.5 s
    roomy = Ladder([BRACKET], "async")
    _done(roomy, range(3))
    assert choose(roomy, score, 100.0, cost, workers=1) == ("promote", 2, 2)


def test_a_cost_measured_high_once_pauses_new_candidates_async_but_stops_them_for_good_sync():
    # the planned later rungs of BRACKET at these costs, in waves of one worker, against 90 % of the time left
    cheap = lambda n, k: 0.01  # every job 0.01 s: the plan's later rungs fit 100 s easily
    dear = lambda n, k: 1.0 if k == 0 else 50.0  # one slow measurement: they do not
    for mode in ("async", "sync"):
        lad = Ladder([BRACKET], mode)
        assert choose(lad, score, 100.0, cheap, workers=1) == ("new", 0) and not lad.no_new
        for n in range(6):  # async: 6 of 9 asked earn floor(6 * 3 / 9) = 2 short-rung jobs, 2 * 50 s > 90 s
            lad.add(n, 0)
        lad.tight = lad.stop_new = False
        choose(lad, score, 100.0, dear, workers=1)
        assert lad.no_new  # the later rungs' need/workers leaves less than a rung-0 job
        job = choose(lad, score, 100.0, cheap, workers=1)  # the next measurement is normal again
        if mode == "async":
            assert not lad.no_new and job == ("new", 0)  # rung 0 goes on
        else:
            assert lad.stop_new and job != ("new", 0)  # a synchronous rung 0 stays closed


def test_async_rung_0_pauses_for_the_later_rungs_its_candidates_earned_not_the_whole_plan():
    # a plan made with cheap first costs: 9 candidates, 3 short, 1 full; then the short rung measures 40 s.
    # Async, 2 asked earn floor(2 * 3 / 9) = 0 short-rung jobs: rung 0 goes on (the live defect: the plan's
    # 3 x 40 s closed rung 0 at once and its few candidates were all promoted); at 3 asked, 1 x 40 s leaves
    # 90 - 40 = 50 s >= a rung-0 job: still open; at 9 asked, 3 x 40 s + 1 x 6 s > 90 s: paused.
    dear = lambda n, k: 1.0 if k == 0 else (40.0 if k == 2 else 6.0)
    for asked, paused in ((2, False), (3, False), (9, True)):
        lad = Ladder([BRACKET], "async")
        for n in range(asked):
            lad.add(n, 0)
        choose(lad, score, 100.0, dear, workers=1)
        assert lad.no_new is paused, asked
    sync = Ladder([BRACKET], "sync")  # sync keeps the plan's counts: the same 2 asked close rung 0
    for n in range(2):
        sync.add(n, 0)
    choose(sync, score, 100.0, dear, workers=1)
    assert sync.no_new


def test_fit_epochs_is_the_floor_of_the_time_over_an_epoch_within_bounds():
    assert fit_epochs(10.0, 3.0, 5) == 3 and fit_epochs(10.0, 3.0, 2) == 2  # floor(10 / 3), capped by most
    assert fit_epochs(2.0, 3.0, 5) == 0 and fit_epochs(7.0, 3.0, 5, least=3) == 0  # fewer than least fit
    assert fit_epochs(7.0, 0.0, 5) == 0 and fit_epochs(-1.0, 3.0, 5) == 0


def _tail_ladder(mode: str = "async", tail: int = 2) -> Ladder:
    """The hand-worked bracket at its end: all 9 scored, 2, 4, 6 trained the short rung (1 epoch), 2 is in
    the final rung (full: count 1); 4 and 6 wait at the short rung, the rest at rung 0."""
    lad = Ladder([BRACKET], mode)
    lad.tail = tail
    _done(lad, range(9))
    for n in (2, 4, 6):
        lad.start(n, 2)
        lad.finish(n)
    lad.start(2, 3)
    return lad


EPOCH = {8: 1.0}  # seconds per epoch: candidate 8 is a cheap net, the others 3 s (the short rung's 3 s)
epoch = lambda n: EPOCH.get(n, 3.0)
cost = lambda n, k: BRACKET.costs[k] if k < 3 else 6.0  # the final rung: the 2 epochs after the short one


def test_stopped_keeps_for_the_tail_those_with_fewer_than_tail_ahead_no_dearer():
    # tail order: the short rung 4 (8), 6 (7), then rung 0 by score 8 (6), 0 (5), 7 (4), 5 (3), 3 (2), 1 (1)
    assert _tail_ladder(tail=0).stopped(score, epoch) == [0, 1, 3, 4, 5, 6, 7, 8]  # no tail: all told
    assert _tail_ladder().stopped(score) == [0, 1, 3, 5, 7, 8]  # no costs: the first two kept
    # 8 is cheaper than both ahead of it (1 s < 3 s): kept; 0 has 4, 6 (3 s) ahead at no more: told
    assert _tail_ladder().stopped(score, epoch) == [0, 1, 3, 5, 7]


def test_the_tail_shortens_the_best_waiting_candidates_training_to_the_time_left():
    lad = _tail_ladder()
    for n in lad.stopped(score, epoch):
        lad.tell(n)
    # no new candidate fits (1 + 3 + 6 s), nothing to promote (both rungs full): without the tail, idle
    assert choose(lad, score, 5.0, cost, workers=1) is None
    assert choose(_tail_ladder("sync"), score, 5.0, cost, workers=1, epoch=epoch) is None  # sync: no tail
    # 4's 2 remaining epochs (6 s) do not fit 0.9 * 5 = 4.5 s; floor(4.5 / 3) = 1 epoch from scratch does
    assert choose(lad, score, 5.0, cost, workers=1, epoch=epoch) == ("shorten", 4, 3, 1)
    # 2.7 s: no 3-s epoch fits (4, 6); 8 (rung 0: its climb is 3 + 6 s) gets floor(2.7 / 1) = 2 epochs
    assert choose(lad, score, 3.0, cost, workers=1, epoch=epoch) == ("shorten", 8, 3, 2)
    assert choose(lad, score, 1.0, cost, workers=1, epoch=epoch) is None  # 0.9 s: not one epoch of any
    # 7.2 s: 4's planned rest of training (6 s) fits: it climbs whole, past the final rung's count of 1
    assert choose(lad, score, 8.0, cost, workers=1, epoch=epoch) == ("promote", 4, 3)
    lad.start(8, 3, 2)
    back = Ladder.from_dict(lad.to_dict(), [BRACKET])  # the shortened epochs are saved with the ladder
    assert back.epochs == {8: 2} and back.cands == lad.cands


def test_the_forced_final_training_is_shortened_when_it_does_not_fit():
    lad = Ladder([BRACKET], "async")
    _done(lad, range(3))
    # 2's training from scratch (3 + 6 s) does not fit 0.9 * 8 = 7.2 s: floor(7.2 / 3) = 2 epochs
    assert choose(lad, score, 8.0, cost, workers=1, epoch=epoch) == ("shorten", 2, 3, 2)
    assert choose(lad, score, 8.0, cost, workers=1) == ("promote", 2, 3)  # no epoch cost: as before


def test_plan_brackets_share_the_budget_when_it_allows():
    costs = (0.06, 0.5, 1.0, 2.0)
    one = plan_brackets(9, costs, 1, 3, 75, 3, 1, brackets=4)
    several = plan_brackets(144, costs, 1, 3, 75, 3, 1, brackets=4)
    assert len(one) == 1 and len(several) == 3
    assert [p.start for p in several] == [0, 2, 3]
    for p in several:  # each bracket fits its equal share, its entry rung holds at least eta
        assert p.expected <= 0.9 * 144 / 3 and p.counts[p.start] >= 3
        assert p.counts[0] >= p.counts[p.start]
    # 36 epochs: bracket 0 alone trains 5 fully; at half of it (a second bracket) it would train 2 < eta = 3
    # (though it keeps 6 >= eta at its short rung): one bracket. At 48 its half trains 3: two brackets
    assert plan(18, costs, 1, 3, 75, 3, 1).counts[2:] == (6, 2)
    assert len(plan_brackets(36, costs, 1, 3, 75, 3, 1, brackets=4)) == 1
    assert [p.counts for p in plan_brackets(48, costs, 1, 3, 75, 3, 1, brackets=4)] == [(75, 0, 9, 3), (12, 0, 12, 4)]
    # capped at 20 candidates, bracket 0 alone trains 2 fully whatever the budget: it may keep 2 at its share
    assert plan(36, costs, 1, 3, 20, 3, 1).counts[3] == 2 == plan(12, costs, 1, 3, 20, 3, 1).counts[3]
    assert len(plan_brackets(36, costs, 1, 3, 20, 3, 1, brackets=4)) == 3


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


class _Straggling(_tb._WideIsDear, Recording):
    """Recording, with wide nets training 4x slower: stragglers."""


def test_async_leaves_no_worker_idle_while_work_exists(tmp_path):
    # with stragglers (wide nets 4x dearer) the synchronous rungs wait for their slowest job: 18 s idle
    idle = {}
    for promotion in ("sync", "async"):
        folder = tmp_path / promotion
        folder.mkdir()
        space, objectives, study, cfg = _setup(folder, 90, 3, promotion=promotion)
        fake = _Straggling(3)
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


# ------------------------------------------------------------------------------ the tail on the FakeCluster
COST_EPOCH = _tb.COST_EPOCH


def _idle_while_an_epoch_fits(fake: Recording, budget: float, since: float) -> list[tuple[float, float]]:
    """(start, end) of the spans after ``since`` in which a worker was free although one epoch (the least a
    shortened training runs) fitted 90 % of the time left; after the run's end, up to the budget, too."""
    out, prev_t, prev_n = [], 0.0, 0
    for t, n in fake.flight + [(budget, 0)]:
        if t > prev_t and prev_n < fake.workers and prev_t >= since and 0.9 * (budget - prev_t) >= COST_EPOCH:
            out.append((prev_t, t))
        prev_t, prev_n = t, n
    return out


def test_the_async_tail_trains_shortened_candidates_instead_of_idling(tmp_path):
    """The end of the run: once no climb fits, free workers train waiting candidates shortened to the epochs
    that fit (before: the run ended at 76 s of 90 with nothing running); it still ends inside the budget, and
    the result is the best trained candidate, shortened ones included."""
    budget, workers = 90, 3
    space, objectives, study, cfg = _setup(tmp_path, budget, workers)
    fake = Recording(workers)
    events: list[dict] = []
    stats = _run(tmp_path, space, objectives, study, cfg, fake, events)
    assert fake.now() <= budget
    assert _idle_while_an_epoch_fits(fake, budget, since=budget / 2) == []
    shortened = [e for e in events if e["kind"] == "shorten"]
    trials = study.get_trials(deepcopy=False)
    trained = {t.number: t for t in trials if t.user_attrs.get("rung") == "full"}
    cut = {n for n, t in trained.items() if t.user_attrs["val_epochs"] < cfg.epochs}
    assert shortened and cut == {e["trial"] for e in shortened} and stats["shortened"] == len(cut)
    for e in shortened:  # as many epochs as fit 90 % of the time left at its start (3 s each)
        assert e["epochs"] == int(0.9 * (budget - e["elapsed"]) // COST_EPOCH)
    best = max(trained.values(), key=lambda t: (t.user_attrs["final_test_acc"], -t.number))
    assert stats["best"]["trial"] == best.number
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}


class _KillAtShortened(FakeCluster):
    """The driver dies (KeyboardInterrupt) at the first wait after a shortened final training was submitted:
    that training (or the job finishing then) is lost."""

    def __init__(self, workers: int, full: int) -> None:
        super().__init__(workers)
        self.full, self.cut = full, None

    def submit(self, key, spec):
        super().submit(key, spec)
        if self.cut is None and getattr(spec, "checkpoint", None) and spec.stop_after is None and spec.epochs < self.full:
            self.cut = (key, spec.epochs)

    def wait(self):
        if self.cut is not None:
            raise KeyboardInterrupt
        return super().wait()


def test_a_kill_during_a_shortened_training_resumes_it_with_its_epochs(tmp_path):
    budget, workers = 90, 3
    space, objectives, study, cfg = _setup(tmp_path, budget, workers)
    first = _KillAtShortened(workers, cfg.epochs)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, space, objectives, study, cfg, first)
    number, epochs = first.cut
    _tb._driver_died(study)
    second = Recording(workers)
    second.t = first.now()
    stats = _run(tmp_path, space, objectives, study, cfg, second)
    # the rerun trains the same candidate with the same shortened schedule, and ends inside the budget (give
    # or take the jobs in flight at the kill: the fake reruns them whole, as test_budget's resume test allows)
    again = [(n, k) for n, k in second.rungs if n == number]
    assert again and again[0][1] == "full" and second.trained[(number, "schedule")] == epochs
    assert stats["best"] is not None and second.now() <= budget + 5 * COST_EPOCH
    t = study.trials[number]
    assert t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs["val_epochs"] == epochs
