"""What every protocol receives: the data, the seeds, quick or full sizes, and a shared cache."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset, load_dataset

__all__ = ["Context", "small_cnn", "sgd_steps"]


@dataclasses.dataclass
class Context:
    """The run's settings, shared by the protocols.

    Attributes:
        dataset: dataset name; data: the loaded :class:`~nas.data.Dataset`.
        seeds: independent seeds of the per-seed protocols.
        quick: small sizes (every claim on CPU in minutes) instead of the full protocol.
        population: configs of the population protocols (thesis claims over many networks).
        data_dir: where torchvision datasets live.
        out_dir: the run's folder (a :class:`pathlib.Path`; None: nothing persisted): long shared work (the
            population) is written there as it goes and read back on a rerun.
        cache: values shared between protocols (e.g. the trained population), filled on first use.
        progress: ``progress(text)`` for long steps.
    """

    dataset: str
    data: Dataset
    seeds: int
    quick: bool
    population: int
    data_dir: str = "data"
    out_dir: Any = None
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)
    progress: Callable[[str], None] = lambda text: None

    @classmethod
    def make(cls, dataset: str, seeds: int | None, quick: bool, population: int | None = None,
             data_dir: str = "data", progress: Callable[[str], None] | None = None) -> "Context":
        data = load_dataset(dataset, data_dir)
        return cls(dataset=dataset, data=data, seeds=int(seeds or (5 if quick else 10)), quick=quick,
                   population=int(population or (48 if quick else 96)), data_dir=data_dir,
                   progress=progress or (lambda text: None))

    def size(self, quick: int, full: int) -> int:
        """``quick`` with --quick, else ``full``."""
        return quick if self.quick else full

    def batch(self, n: int, seed: int = 0, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random examples of a split (fixed by ``seed``)."""
        x, y = (self.data.train_x, self.data.train_y) if split == "train" else (self.data.test_x, self.data.test_y)
        idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
        return x[idx], y[idx]


def small_cnn(convs: list[int], in_channels: int, num_classes: int, seed: int, fc: int = 64) -> nn.Sequential:
    """Paper 000's CNN-3/4/5 scaled down: 3x3 convs + ReLU, 2x2 max-pooling after the first two convs,
    adaptive average pooling to 3x3 after the last, then FC(fc) + ReLU and the classifier. Works on any
    image size >= 4x4."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    c_in = in_channels
    for i, c in enumerate(convs):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(c_in * 9, fc), nn.ReLU(), nn.Linear(fc, num_classes)]
    return nn.Sequential(*layers)


def sgd_steps(model: nn.Module, ctx: Context, steps: int, *, batch: int = 64, lr: float = 0.01, seed: int = 0,
              after_backward: Callable[[], None] | None = None) -> list[float]:
    """Paper 000's recipe (SGD, momentum 0.9, lr 0.01, batch 64) for ``steps`` steps; ``after_backward()``
    runs after each backward, before the step. Returns the losses (stops at a non-finite one)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x_all, y_all = ctx.data.train_x, ctx.data.train_y
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x_all.shape[0], (batch,), generator=gen)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
        if not math.isfinite(loss.item()):
            break
        loss.backward()
        if after_backward is not None:
            after_backward()
        opt.step()
        losses.append(loss.item())
    opt.zero_grad(set_to_none=True)
    return losses
