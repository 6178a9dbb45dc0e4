"""Stable rank and its Gaussian reference against SVDs, closed forms and direct Gaussian sampling."""

import pytest
import torch

from objectives.core import gaussian_stable_rank, stable_rank


def test_stable_rank_closed_forms():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(7, 1, generator=g), torch.randn(1, 50, generator=g)
    assert stable_rank(u @ v) == pytest.approx(1.0, rel=1e-9)
    q, _ = torch.linalg.qr(torch.randn(50, 6, generator=g, dtype=torch.float64))
    assert stable_rank(q.T) == pytest.approx(6.0, rel=1e-9)
    a = torch.randn(5, 40, generator=g)
    s = torch.linalg.svdvals(a.double())
    assert stable_rank(a) == pytest.approx(float((s**2).sum() / s[0] ** 2), rel=1e-9)


def _direct_gaussian_rank(rows, cols, samples, seed=0):
    g = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(samples):
        s = torch.linalg.svdvals(torch.randn(rows, cols, generator=g, dtype=torch.float64))
        vals.append(float((s**2).sum() / s[0] ** 2))
    return sum(vals) / len(vals)


def test_gaussian_reference_rank_is_cached(monkeypatch):
    from objectives.core import linalg

    monkeypatch.setattr(linalg, "_GAUSSIAN_RANK_CACHE", {})
    r = gaussian_stable_rank(8, 4000)
    assert linalg._GAUSSIAN_RANK_CACHE == {(8, 4000): r}

    def no_sampling(*args, **kwargs):
        raise AssertionError("a cached shape was sampled again")

    monkeypatch.setattr(linalg, "wishart_gram", no_sampling)
    assert gaussian_stable_rank(8, 4000) == r
    with pytest.raises(AssertionError, match="sampled again"):
        gaussian_stable_rank(9, 4000)  # a new shape does sample


def test_gaussian_reference_rank_matches_direct_sampling():
    # a tall Gaussian matrix has nearly orthogonal rows: R(Y) close to (but below) 8
    assert gaussian_stable_rank(8, 4000) == pytest.approx(_direct_gaussian_rank(8, 4000, 100), rel=0.02)


def test_wishart_sampling_matches_direct_gaussian_sampling():
    import numpy as np

    from objectives.core import wishart_gram

    gen = np.random.default_rng(0)
    direct, bartlett = [], []
    for _ in range(300):
        y = gen.standard_normal((6, 40))
        e = np.linalg.eigvalsh(y @ y.T)
        direct.append(e.sum() / e[-1])
        e = np.linalg.eigvalsh(wishart_gram(6, 40, gen))
        bartlett.append(e.sum() / e[-1])
    assert np.mean(bartlett) == pytest.approx(np.mean(direct), rel=0.02)
    # mean trace is dim * df for both
    assert np.mean([np.trace(wishart_gram(6, 40, gen)) for _ in range(300)]) == pytest.approx(240, rel=0.02)
    # a wide and a tall shape: each against direct sampling of that very shape (same non-zero spectrum)
    direct = _direct_gaussian_rank(40, 6, 400, seed=1)
    assert gaussian_stable_rank(40, 6) == pytest.approx(direct, rel=0.03)
    assert gaussian_stable_rank(6, 40) == pytest.approx(_direct_gaussian_rank(6, 40, 400, seed=2), rel=0.03)
