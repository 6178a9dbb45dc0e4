"""Tests of objectives/zero_cost/grad_norm.py against plain ``.backward()`` gradients."""

from __future__ import annotations

import pytest

import objectives.zero_cost as zc


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_grad_norm_matches_manual_autograd(name, models, batch, manual_weight_grads):
    build, shape = models[name]
    model = build()
    x, y = batch(shape)
    pairs = manual_weight_grads(model, x, y)
    assert zc.grad_norm(model, x, y) == pytest.approx(sum(float(g.norm()) for _, g in pairs), rel=1e-5)
