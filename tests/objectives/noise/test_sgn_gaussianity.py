"""``sgn_gaussianity`` ([003] Sec. 4): the CLT on a linear model (Gaussianity rises with the subsample
size), the batch-size bound."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from objectives import noise as N


def test_sgn_gaussianity_rises_with_the_subsample_size_on_a_linear_model():
    # per-example gradients of a softmax regression are skewed; their means become Gaussian (CLT)
    torch.manual_seed(0)
    model = nn.Linear(10, 3)
    x = torch.randn(256, 10) ** 3
    y = torch.randint(0, 3, (256,))
    small = N.sgn_gaussianity(model, x, y, batch_size=2, num_batches=300)
    large = N.sgn_gaussianity(model, x, y, batch_size=64, num_batches=300)
    assert large > small + 20


def test_sgn_gaussianity_needs_a_subsample_below_the_probe_batch(bn_convnet, data):
    model = bn_convnet()
    x, y = data(64, shape=(1, 8, 8), classes=3)
    with pytest.raises(ValueError, match="batch_size"):
        N.sgn_gaussianity(model, x, y, batch_size=64)
