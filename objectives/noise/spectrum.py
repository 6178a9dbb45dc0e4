"""[000]/[001] Covariance spectra of gradient samples and power-law fits.

The eigenvalues of the covariance of n gradient samples (per-example, minibatch, or per-layer pooled
over seeds) by the Gram trick (:func:`gram_eigenvalues`); [000]'s spectrum statistics (eigenvalue
ratios with a padding rule, explained variance, effective rank; :func:`covariance_spectrum`); [001]'s
power-law MLE with x_min at the K-th largest value and its KS test (eqs. 7-8), plus a Vuong
likelihood-ratio comparison with a truncated lognormal (:func:`fit_power_law`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from scipy import optimize, special, stats
from torch import Tensor

from ._common import as_float64
from .collect import GradientHistory

__all__ = [
    "gram_eigenvalues", "PowerLawFit", "fit_power_law", "Spectrum", "covariance_spectrum", "layer_spectra",
]


def gram_eigenvalues(g: Tensor | np.ndarray, center: bool = True) -> np.ndarray:
    """Eigenvalues of the covariance (1/n) Gc^T Gc of an (n, d) sample matrix, descending, in float64.

    Gram trick: the d x d covariance and the n x n Gram matrix (1/n) Gc Gc^T share their nonzero
    eigenvalues, so the smaller of the two is diagonalized. ``center`` subtracts the row mean
    (Gc = G - 1 gbar^T: the covariance of the noise); ``False`` gives the second moment C_m of [001].
    Returns min(n, d) values (the centred matrix has rank <= n - 1, so the last is ~0); tiny negative
    round-off is clipped to 0.
    """
    a = torch.as_tensor(np.asarray(g) if not isinstance(g, Tensor) else g.detach()).to(torch.float64)
    if a.dim() != 2 or a.shape[0] < 1:
        raise ValueError(f"expected an (n, d) matrix with n >= 1, got shape {tuple(a.shape)}")
    n, d = a.shape
    if center:
        a = a - a.mean(0, keepdim=True)
    m = (a.T @ a) if d <= n else (a @ a.T)
    ev = torch.linalg.eigvalsh(m / n).flip(0).clamp_min(0.0)
    return ev.cpu().numpy()


@dataclass
class PowerLawFit:
    """Continuous power-law fit p(x) ~ x^-beta of the top-K values ([001] eqs. 7-8).

    Attributes:
        beta: MLE beta = 1 + K / sum_i ln(x_i / x_min), x_min = the K-th largest value.
        s: Zipf exponent of the rank plot x_k ~ k^-s, s = 1 / (beta - 1).
        k: K, the number of values fitted.
        x_min: the K-th largest value.
        ks_distance: sup |F_fitted - F_empirical| over the K values (eq. 7).
        ks_critical: 1.36 / sqrt(K) (alpha = 0.05; [001] Tables use 0.0430 for K = 1000).
        passes: ``ks_distance < ks_critical`` ([001]'s "power-law" verdict; lenient, since the
            parameters are fitted on the same data and no bootstrap p-value is computed).
        loglik_ratio: R = sum_i [ln p_powerlaw(x_i) - ln p_lognormal(x_i)], both truncated at x_min
            and fitted by maximum likelihood (Clauset et al. 2009 Sec. 5; beyond [001]). R > 0
            favours the power law.
        lr_p_value: Vuong's two-sided p-value erfc(|R| / sqrt(2 K var(d_i))) of the sign of R.
        preferred: ``"power_law"``/``"lognormal"`` when ``lr_p_value < 0.1``, else ``"undecided"``.
    """

    beta: float
    s: float
    k: int
    x_min: float
    ks_distance: float
    ks_critical: float
    passes: bool
    loglik_ratio: float = float("nan")
    lr_p_value: float = float("nan")
    preferred: str = "undecided"


def _top_k(values: np.ndarray | Tensor, k: int | None) -> np.ndarray:
    """The ``k`` largest positive finite values (all of them when ``k`` is None), descending."""
    x = as_float64(values).reshape(-1)
    x = x[np.isfinite(x) & (x > 0)]
    if k is not None and int(k) < x.size:
        x = np.partition(x, x.size - int(k))[x.size - int(k):]
    return np.sort(x)[::-1]


def _pareto_beta_ks(top: np.ndarray) -> tuple[float, float]:
    """(beta, KS distance) of the continuous power law fitted to descending values ``top``."""
    k = top.size
    x_min = top[-1]
    logs = np.log(top / x_min).sum()
    if logs <= 0:
        return float("inf"), float("nan")
    beta = 1.0 + k / logs
    asc = top[::-1]
    cdf = 1.0 - (asc / x_min) ** (1.0 - beta)
    i = np.arange(1, k + 1)
    ks = float(max((i / k - cdf).max(), (cdf - (i - 1) / k).max()))
    return float(beta), ks


def _lognormal_comparison(top: np.ndarray, beta: float) -> tuple[float, float]:
    """(R, p) of the Vuong likelihood-ratio test power law vs lognormal, both truncated at x_min."""
    x_min = top[-1]
    lx = np.log(top)
    lmin = math.log(x_min)
    ll_pl = math.log(beta - 1) - lmin - beta * (lx - lmin)

    def ll_ln(theta: np.ndarray) -> np.ndarray:
        mu, log_sigma = theta
        sigma = math.exp(log_sigma)
        z = (lx - mu) / sigma
        tail = special.log_ndtr(-(lmin - mu) / sigma)
        return -0.5 * z**2 - lx - log_sigma - 0.5 * math.log(2 * math.pi) - tail

    mu0 = float(lx.mean())
    s0 = float(max(lx.std(), 1e-3))
    bounds = [(lmin - 50 * max(s0, 1.0), float(lx.max()) + 10 * s0), (math.log(s0) - 7, math.log(s0) + 5)]
    best = None
    for start in ((mu0, math.log(s0)), (lmin, math.log(s0) + 1), (lmin - 5 * s0, math.log(s0) + 1.5)):
        res = optimize.minimize(lambda th: -ll_ln(th).sum(), np.array(start), method="L-BFGS-B",
                                bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    diff = ll_pl - ll_ln(best.x)
    r = float(diff.sum())
    sd = float(diff.std())
    p = float(special.erfc(abs(r) / (sd * math.sqrt(2 * top.size)))) if sd > 0 else float("nan")
    return r, p


def fit_power_law(
    values: np.ndarray | Tensor | Sequence[float],
    k: int | None = 1000,
    *,
    compare_lognormal: bool = True,
) -> PowerLawFit:
    """Fit a power law to the K largest positive values ([001] eq. 8, KS test eq. 7).

    [001] fits the top K = 1000 values (eigenvalues, or |g| of a gradient vector) with x_min fixed at
    the K-th largest (not Clauset's KS-optimal x_min) and accepts the power law when the KS distance
    is below 1.36/sqrt(K). The likelihood-ratio comparison with a truncated lognormal is an addition
    (``compare_lognormal``). Non-positive and non-finite values are dropped.

    Args:
        values: sample (any order).
        k: K (``None``: all positive values); fewer values than K use them all.
        compare_lognormal: also fit the lognormal and run the Vuong test.

    Raises:
        ValueError: fewer than 3 positive values, or all top-K values equal.
    """
    top = _top_k(values, k)
    if top.size < 3:
        raise ValueError(f"a power-law fit needs at least 3 positive values, got {top.size}")
    beta, ks = _pareto_beta_ks(top)
    if not math.isfinite(beta):
        raise ValueError("the top values are all equal: no power-law fit")
    crit = 1.36 / math.sqrt(top.size)
    fit = PowerLawFit(beta=beta, s=1.0 / (beta - 1.0), k=int(top.size), x_min=float(top[-1]),
                      ks_distance=ks, ks_critical=crit, passes=bool(ks < crit))
    if compare_lognormal:
        r, p = _lognormal_comparison(top, beta)
        fit.loglik_ratio, fit.lr_p_value = r, p
        if p < 0.1:
            fit.preferred = "power_law" if r > 0 else "lognormal"
    return fit


@dataclass
class Spectrum:
    """Covariance spectrum of one layer or model ([000] Table 3, Fig. 6; [001] Sec. 4).

    Attributes:
        eigenvalues: descending, the ``available`` ones (> rtol * lambda_1).
        available: number m of numerically nonzero eigenvalues (<= min(n - 1, d) when centred).
        ratio_10, ratio_100: lambda_1 / lambda_min(10, m), lambda_1 / lambda_min(100, m) ([000]'s
            padding rule: "the first 10 and 100 components or the maximum available"; a spectrum with
            one component gives 1.0).
        explained_top10: fraction of the variance in the top 10 components (Fig. 3 caption).
        explained_top10pct: the fraction in the top ceil(10 % of m) components (Table 3 heading).
        effective_rank_90: fewest components explaining >= 90 % of the variance.
        effective_rank_90_fraction: that count / m ([000] Table 4 reports this as a percentage).
        stable_rank: sum lambda / lambda_1 (= ||Gc||_F^2 / ||Gc||_2^2).
        entropy_rank: exp(entropy of lambda / sum lambda).
        skewness: sample skewness of the eigenvalues ([000] Table 3; its variable is unstated).
        power_law: :func:`fit_power_law` of the eigenvalues (None when m < 3).
        num_samples, dim: n and d of the sample matrix.
    """

    eigenvalues: np.ndarray = field(repr=False)
    available: int
    ratio_10: float
    ratio_100: float
    explained_top10: float
    explained_top10pct: float
    effective_rank_90: int
    effective_rank_90_fraction: float
    stable_rank: float
    entropy_rank: float
    skewness: float
    power_law: PowerLawFit | None
    num_samples: int
    dim: int

    def summary(self) -> dict[str, Any]:
        """Scalars only (no eigenvalue array), the power-law fit flattened with a ``pl_`` prefix."""
        d = {k: v for k, v in asdict(self).items() if k not in ("eigenvalues", "power_law")}
        if self.power_law is not None:
            d.update({f"pl_{k}": v for k, v in asdict(self.power_law).items()})
        return d


def covariance_spectrum(
    g: Tensor | np.ndarray,
    *,
    center: bool = True,
    energy: float = 0.9,
    fit_k: int | None = 1000,
    compare_lognormal: bool = True,
    rtol: float | None = None,
) -> Spectrum:
    """Spectrum statistics of the covariance of the rows of ``g`` (n samples x d entries).

    The rows are per-example gradients, minibatch gradients (a :class:`GradientHistory` layer or
    ``.matrix()``), or [000]'s per-layer gradients pooled over seeds and steps. Eigenvalues by the
    Gram trick (:func:`gram_eigenvalues`): n x n when n < d. Cost O(n^2 d + n^3).

    Args:
        g: (n, d) matrix, n >= 2.
        center: covariance (default) or second moment.
        energy: variance fraction of the effective rank (0.9 in [000]).
        fit_k: K of the power-law fit ([001]: 1000).
        compare_lognormal: run the lognormal likelihood-ratio comparison.
        rtol: eigenvalues <= rtol * lambda_1 count as zero (round-off of a rank-deficient matrix,
            e.g. the null directions of a weight followed by BatchNorm). Default: 1e-8 for float32
            or lower-precision samples (1e-4 in singular values), 1e-13 for float64.

    Raises:
        ValueError: fewer than 2 rows or an all-zero spectrum (e.g. identical rows when centred).
    """
    ev = gram_eigenvalues(g, center=center)
    n, d = int(np.shape(g)[0]), int(np.shape(g)[1])
    if rtol is None:
        f64 = g.dtype == torch.float64 if isinstance(g, Tensor) else np.asarray(g).dtype == np.float64
        rtol = 1e-13 if f64 else 1e-8
    if n < 2 and center:
        raise ValueError("a centred covariance needs at least 2 samples")
    if ev.size == 0 or ev[0] <= 0:
        raise ValueError("the covariance is zero (identical samples?): no spectrum")
    ev = ev[ev > rtol * ev[0]]
    m = int(ev.size)
    total = float(ev.sum())
    cum = np.cumsum(ev) / total
    eff = int(np.searchsorted(cum, energy - 1e-12) + 1)
    p = ev / total
    entropy_rank = float(math.exp(-(p * np.log(p)).sum()))
    skew = float(stats.skew(ev)) if m >= 3 and np.ptp(ev) > 0 else float("nan")
    return Spectrum(
        eigenvalues=ev,
        available=m,
        ratio_10=float(ev[0] / ev[min(10, m) - 1]),
        ratio_100=float(ev[0] / ev[min(100, m) - 1]),
        explained_top10=float(cum[min(10, m) - 1]),
        explained_top10pct=float(cum[max(1, math.ceil(0.1 * m)) - 1]),
        effective_rank_90=eff,
        effective_rank_90_fraction=eff / m,
        stable_rank=total / float(ev[0]),
        entropy_rank=entropy_rank,
        skewness=skew,
        power_law=(fit_power_law(ev, fit_k, compare_lognormal=compare_lognormal)
                   if m >= 3 and np.ptp(ev) > 0 else None),
        num_samples=n,
        dim=d,
    )


def layer_spectra(history: GradientHistory | Mapping[str, Tensor], **options: Any) -> dict[str, Spectrum]:
    """:func:`covariance_spectrum` of every layer of a history (``options`` are passed on).

    Layers whose spectrum is undefined (all-zero noise) are left out.
    """
    layers = history.layers if isinstance(history, GradientHistory) else history
    out = {}
    for n, g in layers.items():
        try:
            out[n] = covariance_spectrum(g, **options)
        except ValueError:
            continue
    return out
