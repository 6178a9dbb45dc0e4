"""``diversity``: gradient diversity of group-mean gradients (Yin et al. 2018)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS, _group_grads

__all__ = ["gradient_diversity"]


@register_metric(
    "diversity",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.12 (eq. 3.25); Yin et al., AISTATS 2018",
)
def gradient_diversity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient diversity (thesis Def. 3.12, eq. 3.25; Yin et al. 2018)::

        D_n = sum_i ||gbar_i||^2 / ||sum_i gbar_i||^2

    over the n group gradients gbar_i (groups of ``group_size`` examples). 1/n for identical
    gradients, 1 for orthogonal ones of equal norm. Lower is better (thesis Fig. 3.17). Depends on n:
    compare networks at the same batch and group size. Cost: one per-example pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.diversity(_group_grads(p, group_size))
