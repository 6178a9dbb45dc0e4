"""GradientPruner + check in real Optuna studies on SQLite: single- and multi-objective, several processes.

Pruning decisions are checked against hand-computed ranks (a one-feature set on the sampled learning rate)
and, for the default rung-0 set, against a slow re-implementation of the rule from the stored values.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from scipy import stats
from torch import nn

from nas.integrations.optuna import GradientPruner, check, decision_key, values_key
from objectives.combine import BUDGET_INIT_FEATURES, Feature

optuna.logging.set_verbosity(optuna.logging.WARNING)
LR_ONLY = (Feature("lr", "maximize"),)  # a feature set the test controls through the sampled lr
LRS = [0.5, 0.1, 0.9, 0.3, 0.05, 0.7, 0.2]
# warmup 3, quantile 0.5; ranks are of lr among every candidate so far (the candidate included), score log(rank/n):
#   #3 lr .3: ranks of (.5 .1 .9 | .3) = (3 1 4 | 2); median of log([3 1 4]/4) = log(3/4) > log(2/4): pruned
#   #4 lr .05: (4 2 5 3 | 1): median of log([4 2 5 3]/5) = mean(log 3/5, log 4/5) > log(1/5): pruned
#   #5 lr .7: (4 2 6 3 1 | 5): median log(3/6) < log(5/6): kept
#   #6 lr .2: (5 2 7 4 1 6 | 3): median = mean(log 4/7, log 5/7) > log(3/7): pruned
EXPECTED = ["COMPLETE"] * 3 + ["PRUNED", "PRUNED", "COMPLETE", "PRUNED"]


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(10, 4, generator=g), torch.randint(0, 3, (10,), generator=g)


def _model(width: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))


def _study(tmp_path: Path, directions, pruner, name="s") -> optuna.Study:
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name=name, directions=directions,
                               pruner=pruner, sampler=optuna.samplers.TPESampler(seed=0))


def _lr_objective(multi: bool):
    x, y = _batch()

    def objective(trial):
        lr = trial.suggest_float("lr", 0.01, 1.0)
        width = trial.suggest_int("width", 2, 8)
        model = _model(width, trial.number)
        check(trial, model, (x, y))
        return (lr, float(width)) if multi else lr

    return objective


@pytest.mark.parametrize("directions", [["maximize"], ["maximize", "minimize"]], ids=["single", "multi"])
def test_pruning_decisions_match_hand_computation(tmp_path, directions):
    study = _study(tmp_path, directions, GradientPruner(quantile=0.5, warmup=3, features=LR_ONLY))
    for lr in LRS:
        study.enqueue_trial({"lr": lr, "width": 4})
    study.optimize(_lr_objective(len(directions) > 1), n_trials=len(LRS))
    # read back from the storage, as another process would
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}").trials
    assert [t.state.name for t in trials] == EXPECTED
    d3 = trials[3].user_attrs[decision_key("init")]
    assert d3["score"] == pytest.approx(math.log(2 / 4)) and d3["threshold"] == pytest.approx(math.log(3 / 4))
    assert d3["ranked_with"] == [0, 1, 2] and d3["prune"] is True
    d6 = trials[6].user_attrs[decision_key("init")]
    assert d6["threshold"] == pytest.approx((math.log(4 / 7) + math.log(5 / 7)) / 2)
    assert trials[0].user_attrs[decision_key("init")]["threshold"] is None  # no earlier candidate
    assert all(t.user_attrs[values_key("init")]["lr"] == lr for t, lr in zip(trials, LRS))
    assert all(not t.intermediate_values for t in trials)  # decided in our code, nothing reported


def _reference_decision(values: dict, earlier: list[dict], features, quantile: float, warmup: int) -> tuple[bool, float]:
    """Slow re-implementation: summed weight * log(rank / n) per feature (missing or NaN ranks last, ties
    averaged), then the quantile of the earlier rows' scores."""
    rows = earlier + [values]
    n = len(rows)
    total = np.zeros(n)
    for f in features:
        if f.key == "relative_step":
            col = [r["lr"] * r["grad_weight_ratio"] if r.get("grad_weight_ratio") is not None else None for r in rows]
        else:
            col = [r.get(f.key) for r in rows]
        v = np.array([np.nan if c is None else float(c) for c in col])
        v = v if f.direction == "maximize" else -v
        bad = ~np.isfinite(v)
        ranks = np.where(bad, (bad.sum() + 1) / 2, 0.0)
        ranks[~bad] = bad.sum() + stats.rankdata(v[~bad])
        total += f.weight * np.log(ranks / n)
    threshold = float(np.quantile(total[:-1], quantile)) if n > 1 else math.nan
    return bool(n - 1 >= warmup and n > 1 and total[-1] < threshold), threshold


def test_default_rung0_set_on_real_models_matches_reference(tmp_path):
    x, y = _batch()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-3, 1.0, log=True)
        batch_size = trial.suggest_categorical("batch_size", [16, 64])
        model = _model(trial.suggest_int("width", 1, 16), trial.number)
        check(trial, model, (x, y))
        return lr * batch_size, float(sum(p.numel() for p in model.parameters()))

    study = _study(tmp_path, ["maximize", "minimize"], GradientPruner(quantile=0.6, warmup=2))
    study.optimize(objective, n_trials=10)
    trials = study.trials
    pruned = 0
    for t in trials:
        values, decision = t.user_attrs[values_key("init")], t.user_attrs[decision_key("init")]
        assert {f.key for f in BUDGET_INIT_FEATURES} <= set(values)  # the rung-0 set's values, derived ones too
        assert values["batch_size"] == t.params["batch_size"] and values["lr"] == t.params["lr"]  # read from params
        earlier = [trials[i].user_attrs[values_key("init")] for i in decision["ranked_with"]]
        prune, threshold = _reference_decision(values, earlier, BUDGET_INIT_FEATURES, 0.6, 2)
        assert decision["prune"] is prune and (t.state.name == "PRUNED") is prune
        if decision["threshold"] is not None:
            assert decision["threshold"] == pytest.approx(threshold)
        pruned += prune
    assert 0 < pruned < len(trials)


def test_early_phase_uses_stored_init_values_and_loss_curve(tmp_path):
    x, y = _batch()
    curves = {0: [2.0] * 6, 1: [1.0] * 6, 2: [1.5] * 6, 3: [3.0, 2.5, 2.25, 2.0, 2.0, 2.0, 1.75]}

    def objective(trial):
        trial.suggest_float("lr", 0.01, 1.0)
        model = _model(4, 0)
        check(trial, model, (x, y))  # init: stored, never pruned (phase="early")
        check(trial, model, (x, y), loss_curve=curves[trial.number])
        return 0.0

    study = _study(tmp_path, ["minimize"], GradientPruner(warmup=3, phase="early",
                                                          features=(Feature("train_loss_last", "minimize"),)))
    for lr in (0.1, 0.2, 0.3, 0.4):
        study.enqueue_trial({"lr": lr})
    study.optimize(objective, n_trials=4)
    t3 = study.trials[3]
    # #3: last five losses average 2.0, tied with #0 (rank 1.5 of 4) below #2 (3) and #1 (4): pruned
    assert t3.user_attrs[values_key("early")]["train_loss_last"] == pytest.approx(2.0)
    assert t3.state.name == "PRUNED" and t3.user_attrs[decision_key("early")]["score"] == pytest.approx(math.log(1.5 / 4))
    assert t3.user_attrs[values_key("early")]["lr"] == t3.user_attrs[values_key("init")]["lr"]
    assert decision_key("init") not in t3.user_attrs  # the init check only stores


def test_then_pruner_judges_reported_values():
    pruner = GradientPruner(then=optuna.pruners.ThresholdPruner(upper=1.0))
    study = optuna.create_study(pruner=pruner)

    def objective(trial):
        trial.report(trial.suggest_float("v", 0.0, 2.0), step=0)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return 0.0

    for v in (0.5, 1.5):
        study.enqueue_trial({"v": v})
    study.optimize(objective, n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert not GradientPruner().prune(study, study.trials[1])  # without then: nothing from reports


def test_check_errors():
    x, y = _batch()
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(TypeError, match="pruner=GradientPruner"):
        check(trial, _model(2, 0), (x, y))  # the study's pruner is Optuna's default
    with pytest.raises(TypeError, match="pair"):
        check(trial, _model(2, 0), x, pruner=GradientPruner())
    with pytest.raises(TypeError, match="optuna.Trial"):
        check(optuna.trial.FixedTrial({}), _model(2, 0), (x, y), pruner=GradientPruner())
    with pytest.raises(ValueError, match="lr"):
        check(trial, _model(2, 0), (x, y), lr=-1.0, pruner=GradientPruner())
    for bad in (dict(quantile=2.0), dict(warmup=-1), dict(phase="late"), dict(features=())):
        with pytest.raises(ValueError):
            GradientPruner(**bad)
    with pytest.raises(TypeError, match="then"):
        GradientPruner(then="hyperband")


_WORKER = textwrap.dedent("""
    import sys, optuna, torch
    from torch import nn
    from nas.integrations.optuna import GradientPruner, check
    from objectives.combine import Feature
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    def objective(trial):
        lr = trial.suggest_float("lr", 0.01, 1.0)
        check(trial, nn.Linear(4, 3), (x, y))
        return lr
    study = optuna.load_study(study_name="s", storage=sys.argv[1],
                              pruner=GradientPruner(warmup=2, features=(Feature("lr", "maximize"),)))
    study.optimize(objective, n_trials=8)
""")


@pytest.mark.slow  # two fresh interpreters importing torch: 6-23 s on the shared 2-core machine
@pytest.mark.integration
def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="s", direction="maximize")
    root = Path(__file__).resolve().parents[3]
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, storage], cwd=root, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert len(trials) == 16 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    for t in trials:
        decision = t.user_attrs[decision_key("init")]
        earlier = [trials[i].user_attrs[values_key("init")] for i in decision["ranked_with"]]
        prune, _ = _reference_decision(t.user_attrs[values_key("init")], earlier, LR_ONLY, 0.5, 2)
        assert decision["prune"] is prune and (t.state.name == "PRUNED") is prune
    # each process saw the other's candidates: some trial was ranked among more than its own 7 predecessors
    assert max(len(t.user_attrs[decision_key("init")]["ranked_with"]) for t in trials) > 7
