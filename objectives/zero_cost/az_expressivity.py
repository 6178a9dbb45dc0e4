"""az_expressivity: summed spectral entropy of the stage features (AZ-NAS expressivity, CVPR 2024)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.probe import Probe
from ..registry import register_metric
from ._az_nas import AZ_NAS, stage_entropies
from ._harness import LossFn

__all__ = ["az_expressivity"]


@register_metric(
    "az_expressivity",
    direction="maximize",
    needs=("stage_features",),
    cost="cheap",
    citation=f"{AZ_NAS}, expressivity component",
)
def az_expressivity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    probe: Probe | None = None,
) -> float:
    """AZ-NAS expressivity: the summed entropy of the normalized covariance spectrum of each stage feature.

    For every feature ``f_l`` of the model's feature sequence (the stem and each block, found by the rule of
    :mod:`objectives.zero_cost._az_nas`), the rows ``x`` = (example, position) and columns = channels give
    ``Σ_l = Cov(x)``; with ``p_l = λ(Σ_l) / tr Σ_l``,

    ``s^E = Σ_l H(p_l)``, ``H(p) = -Σ_k p_k log p_k``

    (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
    expressivity; ``compute_az_nas_score.py`` of cvlab-yonsei/AZ-NAS). Each term lies in ``[0, log C_l]``:
    ``log C_l`` for isotropic features (every direction used equally), 0 for features of rank one. A constant
    feature (zero variance, e.g. after a cell of ``none`` ops) makes the score ``-inf`` (the reference's NaN).

    Evaluated in train mode (BatchNorm on batch statistics, as the reference's ``model.train()``) on
    detached parameters and cloned buffers; each module's train/eval flag is restored. The published
    protocol feeds Gaussian inputs (batch 64) to a Kaiming-normal (fan-in) initialized network; the metric
    scores whatever inputs it is given (their values matter, ``targets`` and ``loss_fn`` are ignored).

    Direction: maximize. Cost: one forward pass without gradients plus one ``C x C`` eigendecomposition per
    feature.

    Args:
        model: the network (not modified).
        inputs: a batch of floating inputs (e.g. standard Gaussian).
        targets: ignored.
        loss_fn: ignored.
        probe: the :class:`~objectives.core.probe.Probe` of :func:`objectives.score`, through which the metrics of
            one call share their passes (:mod:`._passes`); the value is the same.

    Returns:
        ``s^E``, or ``-inf`` when a feature is constant.

    Raises:
        ValueError: non-finite inputs, or a model in which no feature is found.

    Example::

        x = torch.randn(64, 3, 32, 32)
        az_expressivity(model, x, None)  # NB201: a sum over 18 features (the stem and 17 cells)
    """
    del targets, loss_fn
    entropies = stage_entropies(model, inputs, probe)
    if not entropies:
        raise ValueError("az_expressivity found no feature (block or layer group) in the model")
    if any(e == -math.inf for e in entropies):
        return -math.inf
    return float(sum(entropies))
