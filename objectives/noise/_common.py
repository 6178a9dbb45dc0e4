"""Private helpers shared by the files of :mod:`objectives.noise`.

Paper citations, the definition of a *layer*, the two kinds of random column subset (torch
``randperm`` for gradient collection and the probe, numpy ``Generator.choice`` for the statistical
tests: two different random streams, each kept as the values were recorded with it) and the conversion
of a sample to a float64 numpy array.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..core.params import random_subset

P000 = "Roy & Roy, Layer-Dependent Structure in Gradient Noise of Small Convolutional Networks"
P001 = "Xie, Tang, Sun & Li, On the Overlooked Structure of Stochastic Gradients"
P002 = "Yun, Gradient Autoscaled Normalization, arXiv:2509.03677, 2025"
P003 = "Wu, Luo, Zhang, Wang & Yang, Revisiting the Characteristics of Stochastic Gradient Noise and Dynamics"


def is_layer(p: Tensor, weights_only: bool) -> bool:
    """A trainable tensor that counts as a layer: ``ndim > 1`` (conv/linear weights) unless
    ``weights_only`` is False."""
    return p.requires_grad and (p.dim() > 1 or not weights_only)


def layer_subsets(
    sizes: Mapping[str, int], k: int | None, generator: torch.Generator
) -> dict[str, Tensor | None]:
    """Per layer, ``k`` sorted random flat indices (:func:`~objectives.core.params.random_subset`, one
    ``randperm`` per layer larger than ``k``, drawn in the order of ``sizes``); ``None`` (all entries)
    for a layer of at most ``k`` entries or when ``k`` is None."""
    return {
        n: random_subset(size, int(k), generator) if k is not None and size > k else None
        for n, size in sizes.items()
    }


def take_columns(x: np.ndarray, k: int | None, rng: np.random.Generator) -> np.ndarray:
    """``x`` restricted to ``k`` random columns (sorted, ``rng.choice`` without replacement) when it
    has more than ``k``; ``x`` itself otherwise or when ``k`` is None."""
    if k is not None and x.shape[1] > k:
        return x[:, np.sort(rng.choice(x.shape[1], int(k), replace=False))]
    return x


def as_float64(x: Tensor | np.ndarray | Any) -> np.ndarray:
    """A tensor (detached, moved to the CPU) or array-like as a float64 numpy array."""
    return np.asarray(x.detach().cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
