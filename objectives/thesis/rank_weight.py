"""``rank_weight``: relative gradient rank of the per-example weight gradients."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.probe import Probe
from ..registry import register_metric
from ._common import _THESIS
from .rank import relative_gradient_rank

__all__ = []


@register_metric(
    "rank_weight",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.7 with h = h_W",
)
def _rank_weight(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Relative gradient rank of the weight gradients (``relative_gradient_rank(variant="weight")``)."""
    return relative_gradient_rank(model, inputs, targets, loss_fn, variant="weight", probe=probe,
                                  bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                                  chunk_size=chunk_size)
