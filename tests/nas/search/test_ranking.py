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
    key = next(k for k in feature_inputs((*INIT_FEATURES, *EARLY_FEATURES))
               if k not in (*CONFIG_COLUMNS, "loss_curve", "train_loss_last"))  # a metric the study stores
    assert table.loc[2, key] == study.trials[2].user_attrs[key]
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


def _reference_ranks(vectors):
    """Slow non-dominated sorting: peel the front (no vector strictly better in one coordinate and no worse
    in all) until nothing is left."""
    left, ranks, r = list(range(len(vectors))), {}, 0
    while left:
        r += 1
        front = [i for i in left
                 if not any(all(a <= b for a, b in zip(vectors[j], vectors[i])) and vectors[j] != vectors[i]
                            for j in left)]
        for i in front:
            ranks[i] = r
        left = [i for i in left if i not in front]
    return [ranks[i] for i in range(len(vectors))]


def test_dominance_ranks_match_a_slow_reference():
    from nas.search.ranking import dominance_ranks

    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.integers(0, 4, size=(12, 3)).astype(float).tolist()  # many ties
        v[0][1] = float("inf")
        assert dominance_ranks(v) == _reference_ranks(v)


def test_a_cohort_without_the_score_inputs_is_ranked_by_its_objectives():
    from nas.search.ranking import cohort_scores
    from nas.study import parse_objectives
    from objectives.combine import BUDGET_INIT_FEATURES

    objs = parse_objectives("kappa_w:min,coherence:max")
    rows = [{"kappa_w": 1.0, "coherence": 0.9}, {"kappa_w": 2.0, "coherence": 0.1}, {"kappa_w": float("nan"),
            "coherence": 0.5}, {"kappa_w": 0.5, "coherence": 0.2}]
    scores = cohort_scores(rows, "init", BUDGET_INIT_FEATURES, objs)
    # fronts: {0, 3} then {1, 2} (the undefined kappa_w ranks worst)
    assert scores == [-1.0, -2.0, -2.0, -1.0]


def test_the_best_trained_model_is_the_final_accuracy_then_fewer_parameters():
    from nas.search.ranking import best_trained

    results = {
        3: {"val_final_acc": 0.90, "val_best_acc": 0.95, "params": 100},
        5: {"val_final_acc": 0.92, "val_best_acc": 0.92, "params": 500},
        7: {"val_final_acc": 0.92, "val_best_acc": 0.93, "params": 200},
        9: {"val_final_acc": 0.92, "val_best_acc": 0.93, "params": 200},
        11: {"val_final_acc": None, "val_best_acc": 0.99},  # a failed training
    }
    assert best_trained(results) == 7  # not 3 (best epoch 0.95), not 5 (more parameters), not 9 (later)
    assert best_trained({1: {"val_final_acc": float("nan")}}) is None and best_trained({}) is None
