"""``coherence``: gradient coherence of the per-example gradients (Chatterjee & Zielinski 2020)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS

__all__ = ["gradient_coherence"]


@register_metric(
    "coherence",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.13 (eq. 3.26); Chatterjee & Zielinski 2020",
)
def gradient_coherence(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient coherence (thesis Def. 3.13, eq. 3.26; Chatterjee & Zielinski 2020)::

        H_b = sum_i <gbar, g_i> / sum_i ||g_i||^2,   gbar = mean_i g_i

    over the examples of the batch. 1 for identical per-example gradients, 1/b for orthogonal ones of
    equal norm. Higher means more coherent. Cost: one per-example pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    g = p.per_example_grads()
    return C.coherence(g.mean(0), g)
