"""In-study calibration (nas.lab.calibration) against hand computations and known ground truths."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.lab.calibration import (DEFAULT_PENALTY, PENALTIES, Calibration, LabelSet, calibrate, features_from,
                                 extra_features)
from objectives.combine import Feature


def log_ranks(v: np.ndarray, direction: str) -> np.ndarray:
    """log(rank / n), the best value ranked n: written out here as the reference (no NaN in these tables)."""
    r = stats.rankdata(v if direction == "maximize" else -v)
    return np.log(r / len(v))


def tau(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.kendalltau(a, b).statistic)


def table(n: int = 400, seed: int = 0, keys: str = "abc") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({k: rng.standard_normal(n) for k in keys})


# a prior that gets a right, b backwards and gives the irrelevant c a weight
PRIOR = (Feature("a", "maximize"), Feature("b", "maximize"), Feature("c", "maximize"))


def truth_of(t: pd.DataFrame) -> np.ndarray:
    """The known ground truth: linear in the model's basis, a maximized (1.0) and b minimized (0.7)."""
    return 1.0 * log_ranks(t["a"].to_numpy(), "maximize") + 0.7 * log_ranks(t["b"].to_numpy(), "minimize")


def test_no_labels_is_the_prior_by_hand():
    t = pd.DataFrame({"a": [3.0, 1.0, 2.0], "b": [10.0, 30.0, 20.0]})
    prior = (Feature("a", "maximize", 2.0), Feature("b", "minimize"))
    # a: ranks 3, 1, 2; b minimized: ranks 3, 1, 2 -> 3 * log(rank / 3)
    expected = 3 * np.log(np.array([3, 1, 2]) / 3)
    for labels in ([], [LabelSet("train_loss_last", "minimize", {1: 0.5})]):  # one label: no contrast
        cal = calibrate(t, prior, labels)
        np.testing.assert_allclose(cal.scores, expected, atol=1e-12)
        assert cal.features == prior and cal.description["refit"] is False
        assert cal.description["n_labels"] == len(labels)


def test_many_labels_recover_a_linear_ground_truth():
    t = table()
    truth = truth_of(t)
    labelled, rest = np.arange(300), np.arange(300, len(t))
    cal = calibrate(t, PRIOR, [LabelSet("acc", "maximize", {int(i): float(truth[i]) for i in labelled})])
    assert tau(cal.scores[rest], truth[rest]) > 0.9
    prior_only = sum(log_ranks(t[k].to_numpy(), "maximize") for k in "abc")
    assert tau(prior_only[rest], truth[rest]) < 0.3  # the prior alone is poor: the fit had something to learn
    w = {(f["key"], f["direction"]): f["weight"] for f in cal.description["features"]}
    assert cal.description["flipped"] == ["b"]
    assert w[("a", "maximize")] > 1.0 and w[("b", "minimize")] > 1.0
    noise = w.get(("c", "maximize"), 0.0) + w.get(("c", "minimize"), 0.0)
    assert noise < 0.25 * w[("a", "maximize")]
    # the true weight ratio b / a = 0.7, up to the labels being ranks of the truth rather than its values
    assert 0.5 < w[("b", "minimize")] / w[("a", "maximize")] < 1.0


@pytest.mark.parametrize("penalty", [DEFAULT_PENALTY, "loo"])
def test_a_feature_ranked_backwards_gets_flipped(penalty):
    t = table(200, seed=1, keys="a")
    prior = (Feature("a", "maximize"),)
    loss = t["a"].to_numpy() + 0.1 * np.random.default_rng(2).standard_normal(len(t))  # high a, high loss
    labels = [LabelSet("train_loss_last", "minimize", {i: float(loss[i]) for i in range(40)})]
    cal = calibrate(t, prior, labels, penalty=penalty)
    rest = np.arange(40, len(t))
    assert cal.description["flipped"] == ["a"]
    assert tau(cal.scores[rest], -loss[rest]) > 0.8
    assert tau(calibrate(t, prior, []).scores[rest], -loss[rest]) < -0.8
    if penalty == "loo":
        assert cal.description["penalty"] in PENALTIES


def test_the_prior_pulls_less_as_labels_come_in():
    """Fraction of the way from the prior's weights to those the labels alone support: grows with labels,
    shrinks with the penalty; a huge penalty keeps the prior's ranking."""
    t = table(300, seed=3)
    truth = truth_of(t)

    def b_min(m: int, penalty: float) -> float:
        cal = calibrate(t, PRIOR, [LabelSet("acc", "maximize", {i: float(truth[i]) for i in range(m)})],
                        penalty=penalty)
        return next((f.weight for f in cal.features if (f.key, f.direction) == ("b", "minimize")), 0.0)

    assert 0 < b_min(10, 20.0) < b_min(40, 20.0) < b_min(200, 20.0)
    assert b_min(40, 100.0) < b_min(40, 20.0) < b_min(40, 5.0)
    prior_rank = calibrate(t, PRIOR, []).scores
    huge = calibrate(t, PRIOR, [LabelSet("acc", "maximize", {i: float(truth[i]) for i in range(40)})],
                     penalty=1e4).scores
    assert tau(huge, prior_rank) > 0.97


def test_kinds_are_compared_within_themselves_and_only_by_rank():
    t = table(300, seed=4)
    truth = truth_of(t)
    loss = {i: float(50.0 - 3.0 * truth[i]) for i in range(60)}       # a loss on its own scale, minimized
    acc = {i: float(1 / (1 + math.exp(-truth[i]))) for i in range(60, 100)}  # an accuracy, maximized
    cal = calibrate(t, PRIOR, [LabelSet("loss", "minimize", loss), LabelSet("acc", "maximize", acc)])
    assert tau(cal.scores[100:], truth[100:]) > 0.8
    # a monotone transform of one kind's labels changes nothing
    loss2 = {i: math.exp(v / 10) for i, v in loss.items()}
    again = calibrate(t, PRIOR, [LabelSet("loss", "minimize", loss2), LabelSet("acc", "maximize", acc)])
    np.testing.assert_allclose(again.scores, cal.scores)
    assert cal.description["labels"] == {"loss": 60, "acc": 40} and cal.description["n_labels"] == 100


def test_description_round_trips_through_json():
    t = table(200, seed=5)
    truth = truth_of(t)
    cal = calibrate(t, PRIOR, [LabelSet("acc", "maximize", {i: float(truth[i]) for i in range(20)})])
    assert isinstance(cal, Calibration)
    back = json.loads(json.dumps(cal.description))
    assert back == cal.description
    assert features_from(back) == cal.features
    from objectives.combine import rank_aggregate

    np.testing.assert_allclose(rank_aggregate(t, features_from(back)), cal.scores)


def test_extra_features_are_the_varying_pool_metrics_then_config_columns():
    t = pd.DataFrame({"a": [1.0, 2.0, 3.0], "lr": [0.1, 0.01, 0.1], "batch_size": [64, 64, 64],
                      "params": [5.0, 6.0, float("nan")], "snip": [1.0, 3.0, 2.0], "meco": [0.5, 0.5, 0.5],
                      "az_expressivity": [float("nan"), 2.0, 1.0], "grad_norm": [float("nan")] * 3})
    # pool metrics first (in POOL_METRICS order), then the free values; constant or all-missing ones left out
    assert extra_features(t, (Feature("a", "maximize"),)) == ["az_expressivity", "snip", "params", "lr"]
    assert extra_features(t, (Feature("lr", "maximize"), Feature("snip", "minimize"))) == ["az_expressivity",
                                                                                            "params"]


def test_a_pool_metric_the_prior_leaves_out_is_learned():
    """Labels that follow a pool metric the prior does not read: the refit weighs it, and ranks the unlabelled
    rows by it (the prior alone, on an unrelated column, ranks them at chance)."""
    rng = np.random.default_rng(3)
    n = 300
    t = pd.DataFrame({"a": rng.standard_normal(n), "snip": rng.standard_normal(n)})
    truth = t["snip"].to_numpy()
    labelled = rng.permutation(n)[:40]
    labels = [LabelSet("acc", "maximize", {int(i): float(truth[i] + 0.3 * rng.standard_normal()) for i in labelled})]
    cal = calibrate(t, (Feature("a", "maximize"),), labels)
    rest = np.setdiff1d(np.arange(n), labelled)
    assert {f.key for f in cal.features} >= {"snip"}
    assert tau(cal.scores[rest], truth[rest]) > 0.5
    assert abs(tau(t["a"].to_numpy()[rest], truth[rest])) < 0.15


@pytest.mark.parametrize("kwargs, error", [
    ({"labels": [LabelSet("acc", "maximize", {0: 1.0, 99: 2.0})]}, ValueError),
    ({"labels": [{"key": "acc"}]}, TypeError),
    ({"labels": [], "penalty": "often"}, ValueError),
    ({"labels": [], "penalty": 0}, ValueError),
    ({"labels": [], "prior": ()}, ValueError),
    ({"labels": [], "extra": ["nope"]}, KeyError),
])
def test_bad_input_is_a_clear_error(kwargs, error):
    args = {"table": table(10), "prior": PRIOR, **kwargs}
    with pytest.raises(error):
        calibrate(**args)


def test_label_set_checks():
    with pytest.raises(ValueError, match="direction"):
        LabelSet("acc", "up", {0: 1.0})
    with pytest.raises(TypeError, match="integer"):
        LabelSet("acc", "maximize", {"0": 1.0})
    with pytest.raises(TypeError, match="numbers"):
        LabelSet("acc", "maximize", {0: "high"})


def test_label_count_counts_the_finite_labels_of_every_kind():
    from nas.lab.calibration import label_count

    loss = LabelSet("train_loss_last", "minimize", {0: 1.2, 1: math.nan, 2: 0.9})
    acc = LabelSet("short_test_acc", "maximize", {3: 0.5, 4: math.inf})
    assert label_count([loss, acc]) == 3 and label_count([]) == 0
