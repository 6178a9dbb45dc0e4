"""``spectrum_ks`` ([001] eq. 7) against ``scipy.stats.kstest`` of the top covariance eigenvalues of
per-example gradients (computed by plain backward passes) and the Pareto law fitted to them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from objectives import noise as N


def test_spectrum_ks_matches_scipy_kstest(mlp, data, per_example_loop):
    model = mlp()
    x, y = data(32)
    g = per_example_loop(model, x, y).numpy()
    gc = g - g.mean(0)
    ev = np.sort(np.linalg.eigvalsh(gc.T @ gc / g.shape[0]))[::-1]
    top = ev[ev > 1e-8 * ev[0]][:20]
    beta = 1 + top.size / np.log(top / top[-1]).sum()
    ks = stats.kstest(top, stats.pareto(b=beta - 1, scale=top[-1]).cdf).statistic
    assert N.spectrum_ks(model, x, y, fit_k=20) == pytest.approx(ks, rel=1e-3)
