"""Tests of objectives/zero_cost/jacob_cov.py: a per-example loop, a closed form and the undefined case."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from torch import nn

import objectives.zero_cost as zc


def test_jacob_cov_matches_per_example_loop(mlp, batch):
    model = mlp(6)
    x, y = batch((6,))
    rows = []
    for i in range(x.shape[0]):  # no BatchNorm: example i's Jacobian involves only its own output
        xi = x[i : i + 1].clone().requires_grad_(True)
        model(xi).sum().backward()
        rows.append(xi.grad.reshape(-1).double().numpy())
    model.zero_grad(set_to_none=True)
    v = np.linalg.eig(np.corrcoef(np.stack(rows)))[0].real
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert zc.jacob_cov(model, x, y) == pytest.approx(float(expected), rel=1e-6)


def test_jacob_cov_identical_jacobians_closed_form(batch):
    # a linear map gives every example the same Jacobian: corr = all ones, eigenvalues (B, 0, ..., 0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = batch((4,))
    k, b = 1e-5, x.shape[0]
    expected = -((math.log(b + k) + 1 / (b + k)) + (b - 1) * (math.log(k) + 1 / k))
    assert zc.jacob_cov(model, x, y) == pytest.approx(expected, rel=1e-6)


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x) * 0.0


def test_jacob_cov_constant_jacobian_is_nan(caplog, batch):
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        assert math.isnan(zc.jacob_cov(_Constant(), *batch((4,))))
    assert "constant" in caplog.text
