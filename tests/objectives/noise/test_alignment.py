"""[000]'s cross-seed alignment: the chance cosine against Monte Carlo, identical copies (cosine 1) and
independent copies (a valid interval, the models untouched)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from objectives import noise as N


def test_chance_cosine_matches_monte_carlo():
    gen = torch.Generator().manual_seed(8)
    for d in (10, 200, 2000):
        u = torch.randn(4000, d, generator=gen, dtype=torch.float64)
        v = torch.randn(4000, d, generator=gen, dtype=torch.float64)
        mc = float(F.cosine_similarity(u, v, dim=1).abs().mean())
        assert mc == pytest.approx(N.chance_cosine(d), rel=0.04)
        if d >= 200:
            assert mc == pytest.approx(math.sqrt(2 / (math.pi * d)), rel=0.04)
    assert N.chance_cosine(1) == pytest.approx(1.0)
    assert N.chance_cosine(10**6, exact=False) == pytest.approx(N.chance_cosine(10**6), rel=1e-5)


def test_cross_seed_alignment_identical_and_independent_copies(mlp, data, snapshot, assert_identical):
    batches = [data(16, seed=s) for s in range(2)]
    same = N.cross_seed_alignment(lambda s: mlp(0), batches, seeds=3, num_bootstrap=50)
    assert list(same) == ["1.weight", "3.weight", "5.weight"]
    for r in same.values():
        assert r.mean_cosine == pytest.approx(1.0) and r.ci_low == pytest.approx(1.0)
        assert r.num_seeds == 3 and r.num_batches == 2
    models = {}

    def make(seed):
        models[seed] = mlp(100 + seed)
        return models[seed]

    before = {s: snapshot(mlp(100 + s)) for s in range(4)}
    res = N.cross_seed_alignment(make, batches, seeds=4, num_bootstrap=200, seed=1)
    for s, m in models.items():
        assert_identical(m, before[s])
    r = res["1.weight"]
    assert r.dim == 120 and r.chance == pytest.approx(N.chance_cosine(120))
    assert -1 <= r.ci_low <= r.mean_cosine <= r.ci_high <= 1
    assert r.cosines.shape == (4, 4) and np.allclose(np.diag(r.cosines), 1.0)
    assert r.excess == pytest.approx(r.mean_abs_cosine - r.chance)
    with pytest.raises(ValueError, match="2 seeds"):
        N.cross_seed_alignment(make, batches, seeds=1)
