"""[001] Dimension-wise and iteration-wise tests on a gradient history matrix.

Xie et al. test each row of the (T, n) history matrix (one minibatch gradient over the parameters:
*dimension-wise*) and each column (one parameter over the minibatches, the SGN: *iteration-wise*) for a
power law of the magnitudes (KS test) and for Gaussianity (D'Agostino-Pearson), and report the
percentages that pass (Table 1).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats
from torch import Tensor

from ._common import as_float64, take_columns
from .collect import GradientHistory
from .spectrum import _pareto_beta_ks, _top_k

__all__ = ["AxisTests", "HistoryTests", "gradient_history_tests"]


@dataclass
class AxisTests:
    """Power-law and Gaussianity rates over the vectors of one axis of the history matrix ([001] Table 1).

    Attributes:
        axis: ``"dimension"`` (each vector = one minibatch gradient over the n parameters) or
            ``"iteration"`` (each vector = one parameter over the T minibatches: the SGN).
        power_law_rate: % of tested vectors whose top-K |values| pass the KS test.
        mean_ks: mean KS distance; ks_critical: 1.36/sqrt(K); k: K (min(k, vector length)).
        gaussian_rate: % of tested vectors with ``normaltest`` p > alpha on ``normal_points``
            random entries (whitened); mean_p: mean p-value.
        tested: vectors tested; dead: constant vectors skipped (no spread: not Gaussian, not tested).
    """

    axis: str
    power_law_rate: float
    mean_ks: float
    ks_critical: float
    k: int
    gaussian_rate: float
    mean_p: float
    normal_points: int
    tested: int
    dead: int


@dataclass
class HistoryTests:
    """Both axes of [001]'s analysis of a (T, n) gradient history matrix."""

    dimension: AxisTests
    iteration: AxisTests
    num_batches: int
    num_params: int


def _axis_tests(
    vectors: np.ndarray, axis: str, k: int, normal_points: int, alpha: float, rng: np.random.Generator
) -> AxisTests:
    """Rates over the rows of ``vectors`` (V, L)."""
    length = vectors.shape[1]
    dead = np.ptp(vectors, axis=1) == 0
    live = vectors[~dead]
    m = min(int(normal_points), length)
    if m < 20:
        raise ValueError(f"the normality test needs at least 20 points per vector, got {m}")
    kk = min(int(k), length)
    if kk < 3:
        raise ValueError(f"the power-law test needs K >= 3 values per vector, got {kk}")
    passes, ks_values = [], []
    for v in live:
        top = _top_k(np.abs(v), kk)
        if top.size < 3:
            passes.append(False)
            continue
        _, ks = _pareto_beta_ks(top)
        ok = math.isfinite(ks) and ks < 1.36 / math.sqrt(top.size)
        passes.append(bool(ok))
        if math.isfinite(ks):
            ks_values.append(ks)
    if live.shape[0]:
        pick = np.stack([rng.choice(length, m, replace=False) for _ in range(live.shape[0])])
        sample = np.take_along_axis(live, pick, axis=1)
        sample = sample - sample.mean(1, keepdims=True)
        sd = sample.std(1, keepdims=True)
        sd[sd == 0] = 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pvals = stats.normaltest(sample / sd, axis=1).pvalue
        pvals = np.nan_to_num(pvals, nan=0.0)  # a constant subsample: not Gaussian
        gaussian_rate, mean_p = float(100 * np.mean(pvals > alpha)), float(np.mean(pvals))
        pl_rate = float(100 * np.mean(passes))
    else:
        gaussian_rate = mean_p = pl_rate = float("nan")
    return AxisTests(
        axis=axis, power_law_rate=pl_rate,
        mean_ks=float(np.mean(ks_values)) if ks_values else float("nan"),
        ks_critical=1.36 / math.sqrt(kk), k=kk, gaussian_rate=gaussian_rate, mean_p=mean_p,
        normal_points=m, tested=int(live.shape[0]), dead=int(dead.sum()),
    )


def gradient_history_tests(
    history: GradientHistory | Tensor | np.ndarray,
    *,
    k: int = 1000,
    normal_points: int = 100,
    alpha: float = 0.05,
    max_vectors: int | None = 1000,
    seed: int = 0,
) -> HistoryTests:
    """Dimension-wise and iteration-wise power-law and Gaussian rates of a history matrix ([001] Sec. 3).

    For each vector: the KS power-law test on the top-K magnitudes |g| (K = min(k, length): [001]
    uses 1000, and K = T = 200 for its ResNet-18 rows), and D'Agostino-Pearson's ``normaltest`` on
    ``normal_points`` random signed entries after whitening (p > alpha = "Gaussian"; [001] App. B.2;
    its eq. 9 calls the K^2 statistic the p-value and its text states the decision backwards — the
    tables follow the standard rule used here). Rates are percentages of the tested vectors;
    constant vectors (dead weights) are counted apart. The Gaussian rate of a perfectly Gaussian
    sample is ~95 % (1 - alpha), not 100 %.

    Args:
        history: a :class:`GradientHistory` (all its layers side by side) or a (T, n) matrix.
        k: K of the power-law test.
        normal_points: entries per normality test (fixed, so rates are comparable).
        alpha: significance level.
        max_vectors: at most this many parameters (columns) are tested iteration-wise (random).
        seed: seed of the column and entry sampling.
    """
    g = history.matrix() if isinstance(history, GradientHistory) else history
    a = as_float64(g)
    if a.ndim != 2:
        raise ValueError(f"expected a (T, n) matrix, got shape {a.shape}")
    rng = np.random.default_rng(seed)
    t, n = a.shape
    columns = take_columns(a, max_vectors, rng)
    dim = _axis_tests(a, "dimension", k, normal_points, alpha, rng)
    it = _axis_tests(columns.T, "iteration", k, normal_points, alpha, rng)
    return HistoryTests(dimension=dim, iteration=it, num_batches=t, num_params=n)
