"""``weight_diversity``: gradient diversity of the perturbed batch gradients."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe
from ..registry import register_metric
from ._common import _THESIS, _perturbed

__all__ = ["weight_gradient_diversity"]


@register_metric(
    "weight_diversity",
    direction="minimize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.2)",
)
def weight_gradient_diversity(
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
    """Weight-gradient diversity D_n (thesis Def. 4.1, eq. 4.2)::

        D_n = sum_k ||gbar(w + omega_k)||^2 / ||sum_k gbar(w + omega_k)||^2

    1/n when the perturbed gradients coincide (perfect step-consistency), larger when they differ.
    Lower is better. Same options and cost as :func:`step_consistency`.
    """
    _, grads, _ = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                             bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                             chunk_size=chunk_size)
    return C.diversity(grads)
