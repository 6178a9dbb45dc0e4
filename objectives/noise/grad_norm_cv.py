"""``grad_norm_cv``: coefficient of variation of the per-layer minibatch-gradient norms ([000] Table 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import P000
from ._probe import probe_layers

__all__ = ["grad_norm_cv"]


@register_metric(
    "grad_norm_cv",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{P000}, Table 1 (CV = std/mean of per-layer gradient norms)",
)
def grad_norm_cv(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Mean over layers of the coefficient of variation of the layer's minibatch-gradient norm::

        CV_l = std_k ||gbar_{k,l}|| / mean_k ||gbar_{k,l}||,      value = mean_l CV_l

    over the gradients gbar_k of consecutive groups of ``group_size`` examples of the probe batch
    (the groups of :func:`~objectives.gradient_confusion`; std with ddof = 1), for every weight tensor
    l. [000] measures CV over training steps (Table 1: 0.18 for Conv1 rising to 0.50 for the
    classifier); at a fixed point the only source of variation is minibatch sampling, so this is the
    noise-to-signal ratio of the layer norms at the group size.

    Direction: minimize — [000] reads a high CV as the "more variable", less reproducible gradients
    of deep layers; it makes no trainability claim, so the direction is a hypothesis to validate.
    Cost: one per-example gradient pass (shared with the other per-example metrics). Masking (large
    models) restricts each layer to a random subset of its entries.

    Args:
        group_size: examples per group (at least 2 groups needed).
        weights_only: only tensors with ndim > 1 (default) or all trainable tensors.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.

    Raises:
        ValueError: fewer than 2 groups, no eligible layer, all-zero gradients.
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                  mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    groups = C.group_means(p.per_example_grads(), group_size).double()
    cvs = []
    for sl in probe_layers(p, masked=True, weights_only=weights_only).values():
        norms = groups[:, sl].norm(dim=1)
        mean = float(norms.mean())
        if mean > 0:
            cvs.append(float(norms.std()) / mean)
    if not cvs:
        raise ValueError("every layer has a zero gradient: grad_norm_cv undefined")
    return C.check_finite(float(np.mean(cvs)), "grad_norm_cv")
