"""User torch ``Dataset`` objects too large for memory, kept as datasets and streamed (decoded on the fly).

:func:`nas.data.from_torch` calls :func:`stream_torch` when the examples, as float32 tensors, would take
more than the memory limit (:func:`~nas.data.stream.memory_limit`). The labels are read once (from the
dataset's ``targets`` attribute when it has one, as torchvision's ``ImageFolder`` does, else by one pass
over the examples); the normalization statistics come from a seeded sample of the train split.

To reach other processes a streamed dataset is pickled (:func:`save_streamed`, ``<sha1>.stream.pt``): its
``Dataset`` classes must be importable there (defined in a module, not in ``__main__`` of a notebook),
as for a ``DataLoader`` with workers.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .dataset import DatasetError, stratified_split
from .stream import Normalized, StreamedDataset, as_input, channel_stats, loader_workers, tensor_bytes

__all__ = ["estimated_bytes", "load_streamed", "save_streamed", "stream_torch", "streamed_digest"]

STREAM_SUFFIX = ".stream.pt"
_FORMAT = "gradnas-streamed-1"


def _base(part: Any) -> Any:
    """A map-style dataset (``len`` and ``[i]``) behind ``part`` (a ``DataLoader``'s ``.dataset``), or None."""
    from torch.utils.data import DataLoader, IterableDataset

    ds = part.dataset if isinstance(part, DataLoader) else part
    if isinstance(ds, IterableDataset) or not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
        return None
    return ds


def estimated_bytes(train: Any, test: Any) -> int | None:
    """Bytes of both parts as float32 tensors, from the first example's shape; None when they are not
    map-style torch datasets (arrays, iterable datasets: read into memory as before)."""
    from torch.utils.data import Dataset as TorchDataset

    parts = [p for p in (train, test) if p is not None]
    bases = [_base(p) if isinstance(p, TorchDataset) or hasattr(p, "dataset") else None for p in parts]
    if any(b is None for b in bases) or not len(bases[0]):
        return None
    try:
        shape = as_input(bases[0][0][0]).shape
    except Exception:  # noqa: BLE001 - not readable as a tensor: from_arrays says why
        return None
    return tensor_bytes(sum(len(b) for b in bases), shape)


def _labels(ds: Any, workers: int) -> torch.Tensor:
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == len(ds):
        return torch.as_tensor(list(targets) if not isinstance(targets, torch.Tensor) else targets)
    loader = torch.utils.data.DataLoader(ds, batch_size=256, num_workers=workers,
                                         collate_fn=lambda items: [torch.as_tensor(it[1]) for it in items])
    return torch.stack([y for batch in loader for y in batch])


def stream_torch(train: Any, test: Any, *, name: str, loss: str | None, augment: str, num_classes: int | None = None,
                 test_fraction: float, seed: int, need: int, limit: int, class_names: Any = None) -> StreamedDataset:
    """A :class:`StreamedDataset` of user torch datasets (module docstring); arguments as
    :func:`nas.data.from_arrays`, plus the estimate ``need`` and the ``limit`` it exceeds.

    Raises:
        DatasetError: Labels outside ``[0, num_classes)``, fewer than 2 classes, a test part too small.
    """
    from .arrays import is_regression

    workers = loader_workers()
    train_ds = _base(train)
    y = _labels(train_ds, workers)
    regression = is_regression(loss, y)
    if test is None:
        n_test = max(1, round(float(test_fraction) * len(y)))
        if not 0.0 < float(test_fraction) < 1.0 or n_test >= len(y):
            raise DatasetError(f"{name}: cannot hold out a test fraction {test_fraction!r} of {len(y)} examples")
        gen = torch.Generator().manual_seed(int(seed))
        if regression:
            order = torch.randperm(len(y), generator=gen)
            train_idx, test_idx = order[n_test:], order[:n_test]
        else:
            train_idx, test_idx = stratified_split(y.long(), n_test, gen)
        test_ds = torch.utils.data.Subset(train_ds, test_idx.tolist())
        train_ds, y = torch.utils.data.Subset(train_ds, train_idx.tolist()), y[train_idx]
    else:
        test_ds = _base(test)
    first = as_input(train_ds[0][0])
    dim = 2 if first.shape[:2] == (1, 1) and torch.as_tensor(train_ds[0][0]).ndim == 1 else 0
    if regression:
        k = int(torch.as_tensor(train_ds[0][1]).numel())
    else:
        k = int(num_classes) if num_classes is not None else int(y.max()) + 1
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise DatasetError(f"{name}: train label {int(y.max())} is out of range for {k} classes; labels must be 0..K-1")
        if k < 2:
            raise DatasetError(f"{name} has {k} class(es): a classifier needs at least 2 classes")
    mean, std = channel_stats(train_ds, dim, seed=int(seed), workers=workers)
    shape = tuple(int(s) for s in first.shape)
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    what = f"{k} target(s), loss {loss}" if regression else f"{k} classes"
    return StreamedDataset(
        name=name, train=Normalized(train_ds, mean, std, dim, regression), test=Normalized(test_ds, mean, std, dim, regression),
        num_classes=k, input_shape=shape, augment=augment,
        source=(f"{name}: streamed torch datasets {'x'.join(map(str, shape))}, {what}, {len(train_ds):,} train / "
                f"{len(test_ds):,} test; {need / 2**30:.2f} GiB as tensors > max_memory {limit / 2**30:.2f} GiB"),
        mean=mean, std=std, class_names=names, loss=loss, task="regression" if regression else "classification",
        workers=workers, estimated_bytes=need,
    )


def _payload(ds: StreamedDataset) -> bytes:
    buffer = io.BytesIO()
    fields = {k: getattr(ds, k) for k in ds.__dataclass_fields__}
    torch.save({"format": _FORMAT, **fields}, buffer)
    return buffer.getvalue()


def streamed_digest(ds: StreamedDataset) -> str:
    """The SHA-1 of the pickled dataset (its classes, file lists and settings)."""
    try:
        return hashlib.sha1(_payload(ds)).hexdigest()
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise DatasetError(f"{ds.name}: its torch datasets cannot be pickled ({exc}); define their classes in a "
                           "module (not a notebook or a lambda) so other processes can load them") from exc


def save_streamed(ds: StreamedDataset, path: str | Path) -> Path:
    """Pickles ``ds`` to ``path`` (a temporary file, then a rename) unless it exists."""
    path = Path(path)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(_payload(ds))
        os.replace(tmp, path)
    return path


def load_streamed(path: str | Path, reference: str) -> StreamedDataset:
    """Reads a file of :func:`save_streamed` (a pickle this gradnas wrote under the runs folder).

    Raises:
        DatasetError: Missing, unreadable, or its dataset classes cannot be imported here.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{reference}: no such file; a saved dataset must be on a filesystem every worker sees")
    try:
        p = torch.load(path, map_location="cpu", weights_only=False)  # our own pickle of the user's datasets
    except Exception as exc:  # noqa: BLE001
        raise DatasetError(f"{reference}: cannot load it ({type(exc).__name__}: {exc}); the dataset classes must be "
                           "importable in every process") from exc
    if not isinstance(p, dict) or p.pop("format", None) != _FORMAT:
        raise DatasetError(f"{reference} is not a streamed dataset saved by gradnas; register the data again")
    return StreamedDataset(**p)
