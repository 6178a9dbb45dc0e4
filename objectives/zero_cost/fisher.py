"""fisher: fan-in weighted channel Fisher information of the layer outputs (Theis et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.hooks import hooked
from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _Functional, _required_layers

__all__ = ["fisher"]


def _fan_in(module: nn.Module) -> int:
    """Number of weights per output channel (the reference broadcasts each channel's value over them)."""
    w = module.weight
    return w[0].numel() if not isinstance(module, nn.modules.conv._ConvTransposeNd) else w[:, 0].numel()


@register_metric(
    "fisher",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation=f"Theis et al. 2018, Turner et al. (BlockSwap) ICLR 2020; {_ABDELFATTAH}",
)
def fisher(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Channel-wise Fisher information of the layer outputs, summed as in the zero-cost-nas reference.

    For each call of a Linear/conv layer with output activation ``a`` (examples ``n``, channels ``k``,
    positions ``s``) and its loss gradient ``ga = dL/da``::

        Δ_k = 0.5 * mean_n ( sum_s a[n,k,s] * ga[n,k,s] )^2

    and ``fisher = sum_layers fan_in * sum_k Δ_k``, where ``fan_in`` (weights per output channel) comes from
    the reference broadcasting each channel's value to every weight of that channel before summing all
    weights (Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher pruning"; Turner et
    al., "BlockSwap", ICLR 2020; Abdelfattah et al., ICLR 2021). The activation is the layer's output before
    any normalization, captured by a forward hook (the reference swaps ``forward`` for this). A layer called
    several times contributes once per call (the reference accumulates per backward call as well). The
    channel axis is dim 1 for convolutions and the last dim for Linear (identical to the reference for 2-D
    Linear outputs; the reference would sum over channels for 3-D Linear outputs).

    Direction: maximize. Cost: one forward and one backward pass on the batch, plus one copy of every
    layer output (so that in-place ops downstream cannot alter the recorded activation).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.

    Returns:
        The summed, fan-in weighted channel Fisher information.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = fisher(model, x, y)
    """
    layers = _required_layers(model, "fisher")
    records: list[tuple[nn.Module, Tensor]] = []

    def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        records.append((module, out))
        return out.clone()  # downstream in-place ops (e.g. ReLU(inplace=True)) act on the copy

    with torch.enable_grad(), hooked((layer.module, hook) for layer in layers):
        fn = _Functional.of_weights(model, layers)
        loss = loss_fn(fn(inputs), targets)
    records = [(m, out) for m, out in records if out.requires_grad]
    acts = [out for _, out in records]
    act_grads = torch.autograd.grad(loss, acts, allow_unused=True) if acts else ()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for (module, act), ga in zip(records, act_grads):
        if ga is None:
            continue
        prod = act.detach().double() * ga.double()
        if isinstance(module, nn.Linear):
            g_nk = prod.sum(dim=tuple(range(1, prod.dim() - 1))) if prod.dim() > 2 else prod
        else:
            g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
        delta = 0.5 * g_nk.pow(2).mean(0)
        total = total + _fan_in(module) * delta.sum()
    return float(total)
