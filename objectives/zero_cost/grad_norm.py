"""grad_norm: the summed Frobenius norms of the layers' loss gradients (Abdelfattah et al., ICLR 2021)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.probe import Probe
from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _required_layers
from ._passes import weight_grads

__all__ = ["grad_norm"]


@register_metric(
    "grad_norm",
    direction="maximize",
    needs=("data", "labels", "weight_grad"),
    cost="cheap",
    citation=_ABDELFATTAH,
)
def grad_norm(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    probe: Probe | None = None,
) -> float:
    """Sum over layers of the Frobenius norm of the loss gradient of each layer's weight.

    ``grad_norm = sum_l || dL/dW_l ||_F`` over Linear/conv weights ``W_l``, with ``L = loss_fn(model(x), t)``
    on the whole batch, as ``grad_norm`` in Abdelfattah et al. (ICLR 2021).

    Direction: maximize. Cost: one forward and one backward pass on the batch (not per example).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.
        probe: the :class:`~objectives.core.probe.Probe` of :func:`objectives.score`, through which the metrics of
            one call share their passes (:mod:`._passes`); the value is the same.

    Returns:
        The summed per-layer gradient norms.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = grad_norm(model, x, y)
    """
    layers = _required_layers(model, "grad_norm")
    _, grads = weight_grads(probe, model, inputs, targets, loss_fn, layers)
    return float(sum(g.detach().double().norm() for g in grads))
