"""Small fixed networks and batches shared by the zero-cost proxy tests (factories, as fixtures)."""

from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _mlp(seed: int = 0, *, bn: bool = False, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(6, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [act(), nn.Linear(8, 5), act(), nn.Linear(5, 3)]
    return nn.Sequential(*layers)


def _convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )


def _batch(shape: tuple[int, ...], n: int = 8, classes: int = 3, seed: int = 1):
    """A fixed Gaussian batch of ``n`` inputs of ``shape`` and random labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g)


MODELS = {
    "mlp": (lambda: _mlp(0), (6,)),
    "mlp_bn": (lambda: _mlp(0, bn=True), (6,)),
    "convnet_bn": (_convnet, (3, 6, 6)),
}


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


@pytest.fixture(scope="session")
def mlp() -> Callable[..., nn.Sequential]:
    """``mlp(seed=0, *, bn=False, act=nn.ReLU)``: Linear(6,8) [BN] act Linear(8,5) act Linear(5,3)."""
    return _mlp


@pytest.fixture(scope="session")
def convnet() -> Callable[..., nn.Sequential]:
    """``convnet(seed=0)``: two conv + BatchNorm + ReLU stages (the first ReLU in place), pool, Linear."""
    return _convnet


@pytest.fixture(scope="session")
def batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """``batch(shape, n=8, classes=3, seed=1)``: a fixed Gaussian batch and random labels."""
    return _batch


@pytest.fixture(scope="session")
def models() -> dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]]:
    """``name -> (build, input shape)`` for "mlp", "mlp_bn" and "convnet_bn"."""
    return MODELS


@pytest.fixture(scope="session")
def layer_weights() -> Callable[[nn.Module], list[nn.Parameter]]:
    """``layer_weights(model)``: the weights of the model's Linear and Conv2d modules, in module order."""
    return _weights


@pytest.fixture(scope="session")
def manual_weight_grads() -> Callable[..., list[tuple[torch.Tensor, torch.Tensor]]]:
    """``manual_weight_grads(model, x, y)``: (W, dL/dW) of every Linear/Conv2d weight, by ``.backward()`` on
    a deep copy of the model (cross-entropy loss)."""

    def grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
        net = copy.deepcopy(model)
        net.zero_grad()
        F.cross_entropy(net(x), y).backward()
        return [(w.detach(), w.grad.detach()) for w in _weights(net)]

    return grads
