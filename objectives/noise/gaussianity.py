"""[003] Gaussianity of the stochastic-gradient noise (Shapiro-Wilk) and its Berry-Esseen bound.

Wu et al. test every weight's minibatch gradients at fixed weights with Shapiro-Wilk and report the
per-layer percentage that passes (Tables 1-4), noting that dead weights (point masses) pass trivially;
they bound the distance of the minibatch gradient to the Gaussian by Berry-Esseen, with the third
absolute moment bounded by the square root of the kurtosis (eqs. 13, 19-21).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy import stats
from torch import Tensor

from ._common import as_float64, take_columns
from .collect import GradientHistory

__all__ = [
    "GaussianityResult",
    "GaussianityProfile",
    "sgn_gaussianity_profile",
    "BERRY_ESSEEN_A0",
    "BerryEsseenResult",
    "berry_esseen_profile",
]

#: Universal constant of the Berry-Esseen bound for i.i.d. summands (Shevtsova 2011: A_0 <= 0.4748).
BERRY_ESSEEN_A0 = 0.4748


@dataclass
class GaussianityResult:
    """Shapiro-Wilk Gaussianity of one layer's SGN ([003] Tables 1-4).

    Attributes:
        layer: name.
        percent: 100 * gaussian / tested (NaN when nothing was tested).
        normalized: percent / (100 (1 - alpha)): 1 is the ceiling of a perfectly Gaussian layer.
        gaussian: weights with SW p-value > alpha; tested: non-dead weights tested.
        dead: weights whose minibatch gradient is constant over the samples (point mass, e.g. dead
            ReLU units); Shapiro-Wilk would call them Gaussian ([003]) — counted apart here.
        total: weights considered (after subsampling); num_samples: minibatch gradients per weight
            (the test's sample size M; the percentage falls as M grows, so keep it fixed).
    """

    layer: str
    percent: float
    normalized: float
    gaussian: int
    tested: int
    dead: int
    total: int
    num_samples: int


@dataclass
class GaussianityProfile:
    """Per-layer :class:`GaussianityResult` and the pooled percentage over all tested weights."""

    layers: dict[str, GaussianityResult]
    percent: float
    normalized: float
    gaussian: int
    tested: int
    dead: int
    num_samples: int
    alpha: float
    batch_size: int | None = None


def _as_layer_dict(x: GradientHistory | Mapping[str, Tensor] | Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """layer -> (M, d) float64 matrix: the layers of a history, a mapping, or one matrix as ``"all"``."""
    if isinstance(x, GradientHistory):
        x = x.layers
    if isinstance(x, (Tensor, np.ndarray)):
        x = {"all": x}
    return {n: as_float64(v).reshape(len(v), -1) for n, v in x.items()}


def sgn_gaussianity_profile(
    samples: GradientHistory | Mapping[str, Tensor] | Tensor | np.ndarray,
    *,
    alpha: float = 0.05,
    max_weights: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> GaussianityProfile:
    """Per-layer percentage of weights whose gradient noise passes Shapiro-Wilk ([003] Sec. 4).

    For every weight, its M minibatch gradients (at fixed weights) are tested with
    ``scipy.stats.shapiro`` (AS R94, as in [003]); the weight is Gaussian when p > alpha. SW is
    location-scale invariant, so centring by the full-batch or the sample mean does not change the
    verdict. Weights with a constant gradient are *dead* (a point mass, which SW reports as
    p = 1), excluded from the percentage and counted apart. [003] samples 200 or 600 minibatches;
    its percentages are lower at 600 (more power), so compare values only at equal M.

    Args:
        samples: a :class:`GradientHistory` (``batch_size`` is taken from it), a mapping layer ->
            (M, d) matrix, or one (M, d) matrix; 3 <= M <= 5000.
        alpha: significance level (0.05).
        max_weights: test at most this many random weights per layer (``None``: all).
        seed: seed of the weight subsample.
        batch_size: recorded in the result (the minibatch size of the samples).

    Raises:
        ValueError: M outside 3..5000.
    """
    if isinstance(samples, GradientHistory) and batch_size is None:
        batch_size = samples.batch_size
    layers = _as_layer_dict(samples)
    rng = np.random.default_rng(seed)
    results: dict[str, GaussianityResult] = {}
    m_count = None
    for name, x in layers.items():
        m = x.shape[0]
        if not 3 <= m <= 5000:
            raise ValueError(f"Shapiro-Wilk needs 3..5000 samples per weight, got {m} for layer {name!r}")
        m_count = m
        x = take_columns(x, max_weights, rng)
        dead = np.ptp(x, axis=0) == 0
        live = x[:, ~dead]
        if live.shape[1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                pvals = np.atleast_1d(stats.shapiro(live, axis=0).pvalue)
            gaussian = int(np.sum(pvals > alpha))
        else:
            gaussian = 0
        tested = int(live.shape[1])
        pct = 100.0 * gaussian / tested if tested else float("nan")
        results[name] = GaussianityResult(name, pct, pct / (100 * (1 - alpha)), gaussian, tested,
                                          int(dead.sum()), int(x.shape[1]), m)
    gaussian = sum(r.gaussian for r in results.values())
    tested = sum(r.tested for r in results.values())
    pct = 100.0 * gaussian / tested if tested else float("nan")
    return GaussianityProfile(results, pct, pct / (100 * (1 - alpha)), gaussian, tested,
                              sum(r.dead for r in results.values()), int(m_count or 0), alpha, batch_size)


@dataclass
class BerryEsseenResult:
    """Berry-Esseen quantities of one layer's per-example gradients ([003] eqs. 13, 17-21).

    Per weight, with z = (g_s - mean) / sigma over the n per-example gradients g_s (the summands of
    a minibatch gradient): rho3 = E|z|^3 (= beta / sigma^3) and its upper bound sqrt(E z^4) =
    sqrt(kurtosis) (eq. 21). The bound on the sup-distance between the CDF of the standardized
    minibatch gradient of ``batch_size`` examples and the normal CDF is A_0 * rho3 / sqrt(B) (eq. 13);
    ``bound_*`` use the kurtosis upper bound A_0 sqrt(E z^4) / sqrt(B), as [003] proposes.
    Medians and 90th percentiles are over the non-dead weights of the layer.
    """

    layer: str
    rho3_median: float
    rho3_p90: float
    kurtosis_root_median: float
    kurtosis_root_p90: float
    bound_median: float
    bound_p90: float
    tested: int
    dead: int
    num_samples: int
    batch_size: int


def _standardized_moments(x: np.ndarray, third: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(rho3, sqrt(E z^4), dead mask) per column of x (n, d), population moments; rho3 is None without
    ``third`` (each power is an elementwise ``pow`` over the whole matrix: the costly part)."""
    dead = np.ptp(x, axis=0) == 0
    live = x[:, ~dead]
    z = live - live.mean(0)
    sd = np.sqrt((z**2).mean(0))
    z = z / sd
    return (np.abs(z**3).mean(0) if third else None), np.sqrt((z**4).mean(0)), dead


def berry_esseen_profile(
    per_example: Mapping[str, Tensor] | Tensor | np.ndarray,
    batch_size: int,
    *,
    a0: float = BERRY_ESSEEN_A0,
    max_weights: int | None = None,
    seed: int = 0,
) -> dict[str, BerryEsseenResult]:
    """Per-layer Berry-Esseen bound of the SGN at minibatch size ``batch_size`` ([003] Sec. 3).

    Args:
        per_example: layer -> (n, d) per-example gradients (n >= 4), or one matrix.
        batch_size: B of the bound A_0 * rho / sqrt(B).
        a0: the universal constant (0.4748; [003] leaves it unspecified).
        max_weights: at most this many random weights per layer.
        seed: seed of the subsample.

    Raises:
        ValueError: fewer than 4 samples or a bad batch size.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    layers = _as_layer_dict(per_example)
    rng = np.random.default_rng(seed)
    out = {}
    for name, x in layers.items():
        if x.shape[0] < 4:
            raise ValueError(f"need at least 4 per-example gradients, got {x.shape[0]}")
        x = take_columns(x, max_weights, rng)
        rho3, kr, dead = _standardized_moments(x)
        scale = a0 / math.sqrt(int(batch_size))
        if rho3.size:
            q = lambda v, p: float(np.quantile(v, p))  # noqa: E731
            res = BerryEsseenResult(name, q(rho3, .5), q(rho3, .9), q(kr, .5), q(kr, .9),
                                    scale * q(kr, .5), scale * q(kr, .9), int(rho3.size), int(dead.sum()),
                                    int(x.shape[0]), int(batch_size))
        else:
            nan = float("nan")
            res = BerryEsseenResult(name, nan, nan, nan, nan, nan, nan, 0, int(dead.sum()),
                                    int(x.shape[0]), int(batch_size))
        out[name] = res
    return out
