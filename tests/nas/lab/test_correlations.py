"""nas.lab.correlations: oriented correlations of each key with accuracy, the mean rank, the noise ceiling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.lab import correlations
from nas.lab.keys import COMBINED
from nas.study import parse_objectives


def test_mean_rank_and_oriented_correlations():
    acc = np.array([0.1, 0.5, 0.3, 0.9, 0.7])
    df = pd.DataFrame({
        "val_best_acc": acc,
        "confusion": -acc,  # minimized: a perfect predictor
        "diversity": -acc,
        "kappa_w": -acc,
        "synflow": -acc,  # maximized: perfectly wrong
        "snip": [1.0] * 5,  # constant: undefined, never 0
        "naswot": [0.1, 0.5, np.nan, 0.9, 0.7],  # missing value: n = 4
    })
    objs = parse_objectives("confusion:min,diversity:min,kappa_w:min")  # the mean rank of chosen objectives
    ranks = correlations.mean_rank(df, objs)
    np.testing.assert_allclose(ranks, [5, 3, 4, 1, 2])
    rows = {r["key"]: r for r in correlations.correlation_rows(df, objs)}
    assert rows["confusion"]["tau"] == pytest.approx(1.0) and rows["confusion"]["rho"] == pytest.approx(1.0)
    assert rows[COMBINED]["tau"] == pytest.approx(1.0)
    assert rows["synflow"]["tau"] == pytest.approx(-1.0)
    assert rows["snip"]["tau"] is None and "constant" in rows["snip"]["note"]
    assert rows["naswot"]["n"] == 4 and rows["naswot"]["tau"] == pytest.approx(1.0)
    assert rows["confusion"]["ns"] is False  # exact p of a perfect order of 5 = 2/120
    order = [r["key"] for r in correlations.correlation_rows(df, objs)]
    assert order.index("synflow") > order.index("confusion") and order[-1] == "snip"  # sorted, undefined last
    text = correlations.format_correlations(correlations.correlation_rows(df, objs))
    assert "undefined: metric constant" in text


def test_noise_ceiling_is_the_seed_to_seed_tau():
    rng = np.random.default_rng(0)
    a = rng.random(12)
    df = pd.DataFrame({"val_best_acc": a, "rep_best_acc": a + 0.2 * rng.standard_normal(12)})
    c = correlations.noise_ceiling(df)
    assert c["n"] == 12 and c["kendall_tau"] == pytest.approx(stats.kendalltau(a, df["rep_best_acc"]).statistic)
    assert correlations.noise_ceiling(df[["val_best_acc"]])["kendall_tau"] is None
