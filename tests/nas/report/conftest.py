"""Fixtures of the report tests: a made-up validated study, and its report written once per session."""

from __future__ import annotations

import contextlib
import io
import math
import random
import types
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution

import objectives
from nas.cli import main
from nas.study import (
    default_storage, open_study, parse_constraint, parse_objectives,
)
from nas.search.keys import validation_key
from search_spaces import get_space

#: The pre-lab search defaults: these studies are made with custom objectives and constraints.
THESIS_OBJECTIVES = "confusion:min,diversity:min,kappa_w:min"
THESIS_CONSTRAINTS = ("rank_input<=0.15", "loss_drop>=0")

BOUNDS = {"blocks": 1, "width": 8, "batch_size": 32, "norm": "bn", "lr": [0.01, 0.05]}


def make_validated_study(runs: Path, name: str, n: int = 8, validate: bool = True) -> optuna.Study:
    """n complete trials with made-up metrics and validation results (4 'pareto', the rest 'random'; trial 1
    diverged, trial n-1 never validated), one FAIL trial; ``params`` is constant, ``kappa_x`` missing on
    trial 0 (a non-finite value is stored as None)."""
    space = get_space("resnet_cifar", **BOUNDS)
    objs = parse_objectives(THESIS_OBJECTIVES)  # the pre-lab defaults: a study with custom objectives
    cons = [parse_constraint(c) for c in THESIS_CONSTRAINTS]
    settings = {"space": "resnet_cifar", "bounds": space.bounds, "dataset": "synthetic",
                "objectives": [str(o) for o in objs], "constraints": [str(c) for c in cons], "seed": 0}
    study = open_study(name, default_storage(runs, name), objs, cons, "random", 0, settings)
    rng = random.Random(3)
    dist = {"lr": FloatDistribution(0.01, 0.05, log=True)}
    for i in range(n):
        lr = rng.uniform(0.01, 0.05)
        result = {m: rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS}
        result.update({f"{m}@early": rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS})
        result.update(loss_drop=rng.uniform(-0.1, 0.3), params=1000.0, rank_input=rng.uniform(0.05, 0.3),
                      train_kappa_w=rng.uniform(1, 100))
        if i == 0:
            result["kappa_x"] = None
        violations = {f"constraints:{c}": c.violation(result) for c in cons}
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions=dist, values=[result[o.key] for o in objs],
            user_attrs={**result, "config": space.validate({"lr": lr}), "seed": i,
                        "feasible": all(v <= 0 for v in violations.values())},
            system_attrs=violations))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"fail_reason": "non-finite training loss at early step 3"}))
    if validate:
        for i in range(n - 1):
            acc = rng.uniform(0.1, 0.9)
            diverged = i == 1
            study.set_user_attr(validation_key(i), {
                "val_final_acc": 0.0 if diverged else acc - 0.01, "val_best_acc": 0.0 if diverged else acc,
                "val_final_train_loss": None if diverged else 2.3 * (1 - acc),
                "val_loss_curve": [] if diverged else [2.0, 2.3 * (1 - acc)],
                "val_acc_curve": [] if diverged else [acc / 2, acc], "val_epochs_to_90": None if diverged else 2,
                "val_converged": (not diverged) and 2.3 * (1 - acc) < 0.5 * math.log(10),
                "val_converged_threshold": 0.5 * math.log(10), "val_diverged": diverged, "val_epochs": 2,
                "val_selected_by": "pareto" if i < 4 else "random"})
    return study


@pytest.fixture
def validated_study():
    """:func:`make_validated_study` (``validated_study(runs, name, n=8, validate=True)``)."""
    return make_validated_study


@pytest.fixture(scope="session")
def reported(tmp_path_factory):
    """``python -m nas report`` run once on ``make_validated_study(runs, "rep")``.

    Returns:
        A namespace: ``study``, ``folder`` (``runs/rep``: correlations.csv, plots/, report.html), ``code``
        (the exit code) and ``out`` (what the command printed).
    """
    runs = tmp_path_factory.mktemp("runs")
    study = make_validated_study(runs, "rep")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["report", "--study", "rep", "--runs-dir", str(runs)])
    return types.SimpleNamespace(study=study, folder=runs / "rep", code=code, out=buf.getvalue())
