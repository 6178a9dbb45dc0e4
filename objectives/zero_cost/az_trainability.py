"""az_trainability: closeness to 1 of the block Jacobians' spectral norms (AZ-NAS, CVPR 2024)."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_metric
from ._az_nas import AZ_NAS, block_scores
from ._harness import LossFn

__all__ = ["az_trainability"]


@register_metric(
    "az_trainability",
    direction="maximize",
    needs=(),
    cost="cheap",
    citation=f"{AZ_NAS}, trainability component",
)
def az_trainability(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    seed: int = 0,
) -> float:
    """AZ-NAS trainability: the mean over blocks of ``2 - σ - 1/σ``, σ the block Jacobian's spectral norm.

    For each consecutive pair of features ``(f_{l-1}, f_l)`` (the stem's and each block's output, found by the
    rule of :mod:`objectives.zero_cost._az_nas`), a Rademacher vector ``g`` of ``f_l``'s shape is pulled back
    through the block, ``g' = (∂f_l/∂f_{l-1})^T g`` (one vector-Jacobian product); stacking one row per
    (example, position), ``M_l = G'^T G / P`` estimates the block's per-position Jacobian (``E[g g^T] = I``;
    a strided block first folds each ``s x s`` patch of ``g'`` into channels, the reference's
    ``PixelUnshuffle``). With ``σ_l`` the largest singular value of ``M_l``,

    ``s^T = mean_l (2 - σ_l - 1 / (σ_l + 1e-6))``

    (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024,
    trainability; ``compute_az_nas_score.py`` of cvlab-yonsei/AZ-NAS). Each term is at most ~0, reached when
    the block neither amplifies nor attenuates gradients (``σ = 1``). A block whose backward pass returns
    ``g`` unchanged (an exact identity, e.g. an NB201 cell reduced to one skip connection) gives ``-inf``, as
    in the reference; a block whose output does not depend on its input gives ``σ = 0``, i.e. ``2 - 1e6``.

    The vectors are drawn on the CPU from ``torch.Generator().manual_seed(seed)``, pairs from the last to the
    first (the reference's order), so the value is the same on every device. Evaluated in train mode (as
    the reference's ``model.train()``) on detached parameters and cloned buffers, with gradients enabled even
    inside a caller's ``torch.no_grad()``; no parameter's ``.grad`` is touched and each module's flag is
    restored. Published protocol: Gaussian inputs (batch 64), Kaiming-normal fan-in init; the metric scores
    whatever inputs it is given (``targets`` and ``loss_fn`` are ignored).

    Direction: maximize. Cost: one forward pass keeping the graph, about one backward pass in total (one
    vector-Jacobian product per block) and one SVD per block.

    Args:
        model: the network (not modified).
        inputs: a batch of floating inputs (e.g. standard Gaussian).
        targets: ignored.
        loss_fn: ignored.
        seed: seed of the Rademacher vectors.

    Returns:
        ``s^T`` (<= ~0), or ``-inf`` when a block is an exact identity.

    Raises:
        ValueError: non-finite inputs, or fewer than 2 features.

    Example::

        az_trainability(model, torch.randn(64, 3, 32, 32), None, seed=0)
    """
    del targets, loss_fn
    scores = block_scores(model, inputs, seed)
    if any(s == -math.inf for s in scores):
        return -math.inf
    return float(sum(scores) / len(scores))
