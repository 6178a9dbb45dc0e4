"""[000] Per-layer gradient-norm profile and its depth trend.

Roy & Roy track each layer's gradient norm over training (Table 1: mean, std, CV = std/mean,
early/late ratio) and find norms falling and CV rising with depth. :func:`depth_trend` measures such a
trend on any per-layer sequence (Spearman rho and a log-slope over normalized depth);
:func:`layer_norm_profile` builds the table from norms over steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats

from .collect import GradientHistory

__all__ = ["DepthTrend", "depth_trend", "NormProfile", "layer_norm_profile"]


@dataclass
class DepthTrend:
    """How a per-layer quantity v_l changes with depth l = 1..L.

    Attributes:
        spearman: Spearman rank correlation rho(l, v_l), in [-1, 1]; -1 = strictly decreasing with
            depth. NaN when v is constant.
        log_slope: OLS slope b of ln v_l = a + b * u_l with normalized depth u_l = (l-1)/(L-1) in
            [0, 1]: exp(b) is the fitted last-to-first ratio. NaN if some v_l <= 0.
        num_layers: L.
    """

    spearman: float
    log_slope: float
    num_layers: int


def depth_trend(values: Sequence[float] | np.ndarray) -> DepthTrend:
    """Depth trend of per-layer values given in depth order (see :class:`DepthTrend`).

    Raises:
        ValueError: fewer than two layers or a non-finite value.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < 2:
        raise ValueError(f"a depth trend needs at least 2 layers, got {v.size}")
    if not np.isfinite(v).all():
        raise ValueError("depth_trend got non-finite values")
    depth = np.arange(1, v.size + 1, dtype=np.float64)
    if np.ptp(v) == 0:
        rho = float("nan")
    else:
        rho = float(stats.spearmanr(depth, v).statistic)
    if (v > 0).all():
        u = (depth - 1) / (v.size - 1)
        slope = float(np.polyfit(u, np.log(v), 1)[0])
    else:
        slope = float("nan")
    return DepthTrend(spearman=rho, log_slope=slope, num_layers=int(v.size))


@dataclass
class NormProfile:
    """Per-layer gradient-norm statistics over steps ([000] Table 1).

    Arrays are aligned with ``layers`` (depth order). ``std`` uses ddof = 1 (NaN for one step);
    ``cv = std / mean``; ``early``/``late`` are the mean norms over the first/last ``early_steps`` /
    ``late_steps`` steps and ``ratio = early / late``. ``mean_trend`` and ``cv_trend`` are the depth
    trends of the mean norm and of the CV ([000]: norms fall and CV rises with depth).
    """

    layers: list[str]
    mean: np.ndarray
    std: np.ndarray
    cv: np.ndarray
    early: np.ndarray
    late: np.ndarray
    ratio: np.ndarray
    num_steps: int
    early_steps: int
    late_steps: int
    mean_trend: DepthTrend | None
    cv_trend: DepthTrend | None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer (for a table)."""
        return [
            {
                "layer": n, "mean": float(self.mean[i]), "std": float(self.std[i]), "cv": float(self.cv[i]),
                "early": float(self.early[i]), "late": float(self.late[i]), "ratio": float(self.ratio[i]),
            }
            for i, n in enumerate(self.layers)
        ]


def layer_norm_profile(
    norms: Mapping[str, Sequence[float] | np.ndarray] | GradientHistory,
    *,
    early: float = 0.2,
    late: float = 0.2,
) -> NormProfile:
    """Per-layer mean, std, CV, early/late means and ratio of gradient norms over steps ([000] Sec. 4.1).

    [000] does not define its early/late epoch windows; here they are the first ``early`` and last
    ``late`` fractions of the recorded steps (at least one step each).

    Args:
        norms: layer -> norms over steps, in depth order (e.g. ``GradientStdTracker.layer_norm`` or a
            :class:`GradientHistory`, whose ``norms`` are then used).
        early, late: window fractions in (0, 1].

    Raises:
        ValueError: no layers, layers with different step counts, bad window fractions.
    """
    if isinstance(norms, GradientHistory):
        norms = norms.norms
    if not norms:
        raise ValueError("layer_norm_profile needs at least one layer")
    if not (0 < early <= 1 and 0 < late <= 1):
        raise ValueError(f"early and late must be in (0, 1], got {early}, {late}")
    names = list(norms)
    table = [np.asarray(norms[n], dtype=np.float64).reshape(-1) for n in names]
    t = table[0].size
    if t == 0 or any(a.size != t for a in table):
        raise ValueError("every layer needs the same, non-zero number of steps")
    x = np.stack(table, axis=1)  # (T, L)
    mean = x.mean(0)
    std = x.std(0, ddof=1) if t > 1 else np.full(len(names), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = std / mean
        ke, kl = max(1, round(early * t)), max(1, round(late * t))
        e, l_ = x[:ke].mean(0), x[-kl:].mean(0)
        ratio = e / l_
    mean_trend = depth_trend(mean) if len(names) >= 2 and np.isfinite(mean).all() else None
    cv_trend = depth_trend(cv) if len(names) >= 2 and np.isfinite(cv).all() else None
    return NormProfile(names, mean, std, cv, e, l_, ratio, t, ke, kl, mean_trend, cv_trend)
