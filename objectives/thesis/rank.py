"""Relative gradient rank R(A) / R(Y) of per-example gradients (thesis Def. 3.7; Balduzzi et al. 2017)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core.linalg import gaussian_stable_rank, stable_rank
from ..core.probe import Probe, get_probe

__all__ = ["relative_gradient_rank"]


def relative_gradient_rank(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    variant: str = "input",
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Relative gradient rank R(A) / R(Y) (thesis Def. 3.7, eqs. 3.18-3.21; Balduzzi et al. 2017).

    A has the per-example gradients as columns — input gradients h_X (``variant="input"``, as in
    Balduzzi et al.) or weight gradients h_W (``variant="weight"``) — R is the stable rank
    ||A||_F^2 / ||A||_2^2 and Y a standard Gaussian matrix of the same shape (R(Y) cached per shape).
    Near 1: unstructured, white-noise gradients (shattered); near 0: correlated, informative ones.
    Lower is better; the thesis found input rank > 0.15 at initialization mostly fails to train.
    Cost: one backward (input) or one per-example pass (weight), plus a B x B eigendecomposition.
    """
    if variant not in ("input", "weight"):
        raise ValueError(f"variant must be 'input' or 'weight', got {variant!r}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    a = p.input_grads() if variant == "input" else p.per_example_grads()
    if a.shape[0] < 2:
        raise ValueError("relative gradient rank needs a batch of at least 2 examples")
    return stable_rank(a) / gaussian_stable_rank(a.shape[0], a.shape[1])
