"""Tests of objectives/zero_cost/grasp.py: the full Hessian, and the reference's two-pass procedure."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc


def test_grasp_matches_full_hessian(mlp, batch):
    # independent: hand-written 2-layer tanh net, full Hessian of the loss in the flattened weights
    model = mlp(2, act=nn.Tanh)[:3]  # Linear(6,8), Tanh, Linear(8,5)
    x, y = batch((6,), classes=5)
    l1, l2 = model[0], model[2]
    w1, b1, w2, b2 = (t.detach().double() for t in (l1.weight, l1.bias, l2.weight, l2.bias))
    n1 = w1.numel()

    def loss(theta):
        a = torch.tanh(x.double() @ theta[:n1].view_as(w1).T + b1)
        return F.cross_entropy(a @ theta[n1:].view_as(w2).T + b2, y)

    theta = torch.cat([w1.reshape(-1), w2.reshape(-1)])
    g = torch.autograd.functional.jacobian(loss, theta)
    h = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (h @ g)).sum())
    assert zc.grasp(model, x, y) == pytest.approx(expected, rel=1e-4)


def test_grasp_matches_reference_two_pass_procedure_on_bn_convnet(convnet, batch, layer_weights):
    model = convnet()
    x, y = batch((3, 6, 6))
    net = copy.deepcopy(model)
    weights = layer_weights(net)
    grad_w = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    grad_f = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True)
    sum((gw * gf).sum() for gw, gf in zip(grad_w, grad_f)).backward()
    expected = sum(float((-w.detach() * w.grad).sum()) for w in weights)
    assert zc.grasp(model, x, y) == pytest.approx(expected, rel=1e-4)
