"""az_progressivity: smallest expressivity gain between consecutive stages (AZ-NAS, CVPR 2024)."""

from __future__ import annotations

import itertools
import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.probe import Probe
from ..registry import register_metric
from ._az_nas import AZ_NAS, stage_entropies
from ._harness import LossFn

__all__ = ["az_progressivity"]


@register_metric(
    "az_progressivity",
    direction="maximize",
    needs=("stage_features",),
    cost="cheap",
    citation=f"{AZ_NAS}, progressivity component",
)
def az_progressivity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    probe: Probe | None = None,
) -> float:
    """AZ-NAS progressivity: the minimum increase of the feature entropy from one stage to the next.

    With ``H_l`` the spectral entropy of feature ``l`` (as in :func:`az_expressivity`: the entropy of the
    normalized eigenvalues of the channel covariance of the stem's and each block's output, found by the rule
    of :mod:`objectives.zero_cost._az_nas`),

    ``s^P = min_{l >= 1} (H_l - H_{l-1})``

    (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
    progressivity; ``compute_az_nas_score.py`` of cvlab-yonsei/AZ-NAS). A network whose every block adds
    expressivity scores > 0; one block that collapses the features makes it negative. A constant feature makes
    the score ``-inf`` (the reference's NaN).

    Evaluated in train mode (as the reference's ``model.train()``) on detached parameters and cloned
    buffers; each module's flag is restored. Published protocol: Gaussian inputs (batch 64), Kaiming-normal
    fan-in init; the metric scores whatever inputs it is given (``targets`` and ``loss_fn`` are ignored).

    Direction: maximize. Cost: one forward pass without gradients plus one eigendecomposition per feature.

    Args:
        model: the network (not modified).
        inputs: a batch of floating inputs (e.g. standard Gaussian).
        targets: ignored.
        loss_fn: ignored.
        probe: the :class:`~objectives.core.probe.Probe` of :func:`objectives.score`, through which the metrics of
            one call share their passes (:mod:`._passes`); the value is the same.

    Returns:
        ``s^P``, or ``-inf`` when a feature is constant.

    Raises:
        ValueError: non-finite inputs, or fewer than 2 features.

    Example::

        az_progressivity(model, torch.randn(64, 3, 32, 32), None)
    """
    del targets, loss_fn
    entropies = stage_entropies(model, inputs, probe)
    if len(entropies) < 2:
        raise ValueError(
            f"az_progressivity needs at least 2 features (blocks); the model has {len(entropies)}")
    if any(e == -math.inf for e in entropies):
        return -math.inf
    return float(min(b - a for a, b in itertools.pairwise(entropies)))
