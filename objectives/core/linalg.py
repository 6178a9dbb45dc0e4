"""Stable rank and its Gaussian reference (thesis Def. 3.6-3.7), computed from B x B Gram matrices."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["stable_rank", "gaussian_stable_rank", "wishart_gram"]


def stable_rank(a: Tensor) -> float:
    """Stable (effective) rank R(A) = ||A||_F^2 / ||A||_2^2 (thesis Def. 3.6, eq. 3.18).

    ``a`` is (B, P) with one sample per row. Computed from the B x B Gram matrix A A^T in float64:
    ||A||_F^2 = tr(A A^T), ||A||_2^2 = its largest eigenvalue (cheaper and more accurate than an SVD
    of the P-dimensional matrix). Returns 0 for an all-zero matrix.
    """
    a64 = a.detach().to(torch.float64)
    gram = a64 @ a64.T
    top = torch.linalg.eigvalsh(gram)[-1].item()
    if top <= 0:
        return 0.0
    return float(torch.trace(gram).item() / top)


_GAUSSIAN_RANK_CACHE: dict[tuple[int, int], float] = {}


def wishart_gram(dim: int, df: int, generator: "np.random.Generator") -> "np.ndarray":
    """One exact sample of Y Y^T for a (dim x df) standard Gaussian Y, dim <= df (Bartlett, 1933).

    Y Y^T ~ Wishart(df, I_dim) = A A^T with A lower triangular, A_ii = sqrt(chi2(df - i)),
    A_ij ~ N(0, 1) below the diagonal: O(dim^2) work instead of O(dim^2 * df).
    """
    a = np.tril(generator.standard_normal((dim, dim)), k=-1)
    a[np.diag_indices(dim)] = np.sqrt(generator.chisquare(df - np.arange(dim)))
    return a @ a.T


def gaussian_stable_rank(rows: int, cols: int, samples: int = 64) -> float:
    """Mean stable rank R(Y) of a (rows x cols) standard Gaussian matrix, cached per shape.

    The reference of the relative gradient rank (thesis Def. 3.7): R(Y) depends only on the shape,
    so it is estimated once per shape (fixed seed) and cached. The Gram matrix Y Y^T is drawn exactly
    from its Wishart distribution with the Bartlett decomposition (:func:`wishart_gram`), so the cost
    does not grow with the parameter count; the non-zero spectra of Y Y^T and Y^T Y coincide, so the
    smaller side is used.
    """
    key = (int(rows), int(cols))
    if key not in _GAUSSIAN_RANK_CACHE:
        dim, df = min(key), max(key)
        gen = np.random.default_rng(1234)
        vals = []
        for _ in range(samples):
            eig = np.linalg.eigvalsh(wishart_gram(dim, df, gen))
            vals.append(float(eig.sum() / eig[-1]))
        _GAUSSIAN_RANK_CACHE[key] = float(np.mean(vals))
    return _GAUSSIAN_RANK_CACHE[key]
