"""Tests of objectives/zero_cost/fisher.py against hand-written forward passes and retained gradients."""

from __future__ import annotations

import copy
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc


def _fisher_term(act, grad, fan_in, channel_dim):
    prod = (act * grad).double()
    if prod.dim() > 2:
        prod = prod.sum(dim=tuple(d for d in range(1, prod.dim()) if d != channel_dim))
    return fan_in * float((0.5 * prod.pow(2).mean(0)).sum())


def test_fisher_matches_hand_written_mlp(mlp, batch):
    model = mlp(4)
    x, y = batch((6,))
    l1, l2, l3 = model[0], model[2], model[4]
    z1 = F.linear(x, l1.weight, l1.bias)
    z2 = F.linear(torch.relu(z1), l2.weight, l2.bias)
    z3 = F.linear(torch.relu(z2), l3.weight, l3.bias)
    grads = torch.autograd.grad(F.cross_entropy(z3, y), [z1, z2, z3])
    expected = sum(
        _fisher_term(z.detach(), g, fan_in, 1) for z, g, fan_in in zip((z1, z2, z3), grads, (6, 8, 5))
    )
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_hand_written_convnet(batch):
    torch.manual_seed(5)
    conv, lin = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 5 * 5, 3)
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), lin)  # in-place ReLU after the conv
    x, y = batch((3, 5, 5))
    z1 = F.conv2d(x, conv.weight, conv.bias, padding=1)
    z2 = F.linear(torch.relu(z1).flatten(1), lin.weight, lin.bias)
    g1, g2 = torch.autograd.grad(F.cross_entropy(z2, y), [z1, z2])
    expected = _fisher_term(z1.detach(), g1, 3 * 3 * 3, 1) + _fisher_term(z2.detach(), g2, 100, 1)
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_retained_gradients_on_bn_convnet(convnet, batch):
    model = convnet()
    x, y = batch((3, 6, 6))
    net = copy.deepcopy(model)
    outs = []

    def keep(module, args, out):
        out.retain_grad()
        outs.append((module, out))

    handles = [m.register_forward_hook(keep) for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    F.cross_entropy(net(x), y).backward()
    for h in handles:
        h.remove()
    expected = sum(_fisher_term(o.detach(), o.grad, m.weight[0].numel(), 1) for m, o in outs)
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_fan_in_counts_weights_per_output_channel():
    module = importlib.import_module("objectives.zero_cost.fisher")  # zc.fisher is the function
    assert module._fan_in(nn.Linear(7, 5)) == 7
    assert module._fan_in(nn.Conv2d(3, 4, 3)) == 3 * 3 * 3
    assert module._fan_in(nn.ConvTranspose2d(3, 4, 3)) == 3 * 3 * 3  # weight (in, out, k, k): in * k * k
