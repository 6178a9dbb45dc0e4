"""``weight_coherence``: coherence of the perturbed batch gradients with the batch gradient."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe
from ..registry import register_metric
from ._common import _THESIS, _perturbed

__all__ = ["weight_gradient_coherence"]


@register_metric(
    "weight_coherence",
    direction="maximize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.3)",
)
def weight_gradient_coherence(
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
    """Weight-gradient coherence H_n (thesis Def. 4.1, eq. 4.3)::

        H_n = sum_k <gbar(w), gbar(w + omega_k)> / sum_k ||gbar(w + omega_k)||^2

    1 when the perturbed gradients equal gbar(w). Higher is better (closer to 1). Same options and
    cost as :func:`step_consistency`.
    """
    _, grads, g0 = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                              bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                              chunk_size=chunk_size)
    return C.coherence(g0, grads)
