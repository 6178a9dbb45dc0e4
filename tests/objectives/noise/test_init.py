"""The package surface of ``objectives.noise``: its public names, the six registered metrics (one file
each, named by the key), and their common contract (finite, deterministic, model bit-identical, values
in range, the KS distance equal to scipy's on the same spectrum)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import objectives
from objectives import noise as N
from objectives import registry

NOISE_METRICS = {
    "grad_norm_cv": "minimize",
    "grad_depth_trend": "minimize",
    "sgn_gaussianity": "maximize",
    "sgn_berry_esseen": "minimize",
    "spectrum_s": "maximize",
    "spectrum_ks": "minimize",
}


def test_public_names_are_exported():
    assert len(N.__all__) == len(set(N.__all__)) == 36
    for name in N.__all__:
        assert getattr(N, name) is not None, name
    assert set(NOISE_METRICS) <= set(N.__all__)
    assert {"eligible_grads", "global_gradient_std"} <= set(N.__all__)  # used by the training code


def test_registry_entries():
    for name, direction in NOISE_METRICS.items():
        e = registry.get(name)
        assert e.direction == direction
        assert e.citation and e.summary and e.fn.__module__ == f"objectives.noise.{name}"
        assert e.fn is getattr(N, name)
        assert "probe" in e.options


def test_noise_metrics_contract_finite_deterministic_model_unchanged(bn_convnet, data, snapshot, assert_identical):
    model = bn_convnet()
    x, y = data(64, shape=(1, 8, 8), classes=3)
    before = snapshot(model)
    names = list(NOISE_METRICS)
    a = objectives.score(model, x, y, metrics=names, seed=3)
    b = objectives.score(model, x, y, metrics=names, seed=3)
    assert a == b
    assert all(math.isfinite(v) for v in a.values())
    assert 0 <= a["sgn_gaussianity"] <= 100 and -1 <= a["grad_depth_trend"] <= 1
    assert a["grad_norm_cv"] > 0 and a["spectrum_s"] > 0
    # the KS distance of the same spectrum (the probe's per-example gradients) by scipy
    g = objectives.Probe(model, x, y, seed=3).per_example_grads().double().numpy()
    gc = g - g.mean(0)
    ev = np.sort(np.linalg.eigvalsh(gc @ gc.T / g.shape[0]))[::-1]  # Gram matrix: same nonzero spectrum
    top = ev[ev > 1e-8 * ev[0]]
    beta = 1 + top.size / np.log(top / top[-1]).sum()
    assert a["spectrum_s"] == pytest.approx(1 / (beta - 1), rel=1e-6)
    ks = stats.kstest(top, stats.pareto(b=beta - 1, scale=top[-1]).cdf).statistic
    assert a["spectrum_ks"] == pytest.approx(ks, rel=1e-6)
    assert_identical(model, before)
    model.eval()
    objectives.score(model, x, y, metrics=names, bn_mode="contribution")
    assert_identical(model, before, training=False)
