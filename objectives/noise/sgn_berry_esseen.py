"""``sgn_berry_esseen``: Berry-Esseen bound on the non-Gaussianity of the gradient noise ([003] Thm. 1)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import P003
from ._probe import sampled_per_example
from .gaussianity import BERRY_ESSEEN_A0, _standardized_moments

__all__ = ["sgn_berry_esseen"]


@register_metric(
    "sgn_berry_esseen",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{P003}, Theorem 1 (eq. 13) with the kurtosis bound (eqs. 19-21)",
)
def sgn_berry_esseen(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    batch_size: int | None = None,
    quantile: float = 0.5,
    max_weights: int | None = 4096,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Kurtosis-based Berry-Esseen bound on the non-Gaussianity of the minibatch gradient ([003])::

        bound_j = A_0 * sqrt(E[z_j^4]) / sqrt(B),    z_j = (g_{i,j} - mean_i g_{i,j}) / sigma_j

    per weight j over the per-example gradients g_i of the probe batch (the i.i.d. summands of a
    minibatch gradient); sqrt(E z^4) >= E|z|^3 = beta/sigma^3 (eq. 21), A_0 = 0.4748 (Shevtsova
    2011; [003] leaves it open). The value is the ``quantile`` (median by default) of bound_j over
    the non-dead weights (at most ``max_weights`` random ones per layer), pooled over layers: an
    upper bound on sup_x |P(standardized gbar_j <= x) - Phi(x)| for a typical weight.

    Direction: minimize — a smaller bound means the SGN reaches the Gaussian (CLT) regime at
    smaller batches; [003] ties the slow-converging AlexNet layers to larger moments. No
    trainability claim is made in the paper. Estimated from N examples, sample fourth moments are
    noisy for small N (and biased low for heavy tails).
    Cost: the shared per-example pass plus O(N P') moments.

    Args:
        batch_size: B of the bound (default: the probe batch size).
        quantile: which quantile over weights (0.5).
        max_weights: weights per layer (``None``: all).
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.

    Raises:
        ValueError: fewer than 4 examples, no non-dead weight, a bad quantile.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                  mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    if p.batch_size < 4:
        raise ValueError(f"need at least 4 examples for fourth moments, got {p.batch_size}")
    b = p.batch_size if batch_size is None else int(batch_size)
    if b < 1:
        raise ValueError(f"batch_size must be >= 1, got {b}")
    x, _ = sampled_per_example(p, weights_only=weights_only, max_weights=max_weights, salt=41)
    _, kr, _ = _standardized_moments(x.numpy(), third=False)  # the bound reads the fourth moment only
    if kr.size == 0:
        raise ValueError("every weight has a constant per-example gradient: sgn_berry_esseen undefined")
    value = BERRY_ESSEEN_A0 * float(np.quantile(kr, quantile)) / math.sqrt(b)
    return C.check_finite(value, "sgn_berry_esseen")
