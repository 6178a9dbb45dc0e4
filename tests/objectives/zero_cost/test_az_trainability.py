"""Tests of objectives/zero_cost/az_trainability.py: closed forms (an isometry at the optimum, a scaled map,
an identity block, a disconnected block), a slow-loop reference with a strided block, the AZ-NAS reference
algorithm on an NB201 network, seeding."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc
from objectives.zero_cost._az_nas import TRAINABILITY_EPS
from search_spaces import get_space


def _linear(weight: torch.Tensor, bias: bool = False) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias:
            lin.bias.zero_()
    return lin


def _term(sigma: float) -> float:
    return 2.0 - sigma - 1.0 / (sigma + TRAINABILITY_EPS)


@pytest.mark.parametrize("a", [1.0, 2.0, 0.25])
def test_one_channel_block_closed_form(a):
    # f1 = -a f0 on one channel: g_in = -a g and g^2 = 1, so M = -a exactly and sigma = a; at a = 1 (an
    # isometry that is not the identity) the term is at its optimum, ~0
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1), _linear(torch.tensor([[-a]])), nn.Linear(1, 2))
    value = zc.az_trainability(model, torch.randn(7, 3), None)
    assert value == pytest.approx(_term(a), rel=1e-9)
    if a == 1.0:
        assert value == pytest.approx(0.0, abs=2e-6)


class Pointwise(nn.Module):
    """A block: a 1x1 convolution with a given channel matrix."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(weight[:, :, None, None])

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5])
def test_orthogonal_block_closed_form_and_near_the_optimum(scale):
    # M = (scale Q)^T (G^T G / P), so sigma(M) = |scale| sigma(G^T G / P) for the drawn Rademacher G; the
    # second factor -> 1 as the number of positions P grows (here P = 8 * 16 * 16)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(0)))
    model = nn.Sequential(nn.Conv2d(3, 4, 1), Pointwise(scale * q), nn.Flatten(), nn.Linear(4 * 16 * 16, 2))
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    g = torch.randint(0, 2, (8, 4, 16, 16), generator=torch.Generator().manual_seed(0)).double() * 2 - 1
    rows = g.permute(0, 2, 3, 1).reshape(-1, 4)
    noise = float(torch.linalg.svdvals(rows.T @ rows / rows.shape[0]).max())
    assert 1.0 < noise < 1.1
    value = zc.az_trainability(model, x, None)
    assert value == pytest.approx(_term(scale * noise), rel=1e-5)
    if scale == 1.0:
        assert -0.01 < value <= 0.0  # the optimum up to the estimator's noise
    else:
        assert value < -0.4


class Skip(nn.Module):
    """A block that returns its input (an NB201 cell reduced to one skip connection)."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.Identity()

    def forward(self, x):
        return self.op(x)


def test_identity_block_gives_minus_inf():
    model = nn.Sequential(nn.Linear(3, 4), Skip(), nn.Linear(4, 2))
    assert zc.az_trainability(model, torch.randn(5, 3), None) == -math.inf


def test_block_independent_of_its_input_has_sigma_zero():
    const = nn.Linear(4, 4)
    with torch.no_grad():
        const.weight.zero_()
    model = nn.Sequential(nn.Linear(3, 4), const, nn.Linear(4, 2))
    assert zc.az_trainability(model, torch.randn(5, 3), None) == pytest.approx(_term(0.0))


class Down(nn.Module):
    """conv(stride) -> BN -> ReLU as one block."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def _strided_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), Down(4, 6, 2),
                         Down(6, 6, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))


def _slow_reference(model: nn.Sequential, x: torch.Tensor, seed: int) -> float:
    """Features by explicit calls on a train-mode copy, VJPs with torch.autograd.functional.vjp, M by loops
    over (example, position), the patch folding by F.pixel_unshuffle, sigma by numpy's SVD."""
    net = copy.deepcopy(model).train()
    with torch.no_grad():
        f0 = net[2](net[1](net[0](x)))
        f1 = net[3](f0)
        f2 = net[4](f1)
    feats, blocks = [f0, f1, f2], [net[3], net[4]]
    gen = torch.Generator().manual_seed(seed)
    terms = {}
    for i in (2, 1):  # the last pair first
        g_out = torch.randint(0, 2, feats[i].shape, generator=gen).float() * 2 - 1
        _, g_in = torch.autograd.functional.vjp(blocks[i - 1], feats[i - 1], g_out)
        if g_in.shape[2] != g_out.shape[2]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        n, _, h, w = g_out.shape
        m = np.zeros((g_in.shape[1], g_out.shape[1]))
        for b in range(n):
            for r in range(h):
                for c in range(w):
                    m += np.outer(g_in[b, :, r, c].double().numpy(), g_out[b, :, r, c].double().numpy())
        sigma = float(np.linalg.svd(m / (n * h * w), compute_uv=False).max())
        terms[i] = _term(sigma)
    return (terms[1] + terms[2]) / 2


@pytest.mark.parametrize("seed", [0, 3])
def test_matches_a_slow_loop_reference_with_a_strided_block(seed):
    model = _strided_net()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    got = zc.az_trainability(model, x, None, seed=seed)
    assert got == pytest.approx(_slow_reference(model, x, seed), rel=1e-5)


def _reference_nb201(model: nn.Module, x: torch.Tensor, seed: int) -> float:
    """AZ-NAS's trainability loop (float32, ``extract_cell_features``) on a train-mode copy, our draws."""
    net = copy.deepcopy(model).train()
    feats = [net.stem(x.clone().requires_grad_(True))]
    for cell in net.cells:
        feats.append(cell(feats[-1]))
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for i in reversed(range(1, len(feats))):
        f_out, f_in = feats[i], feats[i - 1]
        g_out = torch.randint(0, 2, f_out.shape, generator=gen).float() * 2 - 1
        g_in = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True)[0]
        if g_out.shape == g_in.shape and torch.all(g_in == g_out):
            scores.append(-np.inf)
            continue
        if g_out.shape[2] != g_in.shape[2]:
            g_in = nn.PixelUnshuffle(g_in.shape[2] // g_out.shape[2])(g_in)
        bo, co, ho, wo = g_out.shape
        go = g_out.permute(0, 2, 3, 1).reshape(-1, co)
        gi = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
        s = torch.linalg.svdvals(gi.T @ go / (bo * ho * wo)).max().item()
        scores.append(-s - 1 / (s + 1e-6) + 2)
    return float(np.mean(scores))


@pytest.mark.parametrize("arch,finite", [
    ("|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|", True),
    ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", False),  # every cell is the identity
])
def test_matches_the_reference_algorithm_on_an_nb201_network(arch, finite):
    model = get_space("nb201").build({"arch": arch, "channels": 8, "cells": 2}, 10, (3, 16, 16), seed=0)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = zc.az_trainability(model, x, None, seed=4)
    expected = _reference_nb201(model, x, seed=4)
    if finite:
        assert ours == pytest.approx(expected, rel=1e-4)
    else:
        assert ours == expected == -math.inf


def test_seeded_and_inside_no_grad(convnet, batch):
    model = convnet()
    x, _ = batch((3, 6, 6))
    a = zc.az_trainability(model, x, None, seed=1)
    assert a == zc.az_trainability(model, x, None, seed=1)
    assert a != zc.az_trainability(model, x, None, seed=2)
    with torch.no_grad():
        assert zc.az_trainability(model, x, None, seed=1) == a


def test_evaluated_in_train_mode(convnet, batch):
    x, _ = batch((3, 6, 6))
    model = convnet().eval()
    assert zc.az_trainability(model, x, None) == zc.az_trainability(convnet().train(), x, None)
    assert not model.training


def test_fewer_than_two_features_raise():
    with pytest.raises(ValueError, match="at least 2 features"):
        model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # one feature, then the head
        zc.az_trainability(model, torch.randn(5, 3), None)
