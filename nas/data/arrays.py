"""In-memory datasets from Python objects: arrays, tensors, torch ``Dataset``/``DataLoader``; saved copies.

- :func:`from_arrays` / :func:`from_torch` turn ``(x, y)`` pairs or torch datasets into a :class:`Dataset`
  (input shape and number of classes inferred, labels checked, inputs normalized with train statistics,
  a seeded stratified test part held out when no test split is given).
- :func:`check_dataset` checks a :class:`Dataset` someone else built.
- :func:`digest`, :func:`save_dataset`, :func:`load_saved`: the SHA-1 that names a dataset and its file
  (``torch.save`` of plain tensors and values, readable with ``torch.load(weights_only=True)``), which is
  how data passed from Python reaches worker processes (``saved:PATH`` references).

Input layouts: ``N x F`` (features; stored as ``N x 1 x 1 x F`` and normalized per feature), ``N x H x W``
(one channel; stored as ``N x 1 x H x W``), ``N x C x H x W`` (normalized per channel). Every batch the
rest of gradnas sees is 4-D, as the training code (channels-last on CUDA) requires.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .augment import AUGMENT_KINDS
from .dataset import Dataset, DatasetError, normalize_along, stratified_split
from .loss import LOSSES, is_regression_loss, resolve_loss
from .stream import (
    Normalized, StreamedDataset, as_input, channel_stats, loader_workers, memory_limit, tensor_bytes,
)

__all__ = ["check_dataset", "digest", "from_arrays", "from_torch", "load_saved", "save_dataset", "to_xy"]

_BATCH = 256  # examples per DataLoader batch when reading a torch Dataset
_FORMAT = "gradnas-dataset-1"


def _tensor(value: Any, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    try:
        array = np.asarray(value)
    except Exception as exc:  # noqa: BLE001  (anything numpy cannot read)
        raise DatasetError(f"{what} is a {type(value).__name__}, not an array: pass tensors or numpy arrays") from exc
    if array.dtype == object or array.dtype.kind in "USV":
        raise DatasetError(
            f"{what} holds {array.dtype} values, not numbers: pass numeric arrays "
            "(for class names, map them to 0..K-1 and pass class_names=)"
        )
    return torch.from_numpy(np.ascontiguousarray(array))


def to_xy(part: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors from an ``(x, y)`` pair, a torch ``Dataset`` or a ``DataLoader``.

    A torch ``Dataset`` is read in order through a ``DataLoader`` (batches of 256, no workers); each example
    (or batch) must be ``(input, label, ...)``.

    Raises:
        DatasetError: ``part`` is none of these, or its examples cannot be batched (the message says how
            to fix it, e.g. ``transforms.ToTensor()`` for PIL images).
    """
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset
    from torch.utils.data import IterableDataset

    if isinstance(part, (TorchDataset, IterableDataset)):
        part = DataLoader(part, batch_size=_BATCH, shuffle=False)
    if isinstance(part, DataLoader):
        xs, ys = [], []
        try:
            for i, batch in enumerate(part):
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise DatasetError(
                        f"{what}: batch {i} is a {type(batch).__name__}, not (inputs, labels): make the "
                        "dataset's __getitem__ return (x, y)"
                    )
                xs.append(_tensor(batch[0], f"{what} inputs"))
                ys.append(_tensor(batch[1], f"{what} labels"))
        except DatasetError:
            raise
        except (TypeError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DatasetError(
                f"{what}: cannot batch its examples ({first}); make each example (tensor, int label), "
                "e.g. add torchvision.transforms.ToTensor() for PIL images"
            ) from exc
        if not xs:
            raise DatasetError(f"{what} is empty: give at least one example per class")
        try:
            return torch.cat(xs), torch.cat(ys)
        except RuntimeError as exc:
            raise DatasetError(f"{what}: examples differ in shape ({exc}); resize them to one shape") from exc
    if isinstance(part, (tuple, list)) and len(part) == 2:
        return _tensor(part[0], f"{what} inputs"), _tensor(part[1], f"{what} labels")
    raise DatasetError(
        f"{what} is a {type(part).__name__}: give an (x, y) pair of tensors/arrays, a torch Dataset or a DataLoader"
    )


def _targets(y: torch.Tensor, what: str) -> torch.Tensor:
    """Regression targets: float32 ``N x T`` (``N`` -> ``N x 1``), finite."""
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.is_complex():
        raise DatasetError(f"{what} targets have shape {tuple(y.shape)}: give N or N x T real numbers for a regression loss")
    y = y.to(torch.float32, copy=True)
    if not bool(torch.isfinite(y).all()):
        raise DatasetError(f"{what} targets contain NaN or inf values; replace or drop those examples")
    return y


def is_regression(loss: str | None, y: torch.Tensor) -> bool:
    """Float targets with a loss other than cross-entropy, or any targets with a built-in regression loss."""
    if is_regression_loss(loss):
        return True
    return loss is not None and loss != "cross_entropy" and (y.is_floating_point() and not bool((y == y.round()).all()))


def _labels(y: torch.Tensor, what: str) -> torch.Tensor:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DatasetError(f"{what} labels have shape {tuple(y.shape)}: give one integer class index per example")
    if y.dtype == torch.bool:
        return y.long()
    if y.is_floating_point() or y.is_complex():
        if not bool(torch.isfinite(y).all()) or not bool((y == y.round()).all()):
            raise DatasetError(
                f"{what} labels are not integers (e.g. {float(y[(y != y.round()) | ~torch.isfinite(y)][0])}): "
                "give class indices 0..K-1, or a regression loss (loss_fn=, --loss mse) for a continuous target"
            )
    return y.long()


def _inputs(x: torch.Tensor, what: str) -> tuple[torch.Tensor, int]:
    """Float32 ``N x C x H x W`` and the dimension to normalize along (1: channels, 3: features)."""
    if x.ndim < 2 or x.ndim > 4:
        raise DatasetError(
            f"{what} inputs have shape {tuple(x.shape)}: give N x F features, N x H x W or N x C x H x W images"
        )
    if x.is_complex():
        raise DatasetError(f"{what} inputs are complex numbers: give real-valued inputs")
    x = x.to(torch.float32, copy=True)  # normalized in place later: never the caller's memory
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, 1, x.shape[1]).contiguous(), 3
    if x.ndim == 3:
        return x.unsqueeze(1).contiguous(), 1
    return x.contiguous(), 1


def from_arrays(
    train: Any,
    test: Any = None,
    *,
    name: str = "arrays",
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    normalize: bool = True,
    augment: str = "none",
    test_fraction: float = 0.2,
    seed: int = 0,
    source: str | None = None,
    loss: str | None = None,
) -> Dataset:
    """A :class:`Dataset` from ``(x, y)`` pairs (tensors, numpy arrays or anything ``np.asarray`` reads).

    Args:
        train: ``(x, y)`` of the train split (a torch ``Dataset``/``DataLoader`` works too, see
            :func:`to_xy`). ``x``: ``N x F``, ``N x H x W`` or ``N x C x H x W`` numbers; ``y``: ``N``
            integer class indices (integral floats and bools are accepted).
        test: The test split likewise, or ``None``: a seeded stratified ``test_fraction`` of ``train``.
        name: The dataset's name (shown in logs and reports).
        num_classes: Number of classes; default the largest label + 1.
        class_names: Optional name of each class.
        normalize: Normalize with the train split's mean/std per channel (per feature for ``N x F``).
        augment: Train-time augmentation (``"none"``, ``"crop"``, ``"crop_flip"``; images only).
        test_fraction: Held-out share when ``test`` is None.
        seed: Seed of that hold-out.
        source: Provenance, put before the summary of the arrays (default: ``name``).
        loss: The training loss (:mod:`nas.data.loss`); with a regression loss (or float targets with a
            loss other than cross-entropy) ``y`` is kept as float targets ``N x T`` and ``num_classes`` is
            ``T``.

    Raises:
        DatasetError: Bad shapes, non-finite inputs, labels that are not integers in ``[0, num_classes)``,
            fewer than 2 classes, unknown ``augment``, or class names of the wrong length.
    """
    train_x, train_y = to_xy(train, f"{name} train")
    train_x, dim = _inputs(train_x, f"{name} train")
    regression = is_regression(loss, train_y)
    targets = _targets if regression else _labels
    train_y = targets(train_y, f"{name} train")
    if test is None:
        if not 0.0 < float(test_fraction) < 1.0:
            raise DatasetError(f"{name}: test_fraction must be between 0 and 1, got {test_fraction!r}")
        if len(train_y) != train_x.shape[0]:
            raise DatasetError(f"{name}: {train_x.shape[0]} inputs but {len(train_y)} labels; give one label per input")
        n_test = max(1, round(float(test_fraction) * len(train_y)))
        if n_test >= len(train_y):
            raise DatasetError(f"{name}: {len(train_y)} examples are too few to hold out a test part; give more data")
        gen = torch.Generator().manual_seed(int(seed))
        if regression:
            order = torch.randperm(len(train_y), generator=gen)
            train_idx, test_idx = order[n_test:], order[:n_test]
        else:
            train_idx, test_idx = stratified_split(train_y, n_test, gen)
        test_x, test_y = train_x[test_idx], train_y[test_idx]
        train_x, train_y = train_x[train_idx], train_y[train_idx]
        split = f"stratified {len(train_y):,}/{len(test_y):,} split, seed {int(seed)}"
    else:
        test_x, test_y = to_xy(test, f"{name} test")
        test_x, _ = _inputs(test_x, f"{name} test")
        test_y = targets(test_y, f"{name} test")
        split = f"{len(train_y):,} train / {len(test_y):,} test"
    if regression:
        k = int(train_y.shape[1])
    elif num_classes is not None:
        k = int(num_classes)
    else:
        k = 1 + max((int(y.max()) for y in (train_y, test_y) if len(y)), default=-1)
    shape = tuple(int(s) for s in train_x.shape[1:])
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    check_dataset(Dataset(name, train_x, train_y, test_x, test_y, k, shape, augment, "", class_names=names,
                          loss=loss), name)
    mean, std = normalize_along(train_x, test_x, dim) if normalize else (None, None)
    kind = "features" if dim == 3 else "images"
    what = f"{k} target(s), loss {loss}" if regression else f"{k} classes"
    return Dataset(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, num_classes=k,
        input_shape=shape, augment=augment,
        source=f"{source or name}: in-memory {kind} {'x'.join(map(str, shape))}, {what}, {split}",
        mean=mean, std=std, class_names=names, loss=loss,
    )


def from_torch(train_ds: Any, test_ds: Any = None, *, max_memory: Any = None, **kwargs: Any) -> Dataset | StreamedDataset:
    """A dataset from torch ``Dataset``/``DataLoader`` objects: read once into a :class:`Dataset` when their
    examples fit ``max_memory`` as float32 tensors (default: :func:`~nas.data.stream.default_memory_limit`),
    else a :class:`~nas.data.stream.StreamedDataset` that reads them on the fly
    (:func:`~nas.data.torch_data.stream_torch`; map-style datasets only).

    Each example must be ``(input tensor, integer label)`` (float targets with a regression ``loss``).
    Keyword arguments as :func:`from_arrays`.
    """
    from .torch_data import estimated_bytes, stream_torch

    kwargs.setdefault("name", type(train_ds).__name__)
    limit = memory_limit(max_memory)
    need = estimated_bytes(train_ds, test_ds)
    if need is not None and need > limit:
        extra = {k: kwargs[k] for k in ("num_classes", "class_names") if k in kwargs}
        return stream_torch(train_ds, test_ds, name=kwargs["name"], loss=kwargs.get("loss"),
                            augment=kwargs.get("augment", "none"), test_fraction=kwargs.get("test_fraction", 0.2),
                            seed=kwargs.get("seed", 0), need=need, limit=limit, **extra)
    return from_arrays(train_ds, test_ds, **kwargs)


def check_dataset(ds: Any, what: str = "dataset") -> Dataset:
    """Checks that ``ds`` is a usable :class:`Dataset` and returns it.

    Raises:
        DatasetError: Not a Dataset, tensors of the wrong rank/dtype/length, input shape that does not match,
            non-finite inputs, labels outside ``[0, num_classes)``, fewer than 2 classes, unknown augment.
    """
    if isinstance(ds, StreamedDataset):  # checked as it was built (nas.data.torch_data, nas.data.folder)
        return ds
    if not isinstance(ds, Dataset):
        raise DatasetError(f"{what} is a {type(ds).__name__}, not a nas.data.Dataset")
    regression = isinstance(ds.train_y, torch.Tensor) and ds.train_y.is_floating_point()
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.dtype != torch.float32:
            raise DatasetError(f"{what}: {split}_x must be a float32 N x C x H x W tensor (from_arrays makes one)")
        if regression:
            if not isinstance(y, torch.Tensor) or y.ndim != 2 or y.dtype != torch.float32 or y.shape[1:] != (ds.num_classes,):
                raise DatasetError(f"{what}: {split}_y must be float32 N x {ds.num_classes} regression targets")
            if x.shape[0] != y.shape[0] or x.shape[0] == 0 or not bool(torch.isfinite(y).all()):
                raise DatasetError(f"{what}: {split} split needs as many finite targets as inputs, at least one")
            if ds.loss in (None, "cross_entropy"):
                raise DatasetError(f"{what}: float targets need a regression loss (loss='mse'), not cross-entropy")
        elif not isinstance(y, torch.Tensor) or y.ndim != 1 or y.dtype != torch.int64:
            raise DatasetError(f"{what}: {split}_y must be an int64 tensor of class indices (from_arrays makes one)")
        if x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise DatasetError(f"{what}: {split} split has {x.shape[0]} inputs and {y.shape[0]} labels; give as many of each, at least one")
        if tuple(x.shape[1:]) != tuple(ds.input_shape):
            raise DatasetError(f"{what}: {split} inputs are {tuple(x.shape[1:])} but input_shape is {tuple(ds.input_shape)}; resize them to one shape")
        if not bool(torch.isfinite(x).all()):
            raise DatasetError(f"{what}: the {split} inputs contain NaN or inf values; replace or drop them")
        low, high = (0, 0) if regression else (int(y.min()), int(y.max()))
        if low < 0 or high >= ds.num_classes:
            raise DatasetError(
                f"{what}: {split} label {low if low < 0 else high} is out of range for {ds.num_classes} classes; "
                "labels must be class indices 0..K-1"
            )
    if ds.num_classes < 2 and not regression:
        raise DatasetError(f"{what} has {ds.num_classes} class(es): a classifier needs at least 2 classes")
    if ds.augment not in AUGMENT_KINDS:
        raise DatasetError(f"{what}: unknown augment {ds.augment!r}; valid: {', '.join(AUGMENT_KINDS)}")
    if ds.augment != "none" and ds.input_shape[1] == 1:
        raise DatasetError(f"{what}: augment {ds.augment!r} crops images; feature vectors need augment='none'")
    if ds.class_names is not None and len(ds.class_names) != ds.num_classes:
        raise DatasetError(f"{what}: {len(ds.class_names)} class names for {ds.num_classes} classes; give one per class")
    return ds


def digest(ds: Dataset) -> str:
    """The SHA-1 (hex) of a dataset's four tensors, shapes, class count, input shape and augment."""
    h = hashlib.sha1()
    h.update(repr((ds.num_classes, tuple(ds.input_shape), ds.augment)).encode())
    if ds.loss is not None:  # (the names of data without a loss stay as they were)
        h.update(repr(("loss", ds.loss)).encode())
    for t in (ds.train_x, ds.train_y, ds.test_x, ds.test_y):
        h.update(repr((tuple(t.shape), str(t.dtype))).encode())
        h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
    return h.hexdigest()


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Writes ``ds`` to ``path`` (atomically: a temporary file, then a rename) unless it exists already."""
    path = Path(path)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FORMAT, "name": ds.name, "train_x": ds.train_x, "train_y": ds.train_y, "test_x": ds.test_x,
        "test_y": ds.test_y, "num_classes": int(ds.num_classes), "input_shape": list(ds.input_shape),
        "augment": ds.augment, "source": ds.source,
        "mean": None if ds.mean is None else list(ds.mean), "std": None if ds.std is None else list(ds.std),
        "class_names": None if ds.class_names is None else list(ds.class_names), "preprocess": ds.preprocess,
        "loss": ds.loss,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_saved(path: str | Path, reference: str) -> Dataset:
    """Reads a file written by :func:`save_dataset` (``torch.load(weights_only=True)``).

    Raises:
        DatasetError: The file is missing (on a cluster: not on a shared filesystem), unreadable or not a
            saved gradnas dataset.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{reference}: no such file; a saved dataset must be on a filesystem every worker sees: "
            "register it again with nas.data.register_dataset(data, folder) under a shared folder"
        )
    try:
        p = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated file, another format)
        raise DatasetError(f"{reference}: cannot read it ({type(exc).__name__}); register the data again") from exc
    if not isinstance(p, dict) or p.get("format") != _FORMAT:
        raise DatasetError(f"{reference} is not a dataset saved by nas.data.register_dataset; register the data again")
    tup = lambda v: None if v is None else tuple(v)  # noqa: E731
    ds = Dataset(
        name=p["name"], train_x=p["train_x"], train_y=p["train_y"], test_x=p["test_x"], test_y=p["test_y"],
        num_classes=int(p["num_classes"]), input_shape=tuple(p["input_shape"]), augment=p["augment"],
        source=p["source"], mean=tup(p["mean"]), std=tup(p["std"]), class_names=tup(p["class_names"]),
        preprocess=p["preprocess"], loss=p.get("loss"),
    )
    return check_dataset(ds, reference)
