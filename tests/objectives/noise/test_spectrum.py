"""Covariance spectra and power laws ([000]/[001]): the MLE on Pareto and Zipf samples, the KS distance
against ``scipy.stats.kstest``, the Gram trick against the full covariance, the spectrum statistics on a
known spectrum and the padding rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from objectives import noise as N


def test_mle_recovers_pareto_exponent():
    rng = np.random.default_rng(0)
    beta = 2.5
    x = (1 - rng.random(20000)) ** (-1 / (beta - 1))  # Pareto, x_min = 1, p(x) ~ x^-2.5
    fit = N.fit_power_law(x, k=1000)
    assert fit.k == 1000
    assert fit.beta == pytest.approx(beta, abs=0.15)  # standard error (beta - 1)/sqrt(K) ~ 0.05
    assert fit.s == pytest.approx(1 / (fit.beta - 1))
    assert fit.ks_critical == pytest.approx(0.0430, abs=1e-4)  # [001]'s d_c for K = 1000
    assert fit.passes and fit.ks_distance < fit.ks_critical
    assert fit.preferred != "lognormal"


def test_mle_recovers_zipf_rank_exponent():
    lam = np.arange(1, 5001, dtype=np.float64) ** -1.3  # lambda_k = k^-s, s = 1.3
    fit = N.fit_power_law(np.random.default_rng(1).permutation(lam), k=1000)
    assert fit.s == pytest.approx(1.3, abs=0.05)
    assert fit.passes


def test_power_law_rejects_exponential_and_handles_degenerate_input():
    x = np.random.default_rng(2).exponential(size=20000)
    fit = N.fit_power_law(x, k=1000)
    assert not fit.passes
    assert fit.loglik_ratio < 0 and fit.preferred == "lognormal"
    with pytest.raises(ValueError, match="at least 3"):
        N.fit_power_law([1.0, 0.0, -2.0])
    with pytest.raises(ValueError, match="equal"):
        N.fit_power_law(np.ones(50))


@pytest.mark.parametrize("sample", ["pareto", "exponential", "lognormal"])
def test_ks_distance_equals_scipy_kstest_against_the_fitted_pareto(sample):
    rng = np.random.default_rng(11)
    x = {"pareto": (1 - rng.random(5000)) ** (-1 / 1.5), "exponential": rng.exponential(size=5000),
         "lognormal": rng.lognormal(0.0, 2.0, 5000)}[sample]
    fit = N.fit_power_law(x, k=500, compare_lognormal=False)
    top = np.sort(x)[-500:]
    beta = 1 + 500 / np.log(top / top[0]).sum()  # eq. 8 by hand, x_min = the 500th largest
    assert fit.beta == pytest.approx(beta, rel=1e-12) and fit.x_min == top[0]
    ref = stats.kstest(top, stats.pareto(b=beta - 1, scale=top[0]).cdf).statistic
    assert fit.ks_distance == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert fit.passes == (ref < 1.36 / np.sqrt(500))


@pytest.mark.parametrize("n,d", [(7, 20), (30, 5), (12, 12)])
def test_gram_trick_equals_full_covariance(n, d):
    g = np.random.default_rng(6).standard_normal((n, d)) * np.linspace(3, 0.2, d)
    for center in (True, False):
        got = N.gram_eigenvalues(torch.from_numpy(g), center=center)
        a = g - g.mean(0) if center else g
        full = np.sort(np.linalg.eigvalsh(a.T @ a / n))[::-1]
        assert got.shape == (min(n, d),)
        np.testing.assert_allclose(got, full[: min(n, d)], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(np.cov(g.T, bias=True)))[::-1][: min(n, d)],
        N.gram_eigenvalues(g), rtol=1e-9, atol=1e-12,
    )


def test_spectrum_statistics_on_a_known_spectrum():
    lam = 1.0 / np.arange(1, 201) ** 1.2
    n = lam.size
    g = np.diag(np.sqrt(n * lam))  # second moment (1/n) G^T G = diag(lam)
    spec = N.covariance_spectrum(g, center=False)
    np.testing.assert_allclose(spec.eigenvalues, lam, rtol=1e-10)
    assert spec.available == 200
    assert spec.ratio_10 == pytest.approx(10**1.2)
    assert spec.ratio_100 == pytest.approx(100**1.2)
    cum = np.cumsum(lam) / lam.sum()
    assert spec.explained_top10 == pytest.approx(cum[9])
    assert spec.explained_top10pct == pytest.approx(cum[19])
    assert spec.effective_rank_90 == int(np.argmax(cum >= 0.9) + 1)
    assert spec.effective_rank_90_fraction == pytest.approx(spec.effective_rank_90 / 200)
    assert spec.stable_rank == pytest.approx(lam.sum())
    assert spec.power_law is not None and spec.power_law.s == pytest.approx(1.2, abs=0.1)
    assert "pl_s" in spec.summary() and "eigenvalues" not in spec.summary()


def test_spectrum_padding_rule_for_small_layers():
    g = np.random.default_rng(7).standard_normal((40, 6))  # a 6-parameter layer
    spec = N.covariance_spectrum(g)
    assert spec.available == 6
    assert spec.ratio_10 == spec.ratio_100 == pytest.approx(spec.eigenvalues[0] / spec.eigenvalues[5])
    rank_one = N.covariance_spectrum(np.ones((5, 3)), center=False)
    assert rank_one.available == 1
    assert rank_one.ratio_10 == rank_one.ratio_100 == 1.0
    assert rank_one.power_law is None
    with pytest.raises(ValueError, match="zero"):
        N.covariance_spectrum(np.ones((5, 3)))  # identical rows: no noise
