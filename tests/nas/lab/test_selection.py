"""nas.lab.selection against independent references: directions, costs, greedy forward selection."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.lab import selection
from nas.lab.tables import load
from objectives.combine import Feature
from objectives.evidence import COST_STEPS


def _log_rank_score(df: pd.DataFrame, features) -> np.ndarray:
    """Summed weighted log-ranks written out with scipy (tables without missing values)."""
    n = len(df)
    total = np.zeros(n)
    for f in features:
        v = df[f.key].to_numpy(float)
        total += f.weight * np.log(stats.rankdata(v if f.direction == "maximize" else -v) / n)
    return total


def _tau(score, acc) -> float:
    return float(stats.kendalltau(score, acc).statistic)


def test_measured_direction_and_undefined_values_rank_last(toy_path):
    df = load(toy_path)
    d, t = selection.measured_direction(df, "kappa_w")
    v = df["kappa_w"].to_numpy(float)
    reference = np.where(np.isnan(v), np.nanmin(v) - 1.0, v)  # undefined: below every value
    assert d == "maximize" and t == pytest.approx(_tau(reference, df["acc"])) and t > 0.4
    assert selection.measured_direction(df, "train_loss_last")[0] == "minimize"  # losses are never learned
    flipped = df.assign(confusion=-df["acc"])
    assert selection.measured_direction(flipped, "confusion") == ("minimize", pytest.approx(1.0))


def test_cost_steps_sums_the_measured_costs_of_the_metrics_read():
    assert selection.cost_steps(["relative_step", "az_expressivity", "batch_size"]) == pytest.approx(
        COST_STEPS["grad_weight_ratio"] + COST_STEPS["az_expressivity"])
    assert selection.cost_steps(["relative_gradient_change"]) == pytest.approx(
        COST_STEPS["kappa_w"] + COST_STEPS["grad_weight_ratio"])
    # shared inputs count once; config values are free; an unmeasured metric is too expensive
    assert selection.cost_steps(["relative_step", "relative_gradient_change", "lr"]) == pytest.approx(
        COST_STEPS["kappa_w"] + COST_STEPS["grad_weight_ratio"])
    assert selection.cost_steps(["no_such_metric"]) == math.inf


def _two_signal_table(n=80, seed=1) -> pd.DataFrame:
    """acc = a + b: each of kappa_w (= a) and az_expressivity (= -b, minimized) carries half of it."""
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n)
    return pd.DataFrame({"acc": a + b, "kappa_w": a, "az_expressivity": -b, "confusion": rng.random(n),
                         "batch_size": rng.integers(32, 128, n).astype(float)})


def test_greedy_selection_matches_a_brute_force_reference():
    df = _two_signal_table()
    keys = ["kappa_w", "az_expressivity", "confusion", "batch_size"]
    combo, single = selection.select(df, keys)
    acc = df["acc"].to_numpy()
    # reference: best oriented single key, then the key that raises the summed log-ranks' tau most
    oriented = {k: max((_tau(_log_rank_score(df, [Feature(k, d)]), acc), d) for d in ("maximize", "minimize"))
                for k in keys}
    first = max(keys, key=lambda k: oriented[k][0])
    assert single == Feature(first, oriented[first][1]) == combo[0]
    pairs = {k: _tau(_log_rank_score(df, [combo[0], Feature(k, oriented[k][1])]), acc) for k in keys if k != first}
    second = max(pairs, key=pairs.get)
    assert combo[1] == Feature(second, oriented[second][1])
    assert {f.key for f in combo[:2]} == {"kappa_w", "az_expressivity"}
    assert combo[[f.key for f in combo].index("az_expressivity")].direction == "minimize"


def test_capped_selection_leaves_out_what_costs_too_much():
    df = _two_signal_table()
    keys = ["kappa_w", "az_expressivity", "confusion", "batch_size"]
    combo, single = selection.select(df, keys, max_cost=2.0)
    assert "kappa_w" not in [f.key for f in combo] and single.key != "kappa_w"  # 2.97 steps > 2
    assert selection.cost_steps([f.key for f in combo]) <= 2.0


def test_structured_early_score_takes_the_weight_that_ranks_best():
    rng = np.random.default_rng(2)
    n = 60
    acc = rng.random(n)
    loss = -acc + 0.3 * rng.standard_normal(n)
    # the early sets' loss is the best smoothed value of the per-step curve: a flat curve's is its level
    df = pd.DataFrame({"acc": acc, "loss": loss, "loss_curve": [[float(v)] * 20 for v in loss],
                       "kappa_w": acc + 0.6 * rng.standard_normal(n)})
    init = (Feature("kappa_w", "maximize"),)
    chosen = selection.select_structured(df, init)
    taus = {w: _tau(_log_rank_score(df, [Feature("loss", "minimize", w), *init]), acc)
            for w in selection.LOSS_WEIGHTS}
    assert chosen == selection.structured(init, max(taus, key=taus.get))
    assert chosen[0].key == selection.EARLY_LOSS and chosen[1:] == init


def test_candidate_features_by_phase(toy_path):
    df = load(toy_path)
    init = selection.candidate_features(df, "init")
    assert {"kappa_w", "confusion", "params", "lr", "batch_size"} <= set(init)
    assert "kappa_w@early" not in init and "train_loss_last" not in init
    early = selection.candidate_features(df, "early")
    assert {"kappa_w@early", "train_loss_last"} <= set(early)
    assert not set(selection.EXCLUDED) & set(early)


def test_a_value_of_the_early_steps_is_no_init_feature_even_when_stored(toy_path):
    """A table written by the search's build stores train_loss_smooth_min (from the 20 steps' loss curve) as
    a column: a candidate after the early steps, never at init; the 50-step view computes it from its curve."""
    from objectives.combine import smoothed_loss_min
    from nas.lab.tables import steps_view

    df = load(toy_path)
    curves = [[2.0, 1.5 - a, 1.0 - a] for a in df["acc"]]
    df = df.assign(train_loss_smooth_min=df["acc"], **{"loss_curve@50": [str(c) for c in curves]})
    assert "train_loss_smooth_min" not in selection.candidate_features(df, "init")
    view = steps_view(df, "50")
    assert "train_loss_smooth_min" in selection.candidate_features(view, "early")
    assert "train_loss_smooth_min" not in view.columns  # the stored (20-step) value is stale there
    np.testing.assert_allclose(selection.feature_values(view, "train_loss_smooth_min"),
                               [smoothed_loss_min(np.array(c)) for c in curves])
