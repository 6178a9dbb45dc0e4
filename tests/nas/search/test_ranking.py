"""nas.search.ranking: the combined score over a study's trials, phase choice, fallbacks."""

import math

import numpy as np
import optuna
import pandas as pd

from nas.search.ranking import gradnas_scores, trials_table
from objectives.combine import (
    CONFIG_COLUMNS, EARLY_FEATURES, INIT_FEATURES, feature_inputs, feature_values, rank_aggregate,
)



def _study(n=8, early=True, seed=0):
    rng = np.random.default_rng(seed)
    study = optuna.create_study(direction="minimize")
    for i in range(n):
        t = study.ask()
        t.set_user_attr("config", {"lr": float(10 ** rng.uniform(-3, 0)), "batch_size": int(rng.choice([32, 64]))})
        inputs = feature_inputs((*INIT_FEATURES, *EARLY_FEATURES))
        for key in [k for k in inputs if k not in (*CONFIG_COLUMNS, "loss_curve", "train_loss_last")]:
            t.set_user_attr(key, float(rng.random()))
        for key in ("train_loss_last", "loss_early", "loss_drop"):  # values of the early steps (NaN without)
            t.set_user_attr(key, float(rng.random()) if early else math.nan)
            if early:
                t.set_user_attr(f"{key}@early", float(rng.random()))
        curve = list(2.3 - np.cumsum(rng.random(6)) / 10) if early else []
        t.set_user_attr("loss_curve", curve)
        t.set_user_attr("train_loss_smooth_min", float(min(curve)) if early else math.nan)
        t.set_user_attr("metric_errors", {})
        study.tell(t, float(i))
    return study


def test_trials_table_has_config_and_values():
    study = _study(3)
    table = trials_table(study.trials)
    assert list(table.index) == [0, 1, 2]
    assert table.loc[1, "lr"] == study.trials[1].user_attrs["config"]["lr"]
    assert table.loc[2, "kappa_w"] == study.trials[2].user_attrs["kappa_w"]
    assert isinstance(table.loc[0, "loss_curve"], list)


def _reference(table, features):
    # an independent summed-log-rank: ranks with pandas, ties averaged, n = rows
    total = np.zeros(len(table))
    for f in features:
        v = pd.Series(feature_values(table, f.key))
        r = (v if f.direction == "maximize" else -v).rank(method="average").to_numpy()
        total += f.weight * np.log(r / len(table))
    return total


def test_scores_use_the_early_set_when_every_trial_has_it_else_init():
    study = _study(8, early=True)
    score, phase = gradnas_scores(study.trials)
    table = trials_table(study.trials)
    missing = [f.key for f in EARLY_FEATURES if not np.isfinite(feature_values(table, f.key)).any()]
    assert not missing, missing  # the fixture gives every input of the shipped sets
    assert phase == "early"
    np.testing.assert_allclose(score, _reference(table, EARLY_FEATURES))
    np.testing.assert_allclose(score, rank_aggregate(table, EARLY_FEATURES))
    score, phase = gradnas_scores(_study(8, early=False).trials)  # no early steps: the init set
    assert phase == "init"
    np.testing.assert_allclose(score, _reference(trials_table(_study(8, early=False).trials), INIT_FEATURES))


def test_no_score_without_the_inputs():
    study = optuna.create_study()
    t = study.ask()
    t.set_user_attr("config", {"lr": 0.1})
    t.set_user_attr("kappa_w", 1.0)
    study.tell(t, 1.0)
    assert gradnas_scores(study.trials) == (None, None)
    assert gradnas_scores([]) == (None, None)
