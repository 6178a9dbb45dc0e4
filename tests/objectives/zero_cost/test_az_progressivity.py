"""Tests of objectives/zero_cost/az_progressivity.py: a closed form (isotropic -> rank one: -log C), a numpy
reference over three features, the AZ-NAS reference formula on an NB201 network, degenerate cases."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import objectives.zero_cost as zc
from search_spaces import get_space


def _linear(weight: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.zero_()
    return lin


def test_isotropic_then_rank_one_gives_minus_log_c():
    h = torch.tensor([[1.0, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]])
    x = torch.cat([h, -h])  # covariance I: entropy log 4
    u, v = torch.tensor([1.0, 2, 0, -1]), torch.tensor([0.5, -1, 2, 1])
    model = nn.Sequential(_linear(torch.eye(4)), _linear(torch.outer(u, v)), nn.Linear(4, 2))  # rank one: 0
    assert zc.az_progressivity(model, x, None) == pytest.approx(-math.log(4), abs=1e-9)


def _np_entropy(rows: np.ndarray) -> float:
    rows = rows - rows.mean(axis=0, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(rows.T @ rows / rows.shape[0]), 0.0, None)
    p = eig[eig > 0] / eig.sum()
    return float(-(p * np.log(p)).sum())


def test_matches_numpy_on_three_features(batch):
    torch.manual_seed(5)
    l1, l2, l3 = nn.Linear(6, 10), nn.Linear(10, 4), nn.Linear(4, 8)
    model = nn.Sequential(l1, nn.Tanh(), l2, nn.ReLU(), l3, nn.ReLU(), nn.Linear(8, 3))
    x, _ = batch((6,), n=20)
    with torch.no_grad():
        h1 = torch.tanh(l1(x))
        h2 = torch.relu(l2(h1))
        h3 = torch.relu(l3(h2))
    e = [_np_entropy(h.double().numpy()) for h in (h1, h2, h3)]
    assert zc.az_progressivity(model, x, None) == pytest.approx(min(e[1] - e[0], e[2] - e[1]), rel=1e-9)


def test_matches_the_reference_formula_on_an_nb201_network():
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|"
    model = get_space("nb201").build({"arch": arch, "channels": 8, "cells": 2}, 10, (3, 16, 16), seed=0)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    net = copy.deepcopy(model).train()
    with torch.no_grad():
        feats = [net.stem(x)]
        for cell in net.cells:
            feats.append(cell(feats[-1]))
    scores = []
    for feat in feats:  # the reference's float32 formula
        f = feat.permute(0, 2, 3, 1).reshape(-1, feat.shape[1])
        f = f - f.mean(dim=0, keepdim=True)
        p = torch.linalg.eigvalsh(f.T @ f / f.shape[0])
        p = p / p.sum()
        scores.append(float((-p * torch.log(p + 1e-8)).sum()))
    expected = float(np.min(np.diff(scores)))
    assert zc.az_progressivity(model, x, None) == pytest.approx(expected, abs=1e-5)


def test_constant_feature_gives_minus_inf():
    const = _linear(torch.zeros(3, 3))
    with torch.no_grad():
        const.bias.fill_(1.0)
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), const, nn.ReLU(), nn.Linear(3, 2))
    assert zc.az_progressivity(model, torch.randn(6, 3), None) == -math.inf


def test_fewer_than_two_features_raise():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))  # one feature, then the head
    with pytest.raises(ValueError, match="at least 2 features"):
        zc.az_progressivity(model, torch.randn(6, 3), None)
