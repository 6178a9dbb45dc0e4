"""Tests of objectives/zero_cost/zico.py against a manual batch loop, dead layers and bad options."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc


def _manual_zico(model, x, y, weights_of, num_batches=2):
    net = copy.deepcopy(model)
    grads: dict[int, list[np.ndarray]] = {}
    for xb, yb in zip(x.tensor_split(num_batches), y.tensor_split(num_batches)):
        net.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        for i, w in enumerate(weights_of(net)):
            grads.setdefault(i, []).append(w.grad.reshape(-1).double().numpy().copy())
    score = 0.0
    for gs in grads.values():
        g = np.array(gs)
        std = np.std(g, axis=0)
        nz = np.nonzero(std)[0]
        tmpsum = np.sum(np.mean(np.abs(g), axis=0)[nz] / std[nz])
        if tmpsum != 0:
            score += np.log(tmpsum)
    return score


@pytest.mark.parametrize("name,num_batches", [("mlp", 2), ("convnet_bn", 2), ("mlp", 4)])
def test_zico_matches_manual_batch_loop(name, num_batches, models, batch, layer_weights):
    build, shape = models[name]
    model = build()
    x, y = batch(shape)
    expected = _manual_zico(model, x, y, layer_weights, num_batches)
    assert zc.zico(model, x, y, num_batches=num_batches) == pytest.approx(expected, rel=1e-5)


class _DeadBranch(nn.Module):
    def __init__(self, live: bool) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.live = nn.Linear(4, 3) if live else None
        self.dead = nn.Linear(4, 3)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        out = self.dead(x) * 0.0 + self.bias
        return out + self.live(x) if self.live is not None else out


def test_zico_skips_zero_std_layers_loudly(caplog, batch):
    model = _DeadBranch(live=True)
    x, y = batch((4,))
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        value = zc.zico(model, x, y)
    assert "skipped 1 of 2 layers" in caplog.text and "dead" in caplog.text
    assert value == pytest.approx(_zico_single(model, x, y), rel=1e-6)
    assert zc.zico(_DeadBranch(live=False), x, y) == float("-inf")


def _zico_single(model, x, y):
    g = []
    for xb, yb in zip(x.tensor_split(2), y.tensor_split(2)):
        (gw,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), model.live.weight)
        g.append(gw.double().reshape(-1).numpy())
    g = np.array(g)
    return float(np.log(np.sum(np.mean(np.abs(g), 0) / np.std(g, 0))))


def test_zico_rejects_bad_num_batches(mlp, batch):
    with pytest.raises(ValueError):
        zc.zico(mlp(), *batch((6,)), num_batches=1)
    with pytest.raises(ValueError):
        zc.zico(mlp(), *batch((6,), n=2), num_batches=3)
