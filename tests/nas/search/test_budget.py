"""The budget search's planning, promotion and resume logic, driven in process on a simulated clock.

Jobs run on :class:`FakeCluster` (tests/nas/search/fake_jobs.py): each takes fixed simulated seconds and
returns values computed from its config's ``quality``, so the run is exact and machine-independent.
References: the budget (no run may end past it by more than one job), successive halving's rules (each
rung keeps the best of the previous one by its score), the stored state (a rerun after an interruption
re-runs no finished job).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from nas.search.budget import run_budget
from nas.search.config import SearchConfig
from nas.search.keys import BUDGET_STATE, RUNG, RUNG_DONE, StudyFolder
from nas.search.plan import RUNGS
from nas.study import budget_objectives, open_study, parse_objectives
from search_spaces import get_space


def _load_fake_jobs():
    name = "_gradnas_fake_jobs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fake_jobs.py"))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_fake = _load_fake_jobs()
COST_EPOCH, FakeCluster, quality = _fake.COST_EPOCH, _fake.FakeCluster, _fake.quality

BOUNDS = {"blocks": [1, 2], "width": [8, 16], "batch_size": [32, 128]}


def _db_dir(tmp_path: Path) -> Path:
    """Where the study's SQLite file lives: in memory (/dev/shm) when there is one, as the search commits its
    state after every job (hundreds of fsyncs on a loaded disk otherwise)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return tmp_path
    folder = shm / f"gradnas-test-{os.getpid()}-{abs(hash(str(tmp_path)))}"
    folder.mkdir(exist_ok=True)
    _SHM.append(folder)
    return folder


_SHM: list[Path] = []


@pytest.fixture(autouse=True)
def _clean_shm():
    yield
    while _SHM:
        shutil.rmtree(_SHM.pop(), ignore_errors=True)


def _setup(tmp_path: Path, budget: float, workers: int, name: str = "s", epochs: int = 4, promotion: str = "async",
           brackets: int = 1):
    space = get_space("resnet_cifar").with_bounds(**BOUNDS)
    objectives = parse_objectives(budget_objectives())
    study = open_study(name, f"sqlite:///{_db_dir(tmp_path) / 's.db'}", objectives, [], "random", 0, {})
    cfg = SearchConfig(space="resnet_cifar", dataset="mnist5k", budget=budget, workers=workers, epochs=epochs,
                       stale_grace=3600, heartbeat_interval=3600, promotion=promotion, brackets=brackets)
    cfg.mode, cfg.budget_s, cfg.bounds = "budget", float(budget), space.bounds
    cfg.metrics = ["az_expressivity", "grad_weight_ratio"]
    return space, objectives, study, cfg


def _run(tmp_path, space, objectives, study, cfg, fake, events=None):
    return run_budget(study, space, cfg, objectives, [], StudyFolder(tmp_path), (1, 28, 28), 4000,
                      on_event=(events.append if events is not None else None), clock=fake.now, executor=fake)


@pytest.mark.parametrize("promotion", [pytest.param("sync", marks=pytest.mark.slow), "async"])
@pytest.mark.parametrize("budget,workers", [(90, 1), (120, 3)])
def test_a_budget_search_ends_in_its_budget_with_the_best_finalist(tmp_path, budget, workers, promotion):
    space, objectives, study, cfg = _setup(tmp_path, budget, workers, promotion=promotion)
    fake = FakeCluster(workers)
    events: list[dict] = []
    stats = _run(tmp_path, space, objectives, study, cfg, fake, events)
    # inside the budget: the plan keeps a reserve, and at most one job may straddle the end
    assert fake.now() <= budget + 4 * COST_EPOCH
    counts = [stats["rungs"].get(r, 0) for r in RUNGS]
    used = [c for c in counts if c]
    assert used == sorted(used, reverse=True) and counts[3] >= 1
    # every candidate was told: nothing is left RUNNING, and every trial says where it stopped
    trials = study.get_trials(deepcopy=False)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert all(t.user_attrs.get(RUNG) in RUNGS for t in trials)
    # the finalists are the best of the short rung by accuracy (the fake's accuracy grows with quality),
    # and the result is the best finalist
    by_rung = {r: [t for t in trials if t.user_attrs[RUNG] == r] for r in RUNGS}
    finalists = by_rung["full"]
    short = by_rung["short"] + finalists
    if by_rung["short"] and promotion == "sync":  # async promotes before the whole rung is in
        worst_finalist = min(quality(t.user_attrs["config"]) for t in finalists)
        assert all(quality(t.user_attrs["config"]) <= worst_finalist + 1e-12 for t in by_rung["short"])
    best = max(finalists, key=lambda t: (quality(t.user_attrs["config"]), -t.number))
    assert stats["best"]["trial"] == best.number
    assert len(short) >= len(finalists)
    assert study.user_attrs[BUDGET_STATE]["finished"] is True
    kinds = [e["kind"] for e in events]
    assert kinds.count("plan") == 1 and kinds[-1] == "done"


class _Diverging(FakeCluster):
    """Candidates with lr above 0.05 diverge in the first epoch of any training (stopped after 0.1 epoch)."""

    def cost(self, key, spec):
        c = super().cost(key, spec)
        return 0.1 * COST_EPOCH if _fake._is_train(spec) and float(spec.config["lr"]) > 0.05 else c

    def wait(self):
        out = super().wait()
        key, status, res = out[0]
        if status == "ok" and "diverged" in res and float(self.spec_of[key]["lr"]) > 0.05:
            res.update(diverged=True, test_acc=[], final_test_acc=0.1, epochs_trained=0)
        return out

    def submit(self, key, spec):
        self.spec_of = getattr(self, "spec_of", {})
        self.spec_of[key] = spec.config
        super().submit(key, spec)


def test_async_a_candidate_that_diverged_in_its_short_training_trains_no_further(tmp_path):
    # its short-rung seconds (0.3 s) are no epoch's: the tail must neither take it nor cut its epochs from them
    space, objectives, study, cfg = _setup(tmp_path, 120, 3, promotion="async")
    fake = _Diverging(3)
    stats = _run(tmp_path, space, objectives, study, cfg, fake)
    diverged = {k for k, r in fake.rungs if r == "short" and float(fake.spec_of[k]["lr"]) > 0.05}
    full = {k for k, r in fake.rungs if r == "full"}
    assert diverged and full and not diverged & full
    assert fake.now() <= 120 + 4 * COST_EPOCH and stats["rungs"].get("full", 0) >= 1
    trials = study.get_trials(deepcopy=False)
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}


class _WideIsDear(FakeCluster):
    """A training step of a net of width >= 14 costs 4x (an epoch 12 s instead of 3 s): the wide nets, which
    the fake's accuracy favours, are the dear ones, so the promoted cost more than the median candidate."""

    def cost(self, key, spec):
        c = super().cost(key, spec)
        return c * self.factor(spec.config) if _fake._is_train(spec) else c

    @staticmethod
    def factor(config) -> float:
        return 4.0 if float(config["width"]) >= 14 else 1.0

    def submit(self, key, spec):
        self.config_of = getattr(self, "config_of", {})
        self.config_of[key] = spec.config
        super().submit(key, spec)

    def wait(self):
        out = super().wait()
        key, status, res = out[0]
        if status == "ok" and "time_step" in res:  # rung 0 times its steps: as dear as its epochs
            res["time_step"] *= self.factor(self.config_of[key])
        return out


@pytest.mark.parametrize("workers", [1, 2])
def test_sync_finalists_fit_the_time_left_at_their_own_costs(tmp_path, workers):
    space, objectives, study, cfg = _setup(tmp_path, 150, workers, promotion="sync")
    fake = _WideIsDear(workers)
    stats = _run(tmp_path, space, objectives, study, cfg, fake)
    assert stats["rungs"].get("full", 0) >= 1 and stats["best"] is not None
    assert fake.now() <= 150  # counted at the median cost, the promoted ran to 222 s (1 worker), 228 s (2)


def test_makespan_starts_each_job_on_the_first_free_worker():
    from nas.search.plan import makespan

    assert makespan([3, 3, 3], 2) == 6 and makespan([5, 1, 1, 1], 2) == 5 and makespan([1, 1, 5], 2) == 6
    assert makespan([2, 2], 1) == 4 and makespan([], 3) == 0


def _driver_died(study: optuna.Study) -> None:
    """What kill -9 leaves: the RUNNING trials' owner is a process of this host that has exited."""
    from nas.search.ownership import DRIVER_KEY

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = f"{socket.gethostname()}:{proc.pid}:dead"
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_system_attr(t._trial_id, DRIVER_KEY, dead)
    state = study.user_attrs[BUDGET_STATE]
    study.set_user_attr(BUDGET_STATE, {**state, "driver": dead})


class _KillAfter(FakeCluster):
    """A fake cluster whose driver dies (KeyboardInterrupt) when ``after`` jobs of kind ``kind`` finished."""

    def __init__(self, workers: int, kind: str, after: int) -> None:
        super().__init__(workers)
        self.kind, self.after, self.finished = kind, after, []

    def wait(self):
        out = super().wait()
        key = out[0][0]
        rung = [k for n, k in self.rungs if n == key][-1]  # init, early, short or full
        self.finished.append((key, rung))
        kinds = [("train" if k in ("short", "full") else k) for _, k in self.finished]
        if kinds[-1] == self.kind and kinds.count(self.kind) > self.after:
            raise KeyboardInterrupt  # the driver dies with this job's result lost
        return out


@pytest.mark.parametrize("promotion", [pytest.param("sync", marks=pytest.mark.slow), "async"])
@pytest.mark.parametrize("kind,after", [("train", 2), ("init", 10)])
def test_an_interrupted_budget_search_continues_without_redoing_finished_work(tmp_path, kind, after, promotion):
    budget, workers = 120, 2
    space, objectives, study, cfg = _setup(tmp_path, budget, workers, promotion=promotion)
    first = _KillAfter(workers, kind, after)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, space, objectives, study, cfg, first)
    state = study.user_attrs[BUDGET_STATE]
    assert not state["finished"] and 0 < state["spent"] <= first.now() + 1e-9
    done_first = set(first.finished[:-1])  # the last one's result was lost with the driver
    _driver_died(study)
    # the rerun: a new driver (the old one is gone), the clock goes on where it stopped
    second = FakeCluster(workers)
    second.t = first.now()
    events: list[dict] = []
    stats = _run(tmp_path, space, objectives, study, cfg, second, events)
    assert stats["resumed"] and events[0]["kind"] == "resume"
    again = [(n, k) for n, k in second.rungs if (n, k) in done_first]
    assert not again, f"finished jobs were run again: {again}"
    # a finalist's training started in the first run continues from its epochs, not from scratch
    assert stats["best"] is not None and study.user_attrs[BUDGET_STATE]["finished"] is True
    # within the budget overall (spent before + after), give or take one job in flight at the kill
    assert second.now() <= budget + 5 * COST_EPOCH
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    # every candidate that finished a rung in the first run kept its values (no retry of it exists)
    retried = {t.user_attrs.get("retry_of_trial") for t in trials} - {None}
    finished_init = {n for n, k in done_first if k == "init"}
    assert (study.user_attrs[BUDGET_STATE]["ladder"] is None) == (promotion == "sync")
    assert not retried & finished_init
    assert all(t.user_attrs.get(RUNG_DONE) is not None for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_a_finished_budget_search_reruns_as_a_new_budget(tmp_path):
    space, objectives, study, cfg = _setup(tmp_path, 60, 1, epochs=2)
    fake = FakeCluster(1)
    _run(tmp_path, space, objectives, study, cfg, fake)
    n = len(study.trials)
    again = FakeCluster(1)
    stats = _run(tmp_path, space, objectives, study, cfg, again)
    assert not stats["resumed"] and len(study.trials) > n and again.now() <= 60 + 4 * COST_EPOCH
    assert math.isclose(study.user_attrs[BUDGET_STATE]["budget"], 60.0)


def _kill_inside_complete(monkeypatch, after: int):
    from nas.search import lifecycle

    calls = {"n": 0}
    original = lifecycle.Lifecycle.complete

    def complete(self, number, result, store=True):
        calls["n"] += 1
        if calls["n"] == after:
            raise _Killed
        return original(self, number, result, store)

    monkeypatch.setattr(lifecycle.Lifecycle, "complete", complete)
    return calls


class _Killed(BaseException):
    """Not an Exception and not KeyboardInterrupt: nothing in the driver catches it (like kill -9)."""


@pytest.mark.parametrize("where", ["promotion", "end"])
def test_a_kill_while_telling_stopped_candidates_is_finished_by_the_rerun(tmp_path, monkeypatch, where):
    budget, workers = 120, 2
    reference_dir, cut_dir = tmp_path / "ref", tmp_path / "cut"
    reference_dir.mkdir(), cut_dir.mkdir()
    # the synchronous climb: a promotion tells its whole stopped cohort at once (async tells one at a time)
    space, objectives, ref_study, cfg = _setup(reference_dir, budget, workers, promotion="sync")
    ref = _run(reference_dir, space, objectives, ref_study, cfg, FakeCluster(workers))
    told = sum(1 for t in ref_study.trials if t.state == optuna.trial.TrialState.COMPLETE)
    # the same search, killed in the middle of the tells: at the first promotion, or after the result is saved
    space, objectives, study, cfg = _setup(cut_dir, budget, workers, promotion="sync")
    after = 3 if where == "promotion" else told - 1
    with monkeypatch.context() as m:
        _kill_inside_complete(m, after)
        first = FakeCluster(workers)
        with pytest.raises(_Killed):
            _run(cut_dir, space, objectives, study, cfg, first)
    _driver_died(study)
    second = FakeCluster(workers)
    second.t = first.now()
    stats = _run(cut_dir, space, objectives, study, cfg, second)
    # the same climb as without the kill: the same rungs and the same result
    assert stats["best"] is not None and stats["best"]["trial"] == ref["best"]["trial"]
    rungs = lambda st: sorted((t.user_attrs.get(RUNG), t.number) for t in st.trials if t.state.name == "COMPLETE")
    assert rungs(study) == rungs(ref_study)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_a_second_driver_does_not_take_over_a_live_climb(tmp_path):
    from nas.search.budget_state import BudgetState, save_state
    from nas.search.ownership import Driver
    from nas.search.plan import BudgetError

    space, objectives, study, cfg = _setup(tmp_path, 60, 1)
    save_state(study, BudgetState(budget=60.0, spent=5.0, driver=Driver.new().id))  # this (live) process
    with pytest.raises(BudgetError, match="a budget search is running on study"):
        _run(tmp_path, space, objectives, study, cfg, FakeCluster(1))
