"""params: the number of trainable parameters, the size baseline of Abdelfattah et al. (ICLR 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn

__all__ = ["params"]


@register_metric(
    "params",
    direction="maximize",
    needs=(),
    cost="free",
    phases=("init",),
    citation=f"#params baseline of {_ABDELFATTAH}",
)
def params(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Number of trainable parameters, ``sum numel(θ)`` over parameters with ``requires_grad``.

    Shared parameters count once. The baseline every zero-cost paper compares with (Abdelfattah et al.,
    ICLR 2021): larger networks tend to reach higher accuracy.

    Direction: maximize. Cost: free (no forward pass).

    Args:
        model: the network (not modified).
        inputs: ignored.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        The parameter count, as a float.

    Example::

        n = params(torch.nn.Linear(3, 2), None, None)  # 8.0
    """
    del inputs, targets, loss_fn
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))
