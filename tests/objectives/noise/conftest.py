"""Small networks, batches, model snapshots and the mnist5k training loop shared by the noise tests.

Each fixture returns a factory or a helper (call it in the test), so a test reads ``model = mlp()``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 4))


def _bn_convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 12), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(12, 3),
    )


def _data(n: int = 32, shape=(3, 2, 2), classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_identical(model: nn.Module, before: dict[str, torch.Tensor], training: bool = True) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k, v in before.items():
        assert torch.equal(after[k], v), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training is training


def _per_example_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, P) per-example gradients of all parameters, one plain backward per example (float64)."""
    rows = []
    for i in range(x.shape[0]):
        m = copy.deepcopy(model)
        F.cross_entropy(m(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in m.parameters()]).double())
    return torch.stack(rows)


def _small_cnn(convs: list[int], seed: int = 0, fc: int = 64) -> nn.Sequential:
    """CNN-3/4/5 of [000] scaled down for 28x28 digits: 3x3 convs + ReLU, 2x2 max-pooling after
    conv 1, 2 and the last conv (3x3 maps), then FC(fc) and a 10-way classifier."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in = 1
    pool_after = {0, 1, len(convs) - 1}
    for i, c in enumerate(convs):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        if i in pool_after:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.Flatten(), nn.Linear(c_in * 3 * 3, fc), nn.ReLU(), nn.Linear(fc, 10)]
    return nn.Sequential(*layers)


def _train(model, ds, steps, batch=64, lr=0.01, tracker=None, seed=0, on_backward=None):
    """[000]'s recipe (SGD, momentum 0.9, lr 0.01, batch 64) for ``steps`` steps; ``tracker.update()``
    and ``on_backward(model)`` run after each backward, before the step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        idx = torch.randint(0, ds.train_x.shape[0], (batch,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(ds.train_x[idx]), ds.train_y[idx]).backward()
        if tracker is not None:
            tracker.update()
        if on_backward is not None:
            on_backward(model)
        opt.step()
    opt.zero_grad()
    return model


@pytest.fixture
def mlp():
    return _mlp


@pytest.fixture
def bn_convnet():
    return _bn_convnet


@pytest.fixture
def data():
    return _data


@pytest.fixture
def snapshot():
    return _snapshot


@pytest.fixture
def assert_identical():
    return _assert_identical


@pytest.fixture
def per_example_loop():
    return _per_example_loop


@pytest.fixture
def small_cnn():
    return _small_cnn


@pytest.fixture
def train():
    return _train


@pytest.fixture(scope="session")
def mnist5k():
    from nas.data import load_dataset

    return load_dataset("mnist5k")
