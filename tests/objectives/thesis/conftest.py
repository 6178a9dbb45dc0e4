"""Small networks, batches and slow reference loops shared by the thesis-metric tests.

Each fixture returns a factory (call it in the test), so a test reads ``model = small_net()``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 4))


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 2, 2, generator=g), torch.randint(0, 4, (n,), generator=g)


class Constant(nn.Module):
    """Output is a learned bias, independent of the input: every example has the same gradient."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor([0.3, -0.2, 0.1, 0.0]))

    def forward(self, x):
        return self.b.expand(x.shape[0], -1) + 0 * x.reshape(x.shape[0], -1)[:, :1]


class Quadratic(nn.Module):
    """Output is the weight vector itself: with loss 0.5 w'Hw the gradient is H w in closed form."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return self.w.expand(x.shape[0], -1)


def _quadratic_problem():
    """``(model, x, t, loss, h, w)`` for the loss 0.5 w'Hw with a random SPD H (6 x 6)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64)
    h = (a @ a.T + torch.eye(6, dtype=torch.float64)).float()
    w = torch.randn(6, generator=g)
    loss = lambda out, t: 0.5 * ((out @ h) * out).sum(-1).mean()  # noqa: E731
    return Quadratic(w), torch.zeros(4, 1), torch.zeros(4), loss, h, w


def _flat_grad(m):
    return torch.cat([p.grad.reshape(-1) for p in m.parameters()]).double()


def _perturbed_reference(model, x, y, omega):
    """Batch gradient at w + omega by a deep copy, an in-place step and a plain backward."""
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        offset = 0
        for p in m.parameters():
            p.add_(omega[offset : offset + p.numel()].view_as(p))
            offset += p.numel()
    F.cross_entropy(m(x), y).backward()
    return _flat_grad(m)


def _mean_perturbations(model, x, y, eta=1e-3):
    """The thesis's ``mean`` directions by hand: (g0, w, [omega_+, omega_-], [gbar(w + omega)])."""
    ref_model = copy.deepcopy(model)
    F.cross_entropy(ref_model(x), y).backward()
    g0 = _flat_grad(ref_model)
    w = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    omegas = [eta * g0 / g0.abs().max(), -eta * g0 / g0.abs().max()]
    return g0, w, omegas, [_perturbed_reference(model, x, y, o.float()) for o in omegas]


def _per_example_loop(model, x, y):
    """Per-example weight gradients, one backward per example."""
    rows = []
    for i in range(x.shape[0]):
        m = copy.deepcopy(model).eval()
        F.cross_entropy(m(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(_flat_grad(m))
    return torch.stack(rows)


def _group_loop(model, x, y, group_size):
    """Batch gradient of each consecutive group of ``group_size`` examples, one backward per group."""
    groups = []
    for k in range(x.shape[0] // group_size):
        m = copy.deepcopy(model)
        sl = slice(group_size * k, group_size * (k + 1))
        F.cross_entropy(m(x[sl]), y[sl]).backward()
        groups.append(_flat_grad(m))
    return groups


def _input_grad_loop(model, x, y):
    """Per-example input gradients, one backward per example."""
    rows = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        F.cross_entropy(model(xi), y[i : i + 1]).backward()
        rows.append(xi.grad[0])
    return rows


@pytest.fixture
def small_net():
    return _small_net


@pytest.fixture
def data():
    return _data


@pytest.fixture
def constant_net():
    return Constant


@pytest.fixture
def quadratic_problem():
    return _quadratic_problem


@pytest.fixture
def mean_perturbations():
    return _mean_perturbations


@pytest.fixture
def per_example_loop():
    return _per_example_loop


@pytest.fixture
def group_loop():
    return _group_loop


@pytest.fixture
def input_grad_loop():
    return _input_grad_loop
