"""flops: forward FLOPs per example, the compute baseline of Abdelfattah et al. (ICLR 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _Functional

__all__ = ["flops"]


@register_metric(
    "flops",
    direction="maximize",
    needs=(),
    cost="cheap",
    phases=("init",),
    citation=f"FLOPs baseline of {_ABDELFATTAH}",
)
def flops(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Forward FLOPs per example, counted by :class:`torch.utils.flop_counter.FlopCounterMode`.

    The batch's forward pass (without gradients) is counted and divided by the batch size: the counted
    operators (matrix products, convolutions, attention) are linear in the batch size, and a whole batch
    avoids batch-of-one errors in train-mode BatchNorm. FlopCounterMode counts a multiply-add as 2 FLOPs
    (``Linear(i, o)``: ``2 i o`` per example) and does not count elementwise operations, normalization or
    pooling. No extra dependency. ``targets`` and ``loss_fn`` are ignored.

    Direction: maximize (the FLOPs baseline of Abdelfattah et al., ICLR 2021). Cost: one forward pass.

    Args:
        model: the network (not modified; BatchNorm running statistics are updated on copies).
        inputs: a batch of inputs.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        FLOPs of one example's forward pass.

    Example::

        flops(torch.nn.Linear(3, 2), torch.randn(4, 3), None)  # 12.0 = 2 * 3 * 2
    """
    del targets, loss_fn
    counter = FlopCounterMode(display=False)
    if inputs is None:
        raise ValueError("flops counts one forward pass: give a batch of inputs (its values are not read)")
    with torch.no_grad(), counter:
        _Functional(model)(inputs.detach())
    return float(counter.get_total_flops()) / inputs.shape[0]
