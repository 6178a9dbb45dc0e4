"""synflow: log synaptic flow of the linearized network, data-free (Tanaka et al., NeurIPS 2020)."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.hooks import eval_mode, hooked
from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _Functional, _required_layers

_LOG = logging.getLogger(__name__)

__all__ = ["synflow"]


@register_metric(
    "synflow",
    direction="maximize",
    needs=(),
    cost="cheap",
    citation=f"Tanaka et al., SynFlow, NeurIPS 2020; {_ABDELFATTAH}",
)
def synflow(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Log of the synaptic flow ``sum |θ ⊙ dR/dθ|`` of the linearized network (data-free).

    Every floating parameter and buffer is replaced by its absolute value in float64; the network is fed a
    single all-ones input of the inputs' per-example shape, ``R = sum(model(1))``, and the score is
    ``log sum_W |W ⊙ dR/dW|`` over Linear/conv weights (Tanaka et al., "Pruning neural networks without any
    data by iteratively conserving synaptic flow", NeurIPS 2020; ``synflow`` in Abdelfattah et al., ICLR 2021,
    which reports the sum itself).

    BatchNorm is disabled as in the reference's ``synflow`` (``bn=False``): the output of every
    ``nn.modules.batchnorm._BatchNorm`` module is replaced by its input through a forward hook (an exact
    identity; the affine parameters are ignored too), and the model is evaluated in eval mode (dropout
    off; the previous mode of every module is restored). ``inputs`` only supply the shape and device;
    ``targets`` and ``loss_fn`` are ignored.

    The logarithm is reported because the sum grows exponentially with depth (and can overflow float32).
    A network with no path from input to output has sum 0: the score is then ``float("-inf")`` (logged as a
    warning), which ranks last under ``maximize``. A float64 overflow gives ``float("inf")`` (also logged).

    Direction: maximize. Cost: one forward and one backward pass on one example in float64.

    Args:
        model: the network (not modified).
        inputs: a batch; only ``inputs.shape[1:]`` and ``inputs.device`` are used.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        ``log(sum |θ ⊙ dR/dθ|)``; ``-inf`` when the sum is 0.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = synflow(model, torch.empty(1, 3, 32, 32), None)  # only the shape is used
    """
    del targets, loss_fn
    layers = _required_layers(model, "synflow")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def bypass(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        return args[0]

    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    with torch.enable_grad(), eval_mode(model), hooked((m, bypass) for m in bns):
        fn = _Functional.of_weights(model, layers, transform=lambda t: t.abs().double())
        r = fn(ones).sum()
        grads = torch.autograd.grad(r, fn.leaves, allow_unused=True)
    total = sum(float((w.detach() * g).abs().sum()) for w, g in zip(fn.leaves, grads) if g is not None)
    if total == 0.0:
        _LOG.warning("synflow: the synaptic flow is 0 (no path from input to output); returning -inf")
        return float("-inf")
    if math.isinf(total):
        _LOG.warning("synflow: the synaptic flow overflows float64; returning inf")
        return float("inf")
    return math.log(total)
