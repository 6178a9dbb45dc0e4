"""Tests of objectives/zero_cost/snip.py against plain ``.backward()`` gradients."""

from __future__ import annotations

import pytest

import objectives.zero_cost as zc


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_snip_matches_manual_autograd(name, models, batch, manual_weight_grads):
    build, shape = models[name]
    model = build()
    x, y = batch(shape)
    pairs = manual_weight_grads(model, x, y)
    assert zc.snip(model, x, y) == pytest.approx(sum(float((w * g).abs().sum()) for w, g in pairs), rel=1e-5)
