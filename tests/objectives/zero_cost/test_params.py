"""Tests of objectives/zero_cost/params.py: the trainable-parameter count."""

from __future__ import annotations

from torch import nn

import objectives.zero_cost as zc


def test_params_counts_trainable_once(mlp, batch):
    model = mlp()
    expected = sum(p.numel() for p in model.parameters())
    assert zc.params(model, *batch((6,))) == float(expected) == 6 * 8 + 8 + 8 * 5 + 5 + 5 * 3 + 3
    model[0].bias.requires_grad_(False)
    assert zc.params(model, *batch((6,))) == expected - 8
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert zc.params(tied, *batch((4,))) == 16.0
