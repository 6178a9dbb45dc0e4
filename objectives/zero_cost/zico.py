"""zico: summed log inverse coefficient of variation of chunk gradients (Li et al., ICLR 2023)."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_metric
from ._harness import LossFn, _required_layers, _weight_grads

_LOG = logging.getLogger(__name__)

__all__ = ["zico"]


@register_metric(
    "zico",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation="Li et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients, ICLR 2023",
)
def zico(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    num_batches: int = 2,
) -> float:
    """ZiCo: ``sum_l log( sum_θ∈W_l mean_b|G_b(θ)| / std_b(G_b(θ)) )`` over Linear/conv weights ``W_l``.

    The batch is split into ``num_batches`` consecutive chunks (``torch.tensor_split``); ``G_b`` is the loss
    gradient of chunk ``b`` alone (a fresh gradient per chunk, i.e. zero-grad in between); mean and
    population standard deviation (``ddof=0``, as ``np.std``) are taken over the chunks, per weight
    (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", ICLR 2023,
    reference ``ZeroShotProxy/compute_zico.py``). Statistics in float64.

    Zero standard deviation, as in the reference: weights whose gradient is identical in every chunk
    (typically 0, e.g. behind a dead path) are left out of their layer's sum, and a layer where that leaves
    nothing (sum 0) is skipped. Unlike the reference, skipping is not silent: the skipped layers are logged
    (warning), and if *every* layer is skipped the score is ``float("-inf")`` (no gradient signal at all;
    the reference would return 0, which can rank above networks with signal).

    Direction: maximize. Cost: ``num_batches`` forward/backward passes over chunks that together make up
    the batch (about one training step).

    Args:
        model: the network (not modified).
        inputs: a batch of at least ``num_batches`` inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``, applied to each chunk.
        num_batches: number of chunks (>= 2; the paper uses 2 batches).

    Returns:
        The ZiCo score, or ``-inf`` when every layer is skipped.

    Raises:
        ValueError: ``num_batches < 2``, fewer examples than chunks, or no Linear/conv layer.

    Example::

        score = zico(model, x, y, num_batches=2)
    """
    if num_batches < 2:
        raise ValueError(f"zico needs num_batches >= 2, got {num_batches}")
    if inputs.shape[0] < num_batches:
        raise ValueError(f"zico needs at least num_batches={num_batches} examples, got {inputs.shape[0]}")
    layers = _required_layers(model, "zico")
    per_layer: list[list[Tensor]] = [[] for _ in layers]
    for xb, tb in zip(inputs.tensor_split(num_batches), targets.tensor_split(num_batches)):
        _, grads = _weight_grads(model, xb, tb, loss_fn, layers)
        for acc, g in zip(per_layer, grads):
            acc.append(g.detach().double().reshape(-1))
    score = 0.0
    skipped = []
    for layer, gs in zip(layers, per_layer):
        g = torch.stack(gs)
        std = g.std(dim=0, correction=0)
        keep = std > 0
        ratio_sum = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if ratio_sum == 0.0:
            skipped.append(layer.name)
            continue
        score += math.log(ratio_sum)
    if skipped:
        _LOG.warning(
            "zico: skipped %d of %d layers with zero gradient std: %s", len(skipped), len(layers), skipped
        )
    if len(skipped) == len(layers):
        return float("-inf")
    return score
