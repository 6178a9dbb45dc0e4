"""Vector formulas shared by the metrics (cosines, diversity, coherence, confusion). Pure tensor math."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cosine", "diversity", "coherence", "min_pairwise_cosine", "confusion", "condition_ratio", "group_means",
           "check_finite"]


def cosine(a: Tensor, b: Tensor) -> float:
    """cos(a, b) = <a, b> / (||a|| ||b||), in float64; raises on a zero vector."""
    a64, b64 = a.double(), b.double()
    den = a64.norm() * b64.norm()
    if den == 0:
        raise ValueError("cosine similarity of a zero vector is undefined")
    return float(a64 @ b64 / den)


def diversity(vectors: Tensor) -> float:
    """Gradient diversity sum_i ||v_i||^2 / ||sum_i v_i||^2 of the rows of ``vectors`` (Yin et al.).

    n identical rows give 1/n; n orthogonal rows of equal norm give 1.
    """
    v = vectors.double()
    den = v.sum(0).pow(2).sum()
    if den == 0:
        return float("inf")
    return float(v.pow(2).sum() / den)


def coherence(reference: Tensor, vectors: Tensor) -> float:
    """Coherence sum_i <reference, v_i> / sum_i ||v_i||^2 (Chatterjee & Zielinski; thesis eq. 3.26)."""
    v = vectors.double()
    den = v.pow(2).sum()
    if den == 0:
        raise ValueError("coherence of all-zero gradients is undefined")
    return float((v @ reference.double()).sum() / den)


def min_pairwise_cosine(vectors: Tensor) -> float:
    """min over pairs i != j of cos(v_i, v_j) for the rows of ``vectors`` (n >= 2)."""
    v = vectors.double()
    if v.shape[0] < 2:
        raise ValueError("need at least two vectors for pairwise cosines")
    norms = v.norm(dim=1)
    if (norms == 0).any():
        raise ValueError("cosine similarity of a zero vector is undefined")
    u = v / norms[:, None]
    cos = u @ u.T
    cos.fill_diagonal_(float("inf"))
    return float(cos.min())


def confusion(vectors: Tensor) -> float:
    """Gradient confusion -min(min_{i != j} cos(v_i, v_j), 0) (thesis Def. 3.11, eq. 3.24)."""
    return max(-min_pairwise_cosine(vectors), 0.0)


def condition_ratio(delta: Tensor, base: Tensor, point_norm: float, step_norm: float) -> float:
    """||delta|| * ||point|| / (||step|| * ||base||): one term of a relative condition number."""
    den = step_norm * float(base.double().norm())
    if den == 0:
        raise ValueError("relative condition number undefined: zero gradient or zero step")
    return float(delta.double().norm()) * point_norm / den


def group_means(per_example: Tensor, group_size: int) -> Tensor:
    """Split the rows into consecutive groups of ``group_size`` (the remainder is dropped)
    and return each group's mean: the batch gradient of each group."""
    b = per_example.shape[0]
    n = b // int(group_size)
    if group_size < 1 or n < 2:
        raise ValueError(
            f"group_size={group_size} leaves {n} group(s) in a batch of {b}: need at least 2 groups "
            "(use a larger batch or a smaller group_size)"
        )
    return per_example[: n * group_size].reshape(n, group_size, -1).mean(1)


def check_finite(value: float, name: str) -> float:
    if not torch.isfinite(torch.tensor(value)):
        raise ValueError(f"{name} is not finite ({value})")
    return float(value)
