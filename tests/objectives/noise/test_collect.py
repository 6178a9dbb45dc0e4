"""Gradient collection: minibatch gradients against a plain autograd backward (model untouched), the
depth order of a forward pass, the history's subsampled entries and full norms."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from objectives import noise as N


def test_layer_gradients_match_autograd_and_leave_the_model_alone(bn_convnet, data, snapshot, assert_identical):
    model = bn_convnet()
    x, y = data(16, shape=(1, 8, 8), classes=3)
    before = snapshot(model)
    got = N.layer_gradients(model, x, y)
    assert_identical(model, before)
    ref = copy.deepcopy(model)
    ref.train()
    ref[9].p = 0.0  # layer_gradients evaluates with dropout off, BatchNorm on batch statistics
    F.cross_entropy(ref(x), y).backward()
    for name, p in ref.named_parameters():
        torch.testing.assert_close(got[name], p.grad.reshape(-1), rtol=1e-5, atol=1e-6)


def test_layer_order_follows_the_forward_pass():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(5, 2)  # registered first, runs last
            self.body = nn.Linear(3, 5)

        def forward(self, x):
            return self.head(torch.relu(self.body(x)))

    m = Reordered()
    assert N.layer_order(m) == ["head.weight", "head.bias", "body.weight", "body.bias"]
    assert N.layer_order(m, torch.randn(2, 3)) == ["body.weight", "body.bias", "head.weight", "head.bias"]


def test_gradient_history_subsamples_and_keeps_full_norms(mlp, data):
    model = mlp()
    x, y = data(128)
    hist = N.gradient_history(model, N.random_batches(x, y, 16, 10, seed=3), max_weights_per_layer=20)
    assert hist.names == ["1.weight", "3.weight", "5.weight"] and hist.num_batches == 10
    assert hist.layers["1.weight"].shape == (10, 20) and hist.layers["5.weight"].shape == (10, 20)
    assert hist.sizes["1.weight"] == 120 and hist.indices["1.weight"].numel() == 20
    assert hist.matrix().shape == (10, 60)
    batches = list(N.random_batches(x, y, 16, 10, seed=3))
    full = N.layer_gradients(model, *batches[4])["1.weight"]
    assert hist.norms["1.weight"][4] == pytest.approx(float(full.double().norm()), rel=1e-6)
    torch.testing.assert_close(hist.layers["1.weight"][4], full[hist.indices["1.weight"]])
    with pytest.raises(ValueError, match="same size"):
        N.gradient_history(model, [data(8), data(4)])
