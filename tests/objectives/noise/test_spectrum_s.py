"""``spectrum_s`` ([001] eq. 8) against the eigenvalues of the covariance of per-example gradients
computed by plain backward passes and the MLE by hand."""

from __future__ import annotations

import numpy as np
import pytest

from objectives import noise as N


def reference_top_eigenvalues(g: np.ndarray, k: int) -> np.ndarray:
    """The k largest eigenvalues of the centred covariance (1/n) Gc^T Gc, through numpy's eigvalsh
    of the full d x d matrix, descending (numerically zero ones dropped)."""
    gc = g - g.mean(0)
    ev = np.sort(np.linalg.eigvalsh(gc.T @ gc / g.shape[0]))[::-1]
    ev = ev[ev > 1e-8 * ev[0]]
    return ev[:k]


def test_spectrum_s_matches_hand_computation(mlp, data, per_example_loop):
    model = mlp()
    x, y = data(32)
    top = reference_top_eigenvalues(per_example_loop(model, x, y).numpy(), 20)
    beta = 1 + top.size / np.log(top / top[-1]).sum()
    assert N.spectrum_s(model, x, y, fit_k=20) == pytest.approx(1 / (beta - 1), rel=1e-4)
