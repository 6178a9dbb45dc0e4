"""[000] Cross-seed directional alignment of layer gradients.

Roy & Roy report the mean pairwise cosine between the gradients of independently initialized copies of a
network (Table 2), with a bootstrap 95 % CI and a chance baseline. :func:`chance_cosine` is that
baseline in closed form; :func:`cross_seed_alignment` measures the alignment per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .collect import Batch, _eligible_layers, layer_gradients

__all__ = ["chance_cosine", "AlignmentResult", "cross_seed_alignment"]


def chance_cosine(dim: int, exact: bool = True) -> float:
    """E|cos(u, v)| of two independent isotropic random vectors in R^dim (the chance level of [000]).

    Exact: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)); for large d ~= sqrt(2 / (pi d)) (``exact=False``).
    [000]'s printed baseline (0.006-0.012) does not match this formula for its layer sizes.
    """
    d = int(dim)
    if d < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not exact:
        return math.sqrt(2.0 / (math.pi * d))
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


@dataclass
class AlignmentResult:
    """Cross-seed directional alignment of one layer ([000] Table 2).

    Attributes:
        layer: parameter name; dim: its size.
        mean_cosine: mean over seed pairs i < j (and over batches) of cos(g_i, g_j).
        ci_low, ci_high: bootstrap percentile interval of ``mean_cosine`` (seeds resampled).
        mean_abs_cosine: the same with |cos|.
        chance: E|cos| of random vectors of this dimension (:func:`chance_cosine`).
        num_seeds, num_batches: S and the number of shared batches.
        cosines: (S, S) matrix of batch-averaged cosines (diagonal 1).
    """

    layer: str
    dim: int
    mean_cosine: float
    ci_low: float
    ci_high: float
    mean_abs_cosine: float
    chance: float
    num_seeds: int
    num_batches: int
    cosines: np.ndarray = field(repr=False)

    @property
    def excess(self) -> float:
        """mean |cos| above chance."""
        return self.mean_abs_cosine - self.chance


def _offdiag_mean(c: np.ndarray, idx: np.ndarray) -> float:
    sub = c[np.ix_(idx, idx)]
    distinct = idx[:, None] != idx[None, :]
    upper = np.triu(np.ones_like(distinct), k=1) & distinct
    return float(sub[upper].mean()) if upper.any() else float("nan")


def cross_seed_alignment(
    make_model: Callable[[int], nn.Module],
    batches: Sequence[Batch],
    loss_fn: Any = F.cross_entropy,
    *,
    seeds: int | Sequence[int] = 5,
    weights_only: bool = True,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, AlignmentResult]:
    """Mean pairwise cosine of each layer's minibatch gradient across independently initialized copies.

    [000] Sec. 4.2: S copies ``make_model(s)`` (same architecture, different initialization seeds)
    evaluated on the *same* batches at their initial weights; for layer l and batch b,
    cos(g_{l,i,b}, g_{l,j,b}) for every seed pair i < j; averaged over batches, then over pairs. The
    CI resamples *seeds* with replacement (``num_bootstrap`` times; pairs of a seed with itself are
    skipped) — pairs sharing a seed are not independent, so resampling the S(S-1)/2 pair values as
    [000] seems to do would understate the interval. To track alignment during training, call this
    on copies trained to the same step.

    [000] reports cosines near 0.9 across seeds; with permutation-symmetric hidden units, independent
    initializations should give cosines near chance except where the gradient is pinned by the data
    (first layer: input statistics; last layer: labels). Compare with ``chance``.

    Args:
        make_model: seed -> model (e.g. ``lambda s: space.build({**config, "seed": s}, ...)``).
        batches: shared ``(inputs, targets)`` batches.
        loss_fn: mean-reduced loss.
        seeds: number of seeds S (0..S-1) or the seeds themselves (S >= 2).
        weights_only: only tensors with ``ndim > 1``.
        num_bootstrap: bootstrap resamples (0: no interval, NaN bounds).
        confidence: interval level (0.95).
        seed: seed of the bootstrap.

    Returns:
        layer name -> :class:`AlignmentResult`, in depth order of the first model.

    Raises:
        ValueError: fewer than two seeds, no batch, models with different layers, a zero gradient.
    """
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seed_list) < 2:
        raise ValueError(f"cross-seed alignment needs at least 2 seeds, got {len(seed_list)}")
    batches = list(batches)
    if not batches:
        raise ValueError("cross_seed_alignment needs at least one batch")
    models = [make_model(s) for s in seed_list]
    params = dict(models[0].named_parameters())
    names = _eligible_layers(models[0], batches[0][0], weights_only)
    for m in models[1:]:
        other = dict(m.named_parameters())
        if [n for n in names if n not in other or other[n].shape != params[n].shape]:
            raise ValueError("make_model returned models with different layers for different seeds")
    s_count = len(models)
    acc = {n: np.zeros((s_count, s_count)) for n in names}
    for x, y in batches:
        grads = [layer_gradients(m, x, y, loss_fn, names=names) for m in models]
        for n in names:
            g = torch.stack([gr[n] for gr in grads]).double()
            norms = g.norm(dim=1)
            if (norms == 0).any():
                raise ValueError(f"layer {n!r} has a zero gradient for some seed: cosine undefined")
            u = g / norms[:, None]
            acc[n] += (u @ u.T).cpu().numpy()
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    out: dict[str, AlignmentResult] = {}
    all_idx = np.arange(s_count)
    boots = [rng.integers(0, s_count, s_count) for _ in range(int(num_bootstrap))]
    for n in names:
        c = acc[n] / len(batches)
        mean = _offdiag_mean(c, all_idx)
        mean_abs = _offdiag_mean(np.abs(c), all_idx)
        values = np.array([_offdiag_mean(c, b) for b in boots])
        values = values[np.isfinite(values)]
        lo, hi = (np.quantile(values, [alpha, 1 - alpha]) if values.size else (np.nan, np.nan))
        d = int(params[n].numel())
        out[n] = AlignmentResult(n, d, mean, float(lo), float(hi), mean_abs, chance_cosine(d),
                                 s_count, len(batches), c)
    return out
