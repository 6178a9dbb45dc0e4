"""Flattening parameter dictionaries and the random parameter masks of thesis Sec. 1.6."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["flatten", "make_mask", "apply_mask", "random_subset"]


def random_subset(size: int, k: int, generator: torch.Generator) -> Tensor:
    """``k`` distinct indices of ``range(size)``, sorted, drawn with ``generator`` (one ``randperm``)."""
    return torch.randperm(size, generator=generator)[:k].sort().values


def flatten(tensors: dict[str, Tensor] | Sequence[Tensor], batch: bool = False) -> Tensor:
    """Concatenate tensors into one vector (``batch=False``) or a (B, P) matrix (``batch=True``)."""
    values = list(tensors.values()) if isinstance(tensors, dict) else list(tensors)
    if batch:
        return torch.cat([v.reshape(v.shape[0], -1) for v in values], dim=1)
    return torch.cat([v.reshape(-1) for v in values])


def make_mask(
    params: dict[str, Tensor], fraction: float, seed: int = 0
) -> dict[str, Tensor]:
    """Random mask of thesis Sec. 1.6: per layer, ceil(fraction * numel) >= 1 distinct indices.

    Each parameter tensor is sampled in proportion to its size, the count rounded up, so every layer
    has at least one entry. Drawn from a CPU ``torch.Generator`` seeded with ``seed`` (reproducible
    across devices); indices are sorted and returned on each parameter's device.

    Args:
        params: name -> parameter tensor.
        fraction: in (0, 1]; 1 keeps everything.
        seed: generator seed.

    Returns:
        name -> LongTensor of flat indices into that parameter.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(int(seed))
    mask = {}
    for name, p in params.items():
        n = p.numel()
        k = max(1, math.ceil(fraction * n))
        k = min(k, n)
        idx = random_subset(n, k, gen)
        mask[name] = idx.to(p.device)
    return mask


def apply_mask(
    grads: dict[str, Tensor], mask: dict[str, Tensor] | None, batch: bool = False
) -> Tensor:
    """Flatten ``grads`` keeping only masked entries (all when ``mask`` is None)."""
    if mask is None:
        return flatten(grads, batch=batch)
    if batch:
        return torch.cat([g.reshape(g.shape[0], -1)[:, mask[n]] for n, g in grads.items()], dim=1)
    return torch.cat([g.reshape(-1)[mask[n]] for n, g in grads.items()])
