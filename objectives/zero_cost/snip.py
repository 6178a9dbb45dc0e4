"""snip: connection sensitivity ``sum |W ⊙ dL/dW|`` (Lee et al., ICLR 2019)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.probe import Probe
from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _required_layers
from ._passes import weight_grads

__all__ = ["snip"]


@register_metric(
    "snip",
    direction="maximize",
    needs=("data", "labels", "weight_grad"),
    cost="cheap",
    citation=f"Lee et al., SNIP, ICLR 2019; {_ABDELFATTAH}",
)
def snip(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    probe: Probe | None = None,
) -> float:
    """Connection sensitivity: ``sum |W ⊙ dL/dW|`` over all Linear/conv weights.

    The reference multiplies each weight by a mask of ones and takes ``|dL/dmask|``; since
    ``dL/dmask = W ⊙ dL/dW`` at mask = 1, this is computed directly from the weight gradient (Lee et al.,
    "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019; summed over weights as in
    Abdelfattah et al., ICLR 2021).

    Direction: maximize. Cost: one forward and one backward pass on the batch.

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.
        probe: the :class:`~objectives.core.probe.Probe` of :func:`objectives.score`, through which the metrics of
            one call share their passes (:mod:`._passes`); the value is the same.

    Returns:
        The summed saliencies.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = snip(model, x, y)
    """
    layers = _required_layers(model, "snip")
    weights, grads = weight_grads(probe, model, inputs, targets, loss_fn, layers)
    return float(sum((w.detach().double() * g.double()).abs().sum() for w, g in zip(weights, grads)))
