"""The combined score: summed log-ranks against a hand computation, undefined values last, phases."""

import math

import numpy as np
import pandas as pd
import pytest

from objectives.combine import DERIVED, Feature, combined_score, rank_aggregate


def test_rank_aggregate_matches_hand_computation():
    t = pd.DataFrame({"a": [3.0, 1.0, 2.0, 2.0], "b": [10.0, 30.0, 20.0, 40.0]})
    got = rank_aggregate(t, [Feature("a", "maximize"), Feature("b", "minimize", weight=2.0)])
    # ranks of a (max): 4, 1, 2.5, 2.5; ranks of b (min): 4, 2, 3, 1; n = 4
    ra, rb = np.array([4, 1, 2.5, 2.5]), np.array([4, 2, 3, 1])
    np.testing.assert_allclose(got, np.log(ra / 4) + 2 * np.log(rb / 4))
    assert got[0] == 0.0  # best on both


def test_undefined_values_rank_last_in_either_direction():
    t = pd.DataFrame({"a": [1.0, float("nan"), 3.0, float("inf"), 2.0]})
    for direction in ("maximize", "minimize"):
        s = rank_aggregate(t, [Feature("a", direction)])
        assert s[1] == s[3] == pytest.approx(math.log(1.5 / 5))  # two undefined rows share ranks 1-2
        assert min(s[[0, 2, 4]]) > s[1]
    assert np.argmax(rank_aggregate(t, [Feature("a", "maximize")])) == 2
    assert np.argmax(rank_aggregate(t, [Feature("a", "minimize")])) == 0


def test_combined_score_is_aligned_and_uses_derived_features():
    t = pd.DataFrame({"lr": [0.1, 1.0, 0.01], "grad_weight_ratio": [1.0, 0.5, 2.0], "kappa_w": [1.0, 2.0, 3.0]},
                     index=[7, 8, 9])
    np.testing.assert_allclose(DERIVED["relative_step"](t), [0.1, 0.5, 0.02])
    np.testing.assert_allclose(DERIVED["relative_gradient_change"](t), [0.1, 1.0, 0.06])
    s = combined_score(t, "init", features=[Feature("relative_step", "minimize")])
    assert list(s.index) == [7, 8, 9] and s.name == "gradnas_init"
    assert s.idxmax() == 9 and s.idxmin() == 8


def test_bad_arguments_raise():
    t = pd.DataFrame({"a": [1.0, 2.0]})
    with pytest.raises(ValueError, match="phase"):
        combined_score(t, "late", features=[Feature("a", "maximize")])
    with pytest.raises(KeyError, match="no column 'b'"):
        combined_score(t, "init", features=[Feature("b", "maximize")])
    with pytest.raises(ValueError, match="direction"):
        Feature("a", "up")
    with pytest.raises(ValueError, match="weight"):
        Feature("a", "maximize", weight=0)
    with pytest.raises(ValueError, match="at least one feature"):
        rank_aggregate(t, [])


def test_default_feature_sets():
    from objectives.combine import EARLY_FEATURES, INIT_FEATURES, feature_inputs

    rng = np.random.default_rng(0)
    cols = feature_inputs(EARLY_FEATURES)
    t = pd.DataFrame({k: rng.random(8) for k in cols if k != "loss_curve"})
    t["lr"] = 0.1
    level = rng.random(8)
    t["loss_curve"] = [[float(v)] * 20 for v in level]  # a flat curve: its best smoothed loss is its level
    # the early set is the init set plus the early steps' best smoothed loss, which outweighs any init feature
    assert EARLY_FEATURES[1:] == INIT_FEATURES and EARLY_FEATURES[0].key == "train_loss_smooth_min"
    assert EARLY_FEATURES[0].direction == "minimize" and EARLY_FEATURES[0].weight > max(f.weight for f in INIT_FEATURES)
    # every row ranked equally on the init features: the early score ranks by the loss alone
    flat = t.copy()
    for k in cols:
        if k != "loss_curve":
            flat[k] = 1.0
    assert list(combined_score(flat, "early").sort_values().index) == list(np.argsort(-level, kind="stable"))
    # the thesis metrics enter the init score in their measured direction, not the paper's
    from objectives import registry
    for f in INIT_FEATURES:
        if f.key in registry.names() and registry.get(f.key).measured.get("init"):
            assert f.direction == registry.get(f.key).measured["init"].direction, f.key


def test_smoothed_loss_min_matches_a_hand_loop():
    from objectives.combine import smoothed_loss_min

    curve = np.array([2.3, 2.0, 2.6, 1.5, 1.9, 1.2])
    m, lows = 2.3, []
    for v in curve:  # the moving average started at the first loss, decay 0.9
        m = 0.9 * m + 0.1 * v
        lows.append(m)
    assert smoothed_loss_min(curve) == pytest.approx(min(lows))
    assert smoothed_loss_min(np.array([3.0, 3.0])) == pytest.approx(3.0)  # a flat curve: its value
    assert math.isnan(smoothed_loss_min(np.array([2.0, float("inf")])))  # diverged
    assert math.isnan(smoothed_loss_min(None))


def test_derived_features_read_curves_and_phase_suffixes():
    from objectives.combine import feature_values

    t = pd.DataFrame({
        "lr": [0.1, 0.2], "grad_weight_ratio": [1.0, 1.0], "grad_weight_ratio@50": [3.0, 0.5],
        "loss_curve@50": ["[2.0, 1.0, 0.5]", "not json"], "loss_curve": [[1.0, 1.0], [2.0, 2.0]],
    })
    np.testing.assert_allclose(feature_values(t, "relative_step"), [0.1, 0.2])
    np.testing.assert_allclose(feature_values(t, "relative_step@50"), [0.3, 0.1])  # the @50 columns, same lr
    np.testing.assert_allclose(feature_values(t, "train_loss_smooth_min"), [1.0, 2.0])
    got = feature_values(t, "train_loss_smooth_min@50")
    assert got[0] == pytest.approx(0.9 * (0.9 * 2.0 + 0.1 * 1.0) + 0.1 * 0.5) and math.isnan(got[1])
    with pytest.raises(KeyError, match="loss_curve"):
        feature_values(t.drop(columns=["loss_curve"]), "train_loss_smooth_min")
