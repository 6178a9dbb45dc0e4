"""grasp: gradient signal preservation ``-sum θ ⊙ Hg`` (Wang et al., ICLR 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _required_layers, _weight_grads

__all__ = ["grasp"]


@register_metric(
    "grasp",
    direction="maximize",
    needs=("data", "labels"),
    cost="moderate",
    citation=f"Wang et al., GraSP, ICLR 2020; sign as in {_ABDELFATTAH}",
)
def grasp(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Gradient signal preservation: ``sum -θ ⊙ (H g)`` over all Linear/conv weights θ.

    ``g = dL/dθ`` (treated as a constant) and ``H g = d(g · dL/dθ)/dθ`` is the Hessian-gradient product,
    obtained by double backward (Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient
    Flow", ICLR 2020). Sign convention of the zero-cost-nas reference: GraSP prunes the weights with the
    *smallest* ``θ ⊙ Hg``; Abdelfattah et al. negate it so that larger means "keep" and found the negated
    sum to correlate positively with accuracy, hence ``-θ ⊙ Hg`` and direction maximize. Temperature 1.

    .. note::
        The reference runs two forward passes (one for ``g``, one for the double backward); this uses one
        forward pass for both, which gives the same value for any deterministic network (it differs only
        under dropout in train mode).

    Direction: maximize. Cost: one forward pass, one backward with ``create_graph`` and one double backward
    (about 3 training steps).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; must be twice differentiable.

    Returns:
        ``-sum θ ⊙ Hg``.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = grasp(model, x, y)
    """
    layers = _required_layers(model, "grasp")
    with torch.enable_grad():
        weights, grads = _weight_grads(model, inputs, targets, loss_fn, layers, create_graph=True)
        z = sum((g.detach() * g).sum() for g in grads if g.requires_grad)  # g . dL/dθ, first g constant
        if not isinstance(z, Tensor):  # no weight influences the loss: Hg = 0
            return 0.0
        hg = torch.autograd.grad(z, weights, allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for w, h in zip(weights, hg):
        if h is not None:
            total = total - (w.detach().double() * h.double()).sum()
    return float(total)
