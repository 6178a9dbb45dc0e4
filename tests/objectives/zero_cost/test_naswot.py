"""Tests of objectives/zero_cost/naswot.py: hand-computed and hand-built kernels, the singular case."""

from __future__ import annotations

import importlib
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc

# the module itself: ``zc.naswot`` is the function re-exported over it
naswot_module = importlib.import_module("objectives.zero_cost.naswot")


def test_naswot_hand_computed_kernel():
    # codes of [1,-1,2] and [-1,-1,3]: (1,0,1), (0,0,1); agreements K = [[3,2],[2,3]], det = 5
    # (the Linear after the ReLU gives the model a trainable parameter, which every metric requires)
    x = torch.tensor([[1.0, -1.0, 2.0], [-1.0, -1.0, 3.0]])
    y = torch.zeros(2, dtype=torch.long)
    assert zc.naswot(nn.Sequential(nn.ReLU(), nn.Linear(3, 2)), x, y) == pytest.approx(math.log(5))


class CReLU(nn.Module):
    """concat(relu(x), -relu(-x)), built from functional relu: hooked only because of its class name."""

    def forward(self, x):
        return torch.cat([F.relu(x), -F.relu(-x)], dim=1)


@pytest.mark.parametrize("seed,singular", [(8, False), (7, True)])
def test_naswot_matches_hand_built_kernel(seed, singular, batch):
    torch.manual_seed(seed)
    l1, l2, l3 = nn.Linear(5, 16), nn.Linear(16, 8), nn.Linear(16, 3)
    model = nn.Sequential(l1, nn.ReLU(), l2, CReLU(), l3)
    x, y = batch((5,), n=6)
    with torch.no_grad():
        z1 = l1(x)
        z2 = l2(torch.relu(z1))
    codes = torch.cat([z1 > 0, z2 > 0], dim=1).double().numpy()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    distinct = len({tuple(row) for row in codes})
    if singular:  # seed 7: two examples share every code; numpy's slogdet says sign 1, log|det| -21.6
        assert distinct == 5
        assert zc.naswot(model, x, y) == zc.NASWOT_SINGULAR
        return
    assert distinct == 6
    sign, logdet = np.linalg.slogdet(k)
    assert sign > 0 and round(float(np.linalg.det(k))) >= 1
    assert zc.naswot(model, x, y) == pytest.approx(logdet, rel=1e-10)


class ReLUConvBN(nn.Sequential):
    """A container named like NAS-Bench-201's op: the same input as the nn.ReLU inside it."""


def test_naswot_counts_each_relu_unit_once(batch):
    # the reference matches 'ReLU' in str(type(module)), which also hooks such containers (units twice)
    torch.manual_seed(0)
    lin = nn.Linear(4, 6)
    model = nn.Sequential(ReLUConvBN(nn.ReLU(), lin), nn.ReLU())
    x, y = batch((4,), n=5)
    with torch.no_grad():
        codes = torch.cat([x > 0, lin(torch.relu(x)) > 0], dim=1).double().numpy()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = np.linalg.slogdet(k)
    assert sign > 0
    assert zc.naswot(model, x, y) == pytest.approx(logdet, rel=1e-10)


def test_naswot_counts_stay_exact_under_a_callers_autocast():
    # 0/1 Gram entries above 256 are not exact in bfloat16: the kernel's matmul must leave autocast
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU(), nn.Linear(3000, 2))
    x = torch.randn(6, 3000)
    y = torch.zeros(6, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = zc.naswot(model, x, y)
    assert under == zc.naswot(model, x, y)


def test_naswot_float64_path_for_huge_layers(monkeypatch, mlp, batch):
    # layers with >= 2**24 units per example accumulate in float64; same value as the float32 path
    model = mlp()
    x, y = batch((6,), n=8)
    fast = zc.naswot(model, x, y)
    monkeypatch.setattr(naswot_module, "_FLOAT32_EXACT", 1)
    assert zc.naswot(model, x, y) == fast


def test_naswot_identical_inputs_singular_kernel(caplog, mlp):
    model = mlp()
    x = torch.randn(1, 6, generator=torch.Generator().manual_seed(0)).repeat(4, 1)
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        value = zc.naswot(model, x, torch.zeros(4, dtype=torch.long))
    assert value == zc.NASWOT_SINGULAR == float("-inf")
    assert "singular" in caplog.text


def test_naswot_random_inputs_seeded(mlp, batch):
    model = mlp()
    x, y = batch((6,))
    a = zc.naswot(model, x, y, random_inputs=True, seed=3)
    assert a == zc.naswot(model, x * 100, y, random_inputs=True, seed=3)  # data ignored, seed decides
    assert a != zc.naswot(model, x, y, random_inputs=True, seed=4)
    gaussian = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert a == zc.naswot(model, gaussian, y)


def test_naswot_without_relu_raises(batch):
    with pytest.raises(ValueError, match="ReLU"):
        zc.naswot(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), *batch((3,)))


class _ModuleNet(nn.Module):
    """Two hidden layers with ``nn.ReLU`` modules (one of them in place)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 9), nn.Linear(9, 7), nn.Linear(7, 3)
        self.act1, self.act2 = nn.ReLU(), nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc3(self.act2(self.fc2(self.act1(self.fc1(x)))))


class _FunctionalNet(_ModuleNet):
    """The same network calling the functional forms (each a different spelling)."""

    def __init__(self, second: str) -> None:
        super().__init__()
        self.second = second

    def forward(self, x):
        h = F.relu(self.fc1(x))
        z = self.fc2(h)
        h = {"torch.relu": torch.relu, "method": lambda t: t.relu(), "inplace": F.relu_,
             "leaky": lambda t: F.leaky_relu(t, 0.01)}[self.second](z)
        return self.fc3(h)


def _hand_kernel_logdet(pre_activations):
    """log det of sum_l c c^T + (1-c)(1-c)^T over the layers' pre-activations, in numpy."""
    n = pre_activations[0].shape[0]
    k = np.zeros((n, n))
    for z in pre_activations:
        c = (z.reshape(n, -1).numpy() > 0).astype(float)
        k += c @ c.T + (1 - c) @ (1 - c).T
    return np.linalg.slogdet(k)[1]


@pytest.mark.parametrize("second", ["torch.relu", "method", "inplace", "leaky"])
def test_naswot_sees_functional_relu_calls(second):
    torch.manual_seed(0)
    functional = _FunctionalNet(second)
    modular = _ModuleNet()
    modular.load_state_dict(functional.state_dict())
    x = torch.randn(12, 6)
    y = torch.zeros(12, dtype=torch.long)
    with torch.no_grad():
        z1 = functional.fc1(x)
        z2 = functional.fc2(torch.relu(z1))
    expected = _hand_kernel_logdet([z1, z2])
    assert zc.naswot(functional, x, y) == pytest.approx(expected, rel=1e-9)
    # the nn.ReLU modules' own F.relu calls are not counted a second time
    assert zc.naswot(modular, x, y) == pytest.approx(expected, rel=1e-9)


def test_naswot_functional_interception_ends_with_the_call():
    from objectives.core.hooks import activation_calls
    seen = []
    with activation_calls(seen.append):
        F.relu(torch.ones(2))
    F.relu(torch.ones(3))
    assert [t.shape[0] for t in seen] == [2]
