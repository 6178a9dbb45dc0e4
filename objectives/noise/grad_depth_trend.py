"""``grad_depth_trend``: depth trend of the per-layer batch-gradient norms ([000] Table 1, Fig. 1)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import P000
from ._probe import probe_layers
from .norms import depth_trend

__all__ = ["grad_depth_trend"]


@register_metric(
    "grad_depth_trend",
    direction="minimize",
    needs=("data", "labels", "batch_grad"),
    cost="cheap",
    citation=f"{P000}, Table 1 / Fig. 1 (norm order Conv1 > ... > FC2)",
)
def grad_depth_trend(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    trend: str = "spearman",
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Depth trend of the per-layer batch-gradient norm ||gbar_l|| (layers in forward order).

    ``trend="spearman"`` (default): Spearman rho(l, ||gbar_l||) over layers l = 1..L, in [-1, 1]
    (-1: norms strictly decrease with depth, [000]'s Conv1 > ... > FC2). ``trend="log_slope"``: OLS
    slope b of ln ||gbar_l|| on normalized depth u = (l-1)/(L-1), so exp(b) is the fitted ratio of
    the last layer's norm to the first's. Depth is the order in which the layers first run
    (:func:`~objectives.noise.layer_order`); the full (unmasked) gradient of the probe batch is used,
    in the probe's BN mode. Raw norms grow with layer size, so the trend mixes width and depth, as in [000].

    Direction: minimize — [000] finds norms falling with depth in nets that train; norms that
    *grow* with depth are the signature of vanishing gradients at the input. (Very negative values
    can also mean exploding gradients at the input.) A hypothesis to validate.
    Cost: one batch gradient and one forward of one example.

    Args:
        trend: ``"spearman"`` or ``"log_slope"``.
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.

    Raises:
        ValueError: fewer than 2 layers, equal norms everywhere, a bad ``trend``.
    """
    if trend not in ("spearman", "log_slope"):
        raise ValueError(f"trend must be 'spearman' or 'log_slope', got {trend!r}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                  mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    g = p.batch_grad().double()
    layers = probe_layers(p, masked=False, weights_only=weights_only, ordered=True)
    norms = [float(g[sl].norm()) for sl in layers.values()]
    value = getattr(depth_trend(norms), trend)
    return C.check_finite(value, "grad_depth_trend")
