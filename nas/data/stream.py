"""Data that does not fit in memory: a :class:`StreamedDataset` read through a torch ``DataLoader``.

Every loader estimates the bytes its two splits would take as float32 tensors (:func:`tensor_bytes`) and
compares them with the memory limit (:func:`memory_limit`: the reference's ``max_memory=`` option, e.g.
``folder:PATH?max_memory=2G``, else a quarter of this machine's memory). Below the limit the data is a
:class:`~nas.data.dataset.Dataset` of whole tensors (the fast path, unchanged); above it, a
:class:`StreamedDataset`: the train and test splits stay torch ``Dataset`` objects that decode each
example when it is read (an image file, a user's ``__getitem__``), normalized on the fly with statistics
taken from a seeded sample of the train split (:func:`channel_stats`, at most :data:`STATS_SAMPLE`
examples; all of them when there are fewer).

Both classes answer the same calls, which is all the consumers (scoring, early steps, training, diagnose)
use: ``train_size``/``test_size``, ``take(split, idx)`` (a few examples by index: the probe batch) and
``batches(split, index_batches, device)`` (one ``(x, y)`` per index batch, in order). In memory that is
``x[idx]``; streamed, a ``DataLoader`` whose ``batch_sampler`` is the index batches, with worker
processes (:func:`loader_workers`) and pinned memory when the device is CUDA. The same indices give the
same examples on both paths: results agree to float rounding of the normalization statistics, except that
a streamed loader reads its indices ahead, so a consumer that draws augmentation and batch order from one
generator sees another interleaving (only with ``augment`` other than ``none``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Iterable, Iterator

import torch

from .dataset import DatasetError, DatasetFacts

__all__ = [
    "STATS_SAMPLE", "Normalized", "StreamedDataset", "channel_stats", "default_memory_limit", "loader_workers",
    "memory_limit", "parse_memory", "tensor_bytes",
]

#: Train examples (at most) whose pixels give a streamed dataset's normalization statistics.
STATS_SAMPLE = 2048
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def parse_memory(value: Any, what: str = "max_memory") -> int:
    """Bytes from ``512M``, ``4G``, ``1.5GiB``, ``2e9`` or an int (binary units: K = 1024).

    Raises:
        DatasetError: Not a positive size.
    """
    if isinstance(value, bool):
        raise DatasetError(f"{what} must be a size such as 512M or 4G, got {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(value))
        if not match:
            raise DatasetError(f"{what} must be a size such as 512M, 4G or a number of bytes, got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = number * _UNITS[unit]
    if not (math.isfinite(size) and size >= 1):
        raise DatasetError(f"{what} must be a positive size such as 512M or 4G, got {value!r}")
    return int(size)


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None when the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def default_memory_limit() -> int:
    """A quarter of this machine's memory (4 GiB when unknown): every worker process loads its own copy."""
    total = physical_memory()
    return total // 4 if total else 4 * 2**30


def memory_limit(value: Any = None) -> int:
    """The limit in bytes: ``value`` (a ``max_memory`` option) parsed, or :func:`default_memory_limit`."""
    return default_memory_limit() if value is None else parse_memory(value)


def tensor_bytes(examples: int, shape: Iterable[int]) -> int:
    """Bytes of ``examples`` float32 inputs of ``shape``."""
    return int(examples) * math.prod(int(s) for s in shape) * 4


def loader_workers() -> int:
    """DataLoader worker processes of a streamed dataset: half the CPU cores, at most 4, at least 1."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def as_input(x: Any) -> torch.Tensor:
    """One example as a float32 ``C x H x W`` tensor (``F`` features -> ``1 x 1 x F``, ``H x W`` -> ``1 x H x W``)."""
    x = torch.as_tensor(x).to(torch.float32)
    if x.ndim == 1:
        return x.reshape(1, 1, -1)
    if x.ndim == 2:
        return x.unsqueeze(0)
    if x.ndim != 3:
        raise DatasetError(f"an example has shape {tuple(x.shape)}: give F features, H x W or C x H x W inputs")
    return x


class Normalized(torch.utils.data.Dataset):
    """``base[i]`` as ``(x, y)``: ``x`` float32 ``C x H x W``, normalized along ``dim`` (0: channels, 2:
    features) with ``(x - mean_c) / std_c`` (the in-memory loaders' operation, example by example); ``y``
    an int64 class index, or float32 targets (regression)."""

    def __init__(self, base: Any, mean: Iterable[float] | None, std: Iterable[float] | None, dim: int = 0,
                 regression: bool = False) -> None:
        self.base, self.dim, self.regression = base, int(dim), bool(regression)
        self.mean = None if mean is None else [torch.tensor(float(m)) for m in mean]
        self.std = None if std is None else [torch.tensor(float(s)) for s in std]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.base[int(i)]
        x = as_input(item[0]).clone()
        if self.mean is not None:
            for c, (m, s) in enumerate(zip(self.mean, self.std)):
                x.select(self.dim, c).sub_(m).div_(s)
        y = torch.as_tensor(item[1])
        y = y.to(torch.float32).reshape(-1) if self.regression else y.to(torch.int64).reshape(())
        return x, y


def channel_stats(base: Any, dim: int = 0, seed: int = 0, sample: int = STATS_SAMPLE,
                  workers: int = 0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (``dim`` 0) or per-feature (``dim`` 2) mean and population std of ``base``'s inputs over a
    seeded sample of at most ``sample`` examples (every example when there are fewer), summed in float64.

    Returns:
        ``(mean, std)``, std clamped to at least 1e-12 (as :func:`~nas.data.dataset.normalize_along`).
    """
    n = len(base)
    idx = torch.arange(n) if n <= sample else torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:sample]
    raw = Normalized(base, None, None, dim)
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(raw, idx.tolist()), batch_size=64,
                                         num_workers=workers)
    total = sq = None
    count = 0
    for x, _ in loader:
        axes = [a for a in range(x.ndim) if a != dim + 1]
        x = x.double()
        s, q = x.sum(dim=axes), (x * x).sum(dim=axes)
        total, sq = (s, q) if total is None else (total + s, sq + q)
        count += x.numel() // x.shape[dim + 1]
    if total is None:
        raise DatasetError("the train split is empty: give at least one example per class")
    mean = total / count
    std = (sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-12)
    return tuple(float(torch.tensor(float(m), dtype=torch.float32)) for m in mean), \
        tuple(float(torch.tensor(float(s), dtype=torch.float32)) for s in std)


class _IndexBatches:
    """A ``batch_sampler`` over index batches (tensors or lists), read lazily."""

    def __init__(self, batches: Iterable[Any]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.batches:
            yield idx.tolist() if isinstance(idx, torch.Tensor) else [int(i) for i in idx]


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedDataset(DatasetFacts):
    """A dataset whose splits are read from torch ``Dataset`` objects through a ``DataLoader`` (module
    docstring). The attributes other than ``train``/``test``/``workers`` mean what they mean on
    :class:`~nas.data.dataset.Dataset`.

    Attributes:
        train: The train split, a torch ``Dataset`` of normalized ``(x, y)`` (:class:`Normalized`).
        test: The test split likewise.
        workers: DataLoader worker processes (:func:`loader_workers`); 0 reads in the calling process.
        estimated_bytes: What the splits would take as tensors (why it streams).
    """

    name: str
    train: Any
    test: Any
    num_classes: int
    input_shape: tuple[int, int, int]
    augment: str
    source: str
    task: str = "classification"
    workers: int = dataclasses.field(default_factory=loader_workers)
    estimated_bytes: int = 0

    streamed = True

    @property
    def train_size(self) -> int:
        return len(self.train)

    @property
    def test_size(self) -> int:
        return len(self.test)

    def _splits(self) -> tuple[Any, Any]:
        return self.train, self.test

    def take(self, which: str, idx: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples ``idx`` of split ``which`` as one CPU batch ``(x, y)``, read in this process."""
        ds = self._split(which)
        items = [ds[int(i)] for i in (idx.tolist() if isinstance(idx, torch.Tensor) else idx)]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def batches(self, which: str, index_batches: Iterable[Any], device: Any = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One ``(x, y)`` per index batch, on ``device`` (CPU by default), decoded by the loader's workers."""
        dev = torch.device(device) if device is not None else torch.device("cpu")
        loader = torch.utils.data.DataLoader(
            self._split(which), batch_sampler=_IndexBatches(index_batches), num_workers=self.workers,
            pin_memory=dev.type == "cuda",
        )
        for x, y in loader:
            yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)

    def on(self, device: Any) -> "StreamedDataset":
        """Itself: streamed batches move to the device one at a time (:meth:`batches`)."""
        return self

    def _described(self) -> dict[str, Any]:
        return {"streamed": True, "estimated_bytes": int(self.estimated_bytes)}
