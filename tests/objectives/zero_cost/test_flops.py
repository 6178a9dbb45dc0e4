"""Tests of objectives/zero_cost/flops.py: forward FLOPs per example."""

from __future__ import annotations

from torch import nn

import objectives.zero_cost as zc


def test_flops_of_linear_and_conv(convnet, batch):
    lin = nn.Linear(7, 5)
    assert zc.flops(lin, *batch((7,), n=4)) == 2 * 7 * 5
    conv = nn.Conv2d(3, 4, 3)  # 8x8 -> 6x6 output
    assert zc.flops(conv, *batch((3, 8, 8), n=2)) == 2 * 4 * 3 * 3 * 3 * 6 * 6
    model = convnet()
    assert zc.flops(model, *batch((3, 6, 6), n=1)) == zc.flops(model, *batch((3, 6, 6), n=8))
