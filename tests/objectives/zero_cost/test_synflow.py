"""Tests of objectives/zero_cost/synflow.py: a closed form, the zero-flow case and the reference procedure."""

from __future__ import annotations

import copy
import logging
import math

import pytest
import torch
from torch import nn

import objectives.zero_cost as zc


@pytest.mark.parametrize("bn", [False, True])
def test_synflow_closed_form_of_linear_chain(bn, batch):
    # R = 1^T |W2| |W1| 1 and sum |W ⊙ dR/dW| = R for each layer of a bias-free chain, so the score is
    # log(2R); ReLU is the identity on the positive linearized signal and BatchNorm is bypassed.
    torch.manual_seed(3)
    norm = [nn.BatchNorm1d(6)] if bn else []
    layers = [nn.Linear(4, 6, bias=False), *norm, nn.ReLU(), nn.Linear(6, 2, bias=False)]
    model = nn.Sequential(*layers)
    w1, w2 = (layers[0].weight.detach().double().abs(), layers[-1].weight.detach().double().abs())
    r = float(torch.ones(2, dtype=torch.float64) @ w2 @ w1 @ torch.ones(4, dtype=torch.float64))
    dw1 = torch.outer(w2.sum(0), torch.ones(4, dtype=torch.float64))  # dR/d|W1|
    dw2 = torch.outer(torch.ones(2, dtype=torch.float64), w1.sum(1))  # dR/d|W2|
    by_hand = float((w1 * dw1).sum() + (w2 * dw2).sum())
    assert by_hand == pytest.approx(2 * r, rel=1e-12)
    x, y = batch((4,), n=5)
    assert zc.synflow(model, x, y) == pytest.approx(math.log(2 * r), rel=1e-12)


def test_synflow_zero_flow_is_minus_inf(caplog, batch):
    class Disconnected(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2, bias=False)
            self.out = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.lin(x) * 0.0 + self.out

    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        assert zc.synflow(Disconnected(), *batch((3,))) == float("-inf")
    assert "synaptic flow is 0" in caplog.text


def test_synflow_matches_reference_procedure_on_bn_convnet(convnet, batch, layer_weights):
    # the reference's procedure on a copy we may mutate: |state| in float64, BatchNorm -> identity, ones in
    model = convnet()
    x, y = batch((3, 6, 6))
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    for i, m in enumerate(net):
        if isinstance(m, nn.BatchNorm2d):
            net[i] = nn.Identity()
    net(torch.ones(1, 3, 6, 6, dtype=torch.float64)).sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in layer_weights(net))
    assert zc.synflow(model, x, y) == pytest.approx(math.log(total), rel=1e-12)
