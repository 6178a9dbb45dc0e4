"""In-study calibration of the rung-0 score in the live budget search (``calibrate=True``), on a simulated clock.

The fake cluster (tests/nas/search/fake_jobs.py) is turned so that its rung-0 metrics rank the configs' quality
**backwards** (every measured input of the shipped rung-0 score worsens as quality rises), while the early rung's loss and
the short rung's accuracy follow quality, as training does. Reference: the config's ``quality`` (the fake's
ground truth). Without calibration the asynchronous climb promotes the worst candidates from rung 0 (the prior
is backwards); with it, once the early and short rungs have produced labels, the rung-0 promotions follow them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.lab import calibration
from nas.lab.calibration import MIN_LABELS, LabelSet
from nas.search.keys import BUDGET_STATE, CALIBRATION, RUNG_DONE
from nas.search.ranking import cohort_scores
from nas.search.rung0 import rung0_scores, study_labels
from objectives.combine import BUDGET_INIT_FEATURES

#: The measured inputs of the shipped rung-0 score (config columns such as batch_size left as sampled).
PRIOR = [f for f in BUDGET_INIT_FEATURES if f.key not in ("batch_size", "lr")]
#: The live searches' budget (simulated seconds) and the labels they refit from.
BUDGET, FEW = 60, 4


def _load(name: str, file: str):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


_budget = _load("_gradnas_test_budget", "test_budget.py")  # its study setup, driver and kill helpers
_fake = _budget._fake
_clean_shm = _budget._clean_shm  # noqa: F401  (autouse: the in-memory study folders are removed)


class Backwards(_fake.FakeCluster):
    """The fake cluster with rung-0 metrics that rank quality backwards; ``kill_after``: the driver dies
    (KeyboardInterrupt, the job's result lost) once that many training jobs (labels) have finished."""

    def __init__(self, workers: int, kill_after: int | None = None) -> None:
        super().__init__(workers)
        self.kill_after, self.trained_jobs = kill_after, 0

    def wait(self):
        (key, status, res), = super().wait()
        if status == "ok" and "az_expressivity" in res:  # a rung-0 result: the fake's quality is az / 10
            q = res["az_expressivity"] / 10.0
            res = {**res, **{f.key: (1.0 - q if f.direction == "maximize" else q) for f in PRIOR}}
        if status == "ok" and ("train_loss_last" in res or "test_acc" in res):
            self.trained_jobs += 1
            if self.kill_after is not None and self.trained_jobs > self.kill_after:
                raise KeyboardInterrupt
        return [(key, status, res)]


def _search(tmp_path, calibrate: bool, fake, budget: float = BUDGET, workers: int = 4, promotion: str = "async"):
    space, objectives, study, cfg = _budget._setup(tmp_path, budget, workers, promotion=promotion)
    cfg.calibrate = calibrate
    stats = _budget._run(tmp_path, space, objectives, study, cfg, fake)
    return study, stats


def _promoted_from_rung0(fake) -> list:
    """Trial numbers in the order they were promoted from rung 0 (their first job after it: the plan may skip
    the early rung)."""
    out = []
    for n, k in fake.rungs:
        if k != "init" and n not in out:
            out.append(n)
    return out


def _quality(study) -> dict[int, float]:
    return {t.number: _fake.quality(t.user_attrs["config"]) for t in study.get_trials(deepcopy=False)
            if "config" in t.user_attrs}


@pytest.fixture
def few_labels(monkeypatch):
    """A small live search trains few candidates: refit from :data:`FEW` labels (read at every ranking)."""
    monkeypatch.setattr(calibration, "MIN_LABELS", FEW)


def test_the_calibrated_climb_promotes_by_the_labels_once_they_exist(tmp_path, few_labels):
    (tmp_path / "off").mkdir(), (tmp_path / "on").mkdir()
    off_fake, on_fake = Backwards(4), Backwards(4)
    off, _ = _search(tmp_path / "off", False, off_fake)
    on, stats = _search(tmp_path / "on", True, on_fake)
    q_off, q_on = _quality(off), _quality(on)
    first_off, first_on = _promoted_from_rung0(off_fake), _promoted_from_rung0(on_fake)
    # the same draws (seeded sampler); before FEW labels exist the same prior ranks, so the same promotions
    assert first_on[:FEW] == first_off[:FEW]
    late_off, late_on = first_off[FEW:], first_on[FEW:]
    assert len(late_on) >= 5 and len(late_off) >= 5
    mean = lambda q, ns: float(np.mean([q[n] for n in ns]))
    # without calibration the backwards prior keeps promoting candidates worse than those it leaves at rung 0
    stayed = lambda study: [t.number for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RUNG_DONE) == 0]
    assert mean(q_off, late_off) < mean(q_off, stayed(off))
    # with it, the promotions after the labels arrived follow the labels: clearly better than without
    assert mean(q_on, late_on) > mean(q_off, late_off) + 0.05
    # what it learned is on the study: refit on the short rung's accuracies, the prior's direction weakened
    desc = on.user_attrs[CALIBRATION]
    assert desc["refit"] is True and desc["n_labels"] >= FEW and desc["labels"]["short_test_acc"] >= FEW
    learned = {(f["key"], f["direction"]): f["weight"] for f in desc["features"]}
    for f in PRIOR:
        assert learned.get((f.key, f.direction), 0.0) < f.weight or f.key in desc["flipped"]
    assert desc["refit_at"]["cohort"] >= FEW and desc["min_labels"] == FEW
    assert CALIBRATION not in off.user_attrs
    assert stats["best"] is not None


@pytest.mark.slow
def test_the_synchronous_climb_is_unchanged_by_calibrate(tmp_path, few_labels):
    # the synchronous climb ranks rung 0 once, before any candidate trained: no label, exactly the prior
    (tmp_path / "off").mkdir(), (tmp_path / "on").mkdir()
    off_fake, on_fake = Backwards(2), Backwards(2)
    _search(tmp_path / "off", False, off_fake, budget=40, workers=2, promotion="sync")
    on, _ = _search(tmp_path / "on", True, on_fake, budget=40, workers=2, promotion="sync")
    assert on_fake.rungs == off_fake.rungs and len(on_fake.rungs) > 10
    assert on.user_attrs.get(CALIBRATION, {}).get("refit", False) is False


def test_a_killed_calibrated_climb_resumes_from_the_stored_values(tmp_path, few_labels):
    first = Backwards(4, kill_after=FEW + 2)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, True, first)
    space, objectives, study, cfg = _budget._setup(tmp_path, BUDGET, 4)
    before = study.user_attrs[CALIBRATION]
    assert before["refit"] is True and "calibration" not in study.user_attrs[BUDGET_STATE]
    _budget._driver_died(study)
    second = Backwards(4)
    second.t = first.now()
    cfg.calibrate = True
    stats = _budget._run(tmp_path, space, objectives, study, cfg, second)
    after = study.user_attrs[CALIBRATION]
    # recomputed from the stored values: at least the labels the first run had, refit again
    assert stats["resumed"] and after["refit"] is True and after["n_labels"] >= before["n_labels"]
    assert not [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.RUNNING]


# ---------------------------------------------------------------- rung0_scores and study_labels
def _cohort(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    q = rng.random(n)
    rows = [{"lr": 0.1, "batch_size": float(rng.choice([32, 64, 128])), "params": 1000.0,
             **{f.key: (1.0 - x if f.direction == "maximize" else x) for f in PRIOR}} for x in q]
    return rows, q


def test_fewer_labels_than_the_minimum_rank_exactly_by_the_prior():
    rows, q = _cohort(30)
    labels = [LabelSet("train_loss_last", "minimize", {i: 2.3 - q[i] for i in range(MIN_LABELS - 1)})]
    scores, desc = rung0_scores(rows, (), labels)
    assert scores == cohort_scores(rows, "init", BUDGET_INIT_FEATURES)
    assert desc["refit"] is False and desc["reason"] == f"{MIN_LABELS - 1} labels < minimum {MIN_LABELS}"
    assert rung0_scores(rows)[1] is None  # no labels given: no calibration at all


def test_enough_labels_reverse_a_backwards_prior():
    from scipy.stats import kendalltau

    rows, q = _cohort(80)
    m = 4 * MIN_LABELS  # the prior counts as 20 labels: more than that outweigh it
    labels = [LabelSet("train_loss_last", "minimize", {i: 2.3 - q[i] for i in range(m)})]
    prior, refit = np.array(rung0_scores(rows, (), [])[0]), None
    refit, desc = rung0_scores(rows, (), labels)
    refit = np.array(refit)
    rest = slice(m, None)  # judged on the unlabelled rows only
    assert kendalltau(prior[rest], q[rest])[0] < -0.5
    assert kendalltau(refit[rest], q[rest])[0] > 0.5
    assert desc["refit"] is True and desc["n_labels"] == m and {f.key for f in PRIOR} <= set(desc["flipped"])


def test_study_labels_take_the_early_loss_and_the_short_accuracy_of_every_candidate():
    values = {
        0: {"config": {"lr": 0.1}, "train_loss_last": float("nan")},  # rung 0 only: no label
        1: {"config": {"lr": 0.1}, "train_loss_last": 1.5},
        2: {"config": {"lr": 0.1}, "train_loss_last": 1.2, "val_acc_curve": [0.5, 0.7]},
        5: {"config": {"lr": 0.1}, "train_loss_last": 1.9},  # another bracket's: outside the cohort
        7: {"config": {"lr": 0.1}, "val_acc_curve": [None], "val_test_loss_curve": [0.3]},  # regression
    }
    sets, others = study_labels(values, [0, 1, 2], short_epochs=1)
    by = {s.key: (s.direction, dict(s.values)) for s in sets}
    assert others == [5, 7]
    assert by["train_loss_last"] == ("minimize", {1: 1.5, 2: 1.2, 3: 1.9})
    assert by["short_test_acc"] == ("maximize", {2: 0.5})
    assert by["short_test_loss"] == ("minimize", {4: 0.3})
