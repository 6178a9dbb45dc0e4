"""Tests of objectives/zero_cost/az_expressivity.py: closed forms (isotropic: log C, rank one: 0), numpy and
slow-loop references, the AZ-NAS reference formula on an NB201 network, train mode, degenerate features."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import objectives.zero_cost as zc
from objectives.zero_cost._az_nas import spectral_entropy
from search_spaces import get_space


def _identity_probe(c: int) -> nn.Sequential:
    """Linear(c, c) = identity (its output, the input itself, is the one feature), then a head."""
    lin = nn.Linear(c, c)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(c))
        lin.bias.zero_()
    return nn.Sequential(lin, nn.Linear(c, 2))


def _hadamard(n: int) -> torch.Tensor:
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


@pytest.mark.parametrize("c", [2, 4, 8])
def test_isotropic_feature_has_entropy_log_c(c):
    h = _hadamard(c)
    x = torch.cat([h, -h])  # centered rows with covariance exactly I
    assert zc.az_expressivity(_identity_probe(c), x, None) == pytest.approx(math.log(c), abs=1e-12)


def test_rank_one_feature_has_entropy_zero():
    a = torch.randn(10, 1, generator=torch.Generator().manual_seed(0))
    x = a * torch.tensor([[1.0, -2.0, 3.0, 0.5]])
    assert zc.az_expressivity(_identity_probe(4), x, None) == pytest.approx(0.0, abs=1e-9)


def _np_entropy(rows: np.ndarray) -> float:
    rows = rows - rows.mean(axis=0, keepdims=True)
    eig = np.clip(np.linalg.eigvalsh(rows.T @ rows / rows.shape[0]), 0.0, None)
    p = eig / eig.sum()
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_matches_numpy_on_a_relu_mlp(mlp, batch):
    model = mlp(seed=3)  # Linear(6,8) ReLU Linear(8,5) ReLU Linear(5,3): features relu(l1 x), relu(l2 h1)
    x, _ = batch((6,), n=12)
    with torch.no_grad():
        h1 = torch.relu(model[0](x))
        h2 = torch.relu(model[2](h1))
    expected = _np_entropy(h1.double().numpy()) + _np_entropy(h2.double().numpy())
    assert zc.az_expressivity(model, x, None) == pytest.approx(expected, rel=1e-10)


def test_conv_feature_matches_a_slow_loop_over_positions():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    model = nn.Sequential(conv, nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    x = torch.randn(2, 2, 4, 4)
    with torch.no_grad():
        f = torch.tanh(conv(x)).double().numpy()  # the run conv-tanh-flatten ends at the flatten: (2, 48)
    flat = f.reshape(2, -1)
    # rows: examples; columns: the 48 flattened units (the flatten is part of the run)
    mean = sum(flat[i] for i in range(2)) / 2
    cov = sum(np.outer(flat[i] - mean, flat[i] - mean) for i in range(2)) / 2
    eig = np.clip(np.linalg.eigvalsh(cov), 0, None)
    p = eig[eig > 0] / eig.sum()
    assert zc.az_expressivity(model, x, None) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-9)
    # the 4-D map itself: one row per (example, position), loops over h and w
    rows = np.array([f.reshape(2, 3, 4, 4)[n, :, i, j] for n in range(2) for i in range(4) for j in range(4)])
    mean = rows.sum(axis=0) / len(rows)
    cov = sum(np.outer(r - mean, r - mean) for r in rows) / len(rows)
    eig = np.clip(np.linalg.eigvalsh(cov), 0, None)
    p = eig / eig.sum()
    assert spectral_entropy(torch.from_numpy(f.reshape(2, 3, 4, 4))) == pytest.approx(
        float(-(p * np.log(p)).sum()), rel=1e-10)


ARCH = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_3x3~2|"


def _reference_az_expressivity(model: nn.Module, x: torch.Tensor) -> float:
    """AZ-NAS's formula on the reference's features (``extract_cell_features``: stem, then each cell), in
    float32 with its ``-p log(p + 1e-8)``, on a train-mode copy."""
    net = copy.deepcopy(model).train()
    with torch.no_grad():
        feats = [net.stem(x)]
        for cell in net.cells:
            feats.append(cell(feats[-1]))
    total = 0.0
    for feat in feats:
        b, c, h, w = feat.shape
        f = feat.permute(0, 2, 3, 1).reshape(b * h * w, c)
        f = f - f.mean(dim=0, keepdim=True)
        s = torch.linalg.eigvalsh(f.T @ f / f.shape[0])
        p = s / s.sum()
        total += float((-p * torch.log(p + 1e-8)).sum())
    return total


def test_matches_the_reference_formula_on_an_nb201_network():
    model = get_space("nb201").build({"arch": ARCH, "channels": 8, "cells": 2}, 10, (3, 16, 16), seed=0)
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = zc.az_expressivity(model, x, None)
    assert ours == pytest.approx(_reference_az_expressivity(model, x), rel=1e-5)
    assert 0 < ours < 9 * math.log(32)  # 9 features of at most 32 channels


def test_constant_feature_gives_minus_inf():
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.fill_(0.5)
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), lin, nn.ReLU(), nn.Linear(4, 2))
    assert zc.az_expressivity(model, torch.randn(6, 3), None) == -math.inf


def test_evaluated_in_train_mode(convnet, batch):
    x, _ = batch((3, 6, 6))
    train = zc.az_expressivity(convnet().train(), x, None)
    model = convnet().eval()
    assert zc.az_expressivity(model, x, None) == train
    assert not model.training


def test_reads_the_input_values(mlp, batch):
    x, _ = batch((6,), n=12)
    model = mlp()
    assert zc.az_expressivity(model, x, None) != zc.az_expressivity(model, x ** 3, None)


def test_bad_inputs_and_featureless_models_raise(mlp):
    x = torch.randn(4, 6)
    x[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        zc.az_expressivity(mlp(), x, None)
    with pytest.raises(ValueError, match="no feature"):
        zc.az_expressivity(nn.Sequential(nn.Linear(6, 3)), torch.randn(4, 6), None)
