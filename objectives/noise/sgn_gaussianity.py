"""``sgn_gaussianity``: Shapiro-Wilk Gaussianity percentage of the gradient noise ([003] Sec. 4)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.params import random_subset
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import P001, P003
from ._probe import sampled_per_example
from .gaussianity import sgn_gaussianity_profile

__all__ = ["sgn_gaussianity"]


@register_metric(
    "sgn_gaussianity",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{P003}, Sec. 4 (Shapiro-Wilk Gaussianity percentage); {P001}, Table 4",
)
def sgn_gaussianity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    batch_size: int | None = None,
    num_batches: int = 200,
    max_weights: int | None = 256,
    alpha: float = 0.05,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Percentage of weights whose stochastic-gradient noise passes Shapiro-Wilk at level alpha ([003]).

    From the per-example gradients g_i of the probe batch (N examples), ``num_batches`` = M
    minibatch gradients of ``batch_size`` = b examples are formed at the same weights,
    gbar_k = (1/b) sum_{i in S_k} g_i with S_k a random b-subset (independent across k); for every
    weight (at most ``max_weights`` random ones per layer) the M values are tested with Shapiro-Wilk
    (:func:`~objectives.noise.sgn_gaussianity_profile`)::

        value = 100 * #{weights with p > alpha} / #{non-dead weights}

    pooled over layers; dead weights (constant gradient) are excluded. A perfectly Gaussian SGN
    scores ~95. This is the SGN of sampling from the probe batch (a finite pool), and the M subsets
    overlap; for the SGN of the data distribution use :func:`~objectives.noise.gradient_history` on
    fresh batches.

    Direction: maximize — [003] (and [001] Table 4) find Gaussianity rising with batch size and
    lowest in the layers they single out as converging slowly to the CLT regime; neither paper links
    it to trained accuracy, so the direction is a hypothesis to validate. The value depends on M and
    b: compare networks at equal settings.
    Cost: the shared per-example pass, then an (M x N) x (N x P') product and M-sample SW tests.

    Args:
        batch_size: b (default N // 4, at least 1; must be < N).
        num_batches: M, the SW sample size (3..5000; [003] uses 200 and 600).
        max_weights: weights tested per layer (``None``: all).
        alpha: significance level.
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.

    Raises:
        ValueError: a bad batch size or sample count, no testable weight.
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                  mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    n = p.batch_size
    b = max(1, n // 4) if batch_size is None else int(batch_size)
    if not 1 <= b < n:
        raise ValueError(f"batch_size must be in 1..{n - 1} (below the probe batch of {n}), got {b}")
    sub, widths = sampled_per_example(p, weights_only=weights_only, max_weights=max_weights, salt=31)
    gen = p.generator(37)
    sel = torch.zeros(int(num_batches), n, dtype=torch.float64)
    for k in range(int(num_batches)):
        sel[k, random_subset(n, b, gen)] = 1.0 / b
    mb = sel @ sub  # (M, P'')
    split = dict(zip(widths, mb.split(list(widths.values()), dim=1)))
    prof = sgn_gaussianity_profile(split, alpha=alpha, batch_size=b)
    if prof.tested == 0:
        raise ValueError("no weight with a non-constant gradient to test: sgn_gaussianity undefined")
    return C.check_finite(prof.percent, "sgn_gaussianity")
