"""[000]'s norm profile and depth trend: the table against numpy on hand-built norms, the trend of a
geometric sequence, and - slow-marked - the depth profile of CNN-3/4/5 trained on mnist5k against an
independent record of the same training run."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from objectives import noise as N


def test_norm_profile_and_depth_trend():
    steps = np.arange(10)
    norms = {f"l{k}": (4.0 - k) * np.exp(-0.1 * steps) * (1 + 0.05 * k * (-1) ** steps) for k in range(4)}
    prof = N.layer_norm_profile(norms, early=0.2, late=0.2)
    x = np.stack(list(norms.values()), axis=1)
    np.testing.assert_allclose(prof.mean, x.mean(0))
    np.testing.assert_allclose(prof.cv, x.std(0, ddof=1) / x.mean(0))
    np.testing.assert_allclose(prof.ratio, x[:2].mean(0) / x[-2:].mean(0))
    assert prof.early_steps == prof.late_steps == 2 and prof.num_steps == 10
    assert prof.mean_trend.spearman == pytest.approx(-1.0)
    assert len(prof.rows()) == 4 and prof.rows()[0]["layer"] == "l0"
    geo = N.depth_trend([2.0**-k for k in range(5)])
    assert geo.spearman == pytest.approx(-1.0)
    assert geo.log_slope == pytest.approx(-4 * math.log(2))  # normalized depth: whole net = 1
    assert math.isnan(N.depth_trend([1.0, 1.0, 1.0]).spearman)
    assert math.isnan(N.depth_trend([1.0, 0.0, 2.0]).log_slope)
    with pytest.raises(ValueError):
        N.depth_trend([1.0])


@pytest.mark.slow
def test_trend_depth_profile_of_cnn_3_4_5(mnist5k, small_cnn, train):
    """The depth profile and its trends, at init (``grad_depth_trend``) and over 150 training steps
    (``GradientStdTracker.norm_profile``), equal those computed from plain ``.grad`` norms recorded
    independently in the same run (scipy's Spearman rho, numpy's fit)."""
    torch.set_num_threads(2)
    x0, y0 = mnist5k.train_x[:256], mnist5k.train_y[:256]
    for name, convs in {"CNN-3": [8, 16, 32], "CNN-4": [8, 16, 32, 32], "CNN-5": [8, 16, 32, 32, 64]}.items():
        model = small_cnn(convs)
        weights = [n for n, p in model.named_parameters() if p.dim() > 1]  # a Sequential: forward order
        depth = np.arange(1, len(weights) + 1)
        at_init = N.grad_depth_trend(model, x0, y0)
        ref = copy.deepcopy(model)
        F.cross_entropy(ref(x0), y0).backward()
        init_norms = [float(p.grad.double().norm()) for p in ref.parameters() if p.dim() > 1]
        assert at_init == pytest.approx(stats.spearmanr(depth, init_norms).statistic, abs=1e-12)
        recorded: list[list[float]] = []

        def record(m, recorded=recorded):
            recorded.append([float(p.grad.double().norm()) for p in m.parameters() if p.dim() > 1])

        tracker = N.GradientStdTracker(model, order=N.layer_order(model, x0))
        train(model, mnist5k, steps=150, tracker=tracker, on_backward=record)
        prof = tracker.norm_profile()
        norms = np.array(recorded)  # (steps, layers)
        mean = norms.mean(0)
        cv = norms.std(0, ddof=1) / mean
        assert prof.layers == weights and len(weights) == len(convs) + 2 and prof.num_steps == 150
        np.testing.assert_allclose(prof.mean, mean, rtol=1e-5)
        np.testing.assert_allclose(prof.cv, cv, rtol=1e-4)
        np.testing.assert_allclose(prof.ratio, norms[:30].mean(0) / norms[-30:].mean(0), rtol=1e-5)
        assert prof.mean_trend.spearman == pytest.approx(stats.spearmanr(depth, mean).statistic, abs=1e-12)
        assert prof.cv_trend.spearman == pytest.approx(stats.spearmanr(depth, cv).statistic, abs=1e-12)
        slope = np.polyfit((depth - 1) / (depth.size - 1), np.log(mean), 1)[0]
        assert prof.mean_trend.log_slope == pytest.approx(slope, rel=1e-4)
        print(f"\n[000 trend] {name}: init rho {at_init:+.2f}; over 150 steps rho(mean norm) "
              f"{prof.mean_trend.spearman:+.2f}, log-slope {prof.mean_trend.log_slope:+.2f}, "
              f"rho(CV) {prof.cv_trend.spearman:+.2f}; mean norms "
              + " ".join(f"{v:.3g}" for v in prof.mean) + "; CV " + " ".join(f"{v:.2f}" for v in prof.cv)
              + "; early/late " + " ".join(f"{v:.2f}" for v in prof.ratio))
