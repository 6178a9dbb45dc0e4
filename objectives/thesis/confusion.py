"""``confusion``: gradient confusion between group-mean gradients (Sankararaman et al. 2020)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS, _group_grads

__all__ = ["gradient_confusion"]


@register_metric(
    "confusion",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.11 (eq. 3.24); Sankararaman et al., ICML 2020",
)
def gradient_confusion(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient confusion (thesis Def. 3.11, eq. 3.24; Sankararaman et al. 2020)::

        C = -min( min_{i != j} cos(gbar_i, gbar_j), 0 )

    over the batch gradients gbar_i of consecutive groups of ``group_size`` examples of the probe
    batch (default 8 groups of 8 for a batch of 64; all pairs). 0 when no two groups' gradients point
    apart; up to 1. Lower is better. Cost: one per-example gradient pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.confusion(_group_grads(p, group_size))
