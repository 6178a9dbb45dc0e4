"""``min_cosine``: the smallest cosine between the batch gradient and its perturbed copies."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe
from ..registry import register_metric
from ._common import _THESIS, _perturbed

__all__ = ["min_gradient_cosine"]


@register_metric(
    "min_cosine",
    direction="maximize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.1)",
)
def min_gradient_cosine(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    eta: float = 1e-3,
    directions: str = "mean",
    num_directions: int | None = None,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Minimum weight-gradient cosine similarity C* (thesis Def. 4.1, eq. 4.1)::

        C* = min_k cos(gbar(w + omega_k), gbar(w))

    The step-consistency adaptation of gradient confusion (without its outer clamp at 0). Higher is
    better (1 = the gradient direction does not change under a small step). Shares the perturbed
    gradients of :func:`step_consistency` (same options, same cost, free when scored together).
    """
    _, grads, g0 = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                              bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                              chunk_size=chunk_size)
    return min(C.cosine(gk, g0) for gk in grads)
