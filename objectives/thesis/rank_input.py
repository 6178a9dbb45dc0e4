"""``rank_input``: relative gradient rank of the per-example input gradients."""

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
    "rank_input",
    direction="minimize",
    needs=("data", "labels", "input_grad"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.7 with h = h_X; Balduzzi et al., ICML 2017",
)
def _rank_input(
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
    """Relative gradient rank of the input gradients (``relative_gradient_rank(variant="input")``)."""
    return relative_gradient_rank(model, inputs, targets, loss_fn, variant="input", probe=probe,
                                  bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                                  chunk_size=chunk_size)
