"""The report's numbers (nas/report/stats.py), shared with the benchmarks, against independent references:
scipy.stats, an O(n^2) tau-b and a hand-ranked Spearman rho, and cases worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import nas.report as report
from nas.report.stats import (
    correlate, count_nonfinite, direction_sign, finite_or_none, is_blank, is_true, key_direction, mean_rank,
    noise_ceiling, oriented, oriented_correlate, parse_number, phase, rank_corr, topk_hits,
)
from objectives import registry


def _tau_b(x, y):
    """Kendall's tau-b by counting pairs: (concordant - discordant) / sqrt((n0 - tx)(n0 - ty))."""
    conc = disc = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tx += dx == 0
        ty += dy == 0
        conc += dx * dy > 0
        disc += dx * dy < 0
    n0 = len(x) * (len(x) - 1) / 2
    return (conc - disc) / math.sqrt((n0 - tx) * (n0 - ty))


def _average_ranks(v):
    """1-based ranks, ties sharing their average rank (by hand, no scipy)."""
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _spearman(x, y):
    """Pearson correlation of the average ranks."""
    return float(np.corrcoef(_average_ranks(x), _average_ranks(y))[0, 1])


def test_correlate_and_topk_edge_cases():
    assert correlate([1, 1, 1, 1], [0.1, 0.2, 0.3, 0.4])["note"] == "undefined: metric constant"
    assert correlate([1, 2, 3, 4], [0.5] * 4)["note"] == "undefined: target constant"
    c = correlate([1, 2, None, float("nan"), 5], [0.1, 0.2, 0.3, 0.4, 0.2])
    assert c["n"] == 3 and c["kendall_tau"] == pytest.approx(stats.kendalltau([1, 2, 5], [0.1, 0.2, 0.2]).statistic)
    assert correlate([1, 2], [1, 2])["note"] == "undefined: n < 3"
    assert correlate([1, 2, 3], [True, False, True])["n"] == 3  # booleans count as 0/1
    hit = topk_hits([3, 2, 1, 0], [0.1, 0.2, 0.3, 0.4], [0, 1, 2, 3], "minimize", k=2)
    assert hit["topk_hits"] == 2 and hit["topk_rate"] == 1.0 and hit["topk_chance"] == 0.5
    miss = topk_hits([3, 2, 1, 0], [0.1, 0.2, 0.3, 0.4], [0, 1, 2, 3], "maximize", k=2)
    assert miss["topk_hits"] == 0
    assert topk_hits([1, 1, 1], [0.1, 0.2, 0.3], [0, 1, 2], "minimize")["topk_hits"] is None


def test_public_names_are_the_stats_functions():
    """``from nas.report import correlate, ...`` (as imported before the split) gives these functions."""
    assert report.correlate is correlate and report.topk_hits is topk_hits and report.key_direction is key_direction
    assert report.ALPHA == 0.05 and report.ACCURACY == "val_best_acc" and report.CONVERGED == "val_converged"


def test_correlate_matches_pair_counting_and_hand_ranks_on_finite_pairs():
    rng = np.random.default_rng(0)
    x = list(rng.integers(0, 6, 40).astype(float))  # many ties
    y = list(rng.normal(size=40))
    x[3], y[7], x[11], y[12] = math.nan, math.inf, None, -math.inf
    y[20] = y[21]  # a tie in y too
    keep = [i for i in range(40) if i not in (3, 7, 11, 12)]
    xs, ys = [x[i] for i in keep], [y[i] for i in keep]
    c = correlate(x, y)
    assert c["n"] == 36 and c["note"] == ""
    assert c["kendall_tau"] == pytest.approx(_tau_b(xs, ys), abs=1e-12)
    assert c["spearman_rho"] == pytest.approx(_spearman(xs, ys), abs=1e-12)
    assert c["kendall_p"] == pytest.approx(stats.kendalltau(xs, ys).pvalue, abs=1e-12)
    assert c["spearman_p"] == pytest.approx(stats.spearmanr(xs, ys).pvalue, abs=1e-12)


def test_exact_kendall_p_of_a_perfect_order():
    """n = 5, no ties: P(tau = 1) = 1/5! under independence; two-sided p = 2/120."""
    c = correlate([1, 2, 3, 4, 5], [0.1, 0.3, 0.5, 0.7, 0.9])
    assert c["kendall_tau"] == pytest.approx(1.0) and c["spearman_rho"] == pytest.approx(1.0)
    assert c["kendall_p"] == pytest.approx(2 / 120)


def test_oriented_correlate_flips_minimized_keys_and_never_gives_minus_zero():
    x, y = [1, 2, 3, 4], [1, 3, 4, 2]
    plain = correlate(x, y)
    down = oriented_correlate(x, y, "minimize")
    assert down["kendall_tau"] == pytest.approx(-_tau_b(x, y))
    assert down["spearman_rho"] == pytest.approx(-_spearman(x, y))
    assert down["kendall_p"] == plain["kendall_p"] and down["n"] == plain["n"]
    assert oriented_correlate(x, y, "maximize") == plain
    zero = oriented_correlate([1, 2, 3, 4], [1, 4, 3, 2], "minimize")  # tau-b = 0 exactly
    assert zero["kendall_tau"] == 0.0 and math.copysign(1.0, zero["kendall_tau"]) == 1.0
    undefined = oriented_correlate([1, 1, 1], [1, 2, 3], "minimize")
    assert undefined["kendall_tau"] is None and undefined["note"] == "undefined: metric constant"
    assert direction_sign("minimize") == -1.0 and direction_sign("maximize") == 1.0


def test_oriented_and_count_nonfinite_by_hand():
    o = oriented([3.0, 2.0, math.inf, 1.0, math.nan], "minimize")
    assert list(o) == [-3.0, -2.0, -math.inf, -1.0, -math.inf]
    assert list(oriented([1.0, -math.inf, 2.0])) == [1.0, -math.inf, 2.0]
    assert count_nonfinite([1.0, -math.inf, math.nan, -math.inf, math.inf]) == "2 -inf, 1 +inf, 1 nan"
    assert count_nonfinite([1.0, 2.0]) == "0"


def test_rank_corr_ranks_nonfinite_worst_and_tied():
    """Reference: scipy on the same values with every non-finite one replaced by one value below the rest."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=30)
    a[[2, 5, 9]] = [-math.inf, math.nan, math.inf]
    b = rng.normal(size=30)
    o = oriented(a)
    ref = np.where(np.isfinite(o), o, np.min(o[np.isfinite(o)]) - 1.0)
    rho, tau = rank_corr(o, b)
    assert rho == pytest.approx(stats.spearmanr(ref, b).statistic, abs=1e-12)
    assert tau == pytest.approx(stats.kendalltau(ref, b).statistic, abs=1e-12)
    # by hand: the failures sit tied at the bottom of the truth too -> a perfect agreement
    worst_tied = oriented([1.0, 2.0, -math.inf, math.nan, 3.0])
    assert rank_corr(worst_tied, [2.0, 3.0, 1.0, 1.0, 4.0]) == pytest.approx((1.0, 1.0))
    assert all(math.isnan(v) for v in rank_corr([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert all(math.isnan(v) for v in rank_corr([-math.inf] * 4, [1.0, 2.0, 3.0, 4.0]))
    assert all(math.isnan(v) for v in rank_corr([1.0, 2.0], [1.0, 2.0]))


def test_mean_rank_by_hand():
    values = [[1.0, 3.0], [2.0, 2.0], [2.0, 1.0], [math.nan, 0.0]]
    # column 0 minimized: ranks 1, 2.5, 2.5 (tie); column 1 maximized: 3 -> 1, 2 -> 2, 1 -> 3; row 3 not finite
    np.testing.assert_array_equal(mean_rank(values, ["minimize", "maximize"]), [1.0, 2.25, 2.75, math.nan])
    assert mean_rank(np.zeros((0, 2)), ["minimize", "minimize"]).shape == (0,)
    assert np.isnan(mean_rank([[math.nan, 1.0]], ["minimize", "minimize"])).all()


def test_noise_ceiling_is_correlate_plus_mean_abs_difference():
    a = [0.5, 0.7, math.nan, 0.9, 0.2]
    b = [0.4, 0.8, 0.3, 0.6, math.inf]
    c = noise_ceiling(a, b)
    assert c["n"] == 3 and c["kendall_tau"] == pytest.approx(_tau_b([0.5, 0.7, 0.9], [0.4, 0.8, 0.6]))
    assert c["mean_abs_diff"] == pytest.approx((0.1 + 0.1 + 0.3) / 3)
    empty = noise_ceiling([], [])
    assert empty["n"] == 0 and empty["kendall_tau"] is None and empty["mean_abs_diff"] is None


def test_topk_hits_default_k_and_ties_by_trial_number():
    # 8 finite trials -> k = 8 // 4 = 2; metric maximized; the metric ties (5, 5) are broken by trial number
    values = [5, 5, 1, 2, 3, 4, None, 0, 0.5]
    acc = [0.1, 0.9, 0.2, 0.3, 0.4, 0.95, 0.99, 0.5, 0.6]
    numbers = list(range(9))
    hit = topk_hits(values, acc, numbers, "maximize")
    # metric top 2: trials 0 and 1; accuracy top 2 (trial 6 has no value): trials 5 and 1 -> one hit
    assert hit == {"topk_k": 2, "topk_hits": 1, "topk_rate": 0.5, "topk_chance": 2 / 8}
    assert topk_hits([1.0], [0.5], [0], "minimize") == {"topk_k": 1, "topk_hits": None, "topk_rate": None,
                                                        "topk_chance": None}
    assert topk_hits([], [], [], "minimize")["topk_k"] is None


def test_table_cells_as_pandas_writes_and_reads_them(tmp_path):
    df = pd.DataFrame({"flag": [True, False, None], "x": [1.5, None, float("-inf")], "s": ["a", "", None]})
    df.to_csv(tmp_path / "t.csv", index=False)
    back = pd.read_csv(tmp_path / "t.csv")
    assert [is_true(v) for v in back["flag"]] == [True, False, False]
    assert [parse_number(v) for v in back["flag"][:2]] == [1.0, 0.0]
    x = [parse_number(v) for v in back["x"]]
    assert x[0] == 1.5 and math.isnan(x[1]) and x[2] == -math.inf
    assert [is_blank(v) for v in back["s"]] == [False, True, True]
    assert parse_number("TRUE") == 1.0 and parse_number(" false ") == 0.0 and parse_number("2e3") == 2000.0
    assert math.isnan(parse_number("abc")) and math.isnan(parse_number(None)) and math.isnan(parse_number([1]))
    assert is_true("1.0") and is_true(1) and not is_true(0) and not is_true(math.nan) and not is_true("yes")
    assert is_blank("  ") and is_blank(math.nan) and not is_blank(0.0)


def test_finite_or_none():
    assert finite_or_none(3) == 3.0 and finite_or_none(True) == 1.0 and finite_or_none(np.float64(2.5)) == 2.5
    for v in (None, math.nan, math.inf, -math.inf, "1.0", [1]):
        assert finite_or_none(v) is None


def test_key_directions_and_phases():
    assert key_direction("kappa_w") == registry.get("kappa_w").direction == "minimize"
    assert key_direction("synflow@early") == registry.get("synflow").direction == "maximize"
    assert key_direction("loss_drop") == "maximize" and key_direction("train_loss_last") == "minimize"
    assert key_direction("params") == registry.get("params").direction
    assert key_direction("something_else") == "maximize"
    assert (phase("confusion"), phase("confusion@early"), phase("loss_drop")) == ("init", "early", "derived")


def test_a_column_equal_to_an_earlier_one_on_every_trial_is_named_as_its_duplicate():
    import optuna

    from nas.report.stats import duplicate_keys

    def trial(**attrs):
        return optuna.trial.create_trial(value=0.0, user_attrs=attrs)

    # the early rung skipped: loss_early repeats loss_init on every trial; kappa_w differs on one trial
    trials = [trial(loss_init=2.3, loss_early=2.3, kappa_w=1.0, kappa_w_copy=1.0),
              trial(loss_init=2.1, loss_early=2.1, kappa_w=3.0, kappa_w_copy=3.0),
              trial(loss_init=float("nan"), loss_early=None, kappa_w=2.0, kappa_w_copy=2.5)]
    assert duplicate_keys(trials, ["loss_init", "loss_early", "kappa_w", "kappa_w_copy"]) == {"loss_early": "loss_init"}
    assert duplicate_keys(trials, ["loss_early", "loss_init"]) == {"loss_init": "loss_early"}  # the first one stays
    assert duplicate_keys(trials[:1], ["a", "b"]) == {}  # absent everywhere: nothing to leave out
