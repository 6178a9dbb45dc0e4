"""Datasets read through ``torchvision.datasets``: cifar10, cifar100, mnist, fashion_mnist, svhn.

Each is read from ``root`` (torchvision's layout, e.g. ``root/cifar-10-batches-py/``) and downloaded
there when missing and allowed. Before a download, a reachability check of at most
:data:`NETWORK_TIMEOUT_S` seconds (name resolution included, in a daemon thread) turns a missing network
into a one-line :class:`~nas.data.dataset.DatasetError` instead of a hang.
"""

from __future__ import annotations

import logging
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .dataset import Dataset, DatasetError, normalize_images

logger = logging.getLogger(__name__)

__all__ = ["NAMES", "NETWORK_TIMEOUT_S", "load_torchvision", "on_disk", "unavailable_reason"]

#: Seconds allowed for the "can the dataset be downloaded?" reachability check.
NETWORK_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class _TorchvisionSpec:
    class_name: str  # attribute of torchvision.datasets
    augment: str
    split_kw: str  # "train" (bool argument) or "split" (SVHN: "train"/"test")
    folder: str  # where torchvision keeps the files under root, for messages


_TORCHVISION: dict[str, _TorchvisionSpec] = {
    "cifar10": _TorchvisionSpec("CIFAR10", "crop_flip", "train", "cifar-10-batches-py/"),
    "cifar100": _TorchvisionSpec("CIFAR100", "crop_flip", "train", "cifar-100-python/"),
    "mnist": _TorchvisionSpec("MNIST", "none", "train", "MNIST/raw/"),
    "fashion_mnist": _TorchvisionSpec("FashionMNIST", "none", "train", "FashionMNIST/raw/"),
    "svhn": _TorchvisionSpec("SVHN", "crop", "split", "train_32x32.mat, test_32x32.mat"),
}
#: The dataset names this module loads.
NAMES = tuple(_TORCHVISION)


def _tv_class(name: str) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, _TORCHVISION[name].class_name)


def _tv_urls(name: str) -> list[str]:
    """URLs a torchvision dataset class downloads from (only the hosts matter)."""
    cls = _tv_class(name)
    if hasattr(cls, "mirrors"):  # MNIST family
        return list(cls.mirrors)
    if hasattr(cls, "split_list"):  # SVHN
        return [entry[0] for entry in cls.split_list.values()]
    return [cls.url]


def _tv_split_kwargs(name: str, train: bool) -> dict[str, Any]:
    if _TORCHVISION[name].split_kw == "split":
        return {"split": "train" if train else "test"}
    return {"train": train}


def _tv_archives_present(name: str, root: Path) -> bool:
    """True when the downloaded archives already lie under ``root`` (torchvision then only extracts)."""
    cls = _tv_class(name)
    if name in ("cifar10", "cifar100"):
        return (root / cls.filename).is_file()
    if name in ("mnist", "fashion_mnist"):
        raw = root / cls.__name__ / "raw"
        return all((raw / fname).is_file() for fname, _ in cls.resources)
    return False  # SVHN's .mat files are the data themselves


def on_disk(name: str, root: Path) -> bool:
    """True when a torchvision dataset's files are under ``root`` (checked the way torchvision does)."""
    cls = _tv_class(name)
    if name in ("cifar10", "cifar100"):
        probe = object.__new__(cls)
        probe.root = str(root)
        return bool(probe._check_integrity())
    if name in ("mnist", "fashion_mnist"):
        probe = object.__new__(cls)
        probe.root = str(root)
        return bool(probe._check_exists())
    if name == "svhn":
        from torchvision.datasets.utils import check_integrity

        return all(check_integrity(str(root / fn), md5) for _, fn, md5 in cls.split_list.values())
    raise KeyError(name)


def _network_target(url: str) -> tuple[str, int]:
    """Host and port a download of ``url`` connects to first (the proxy when one is configured)."""
    parsed = urllib.parse.urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        proxied = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        return proxied.hostname or "", proxied.port or (443 if proxied.scheme == "https" else 80)
    return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)


def _download_problem(urls: list[str], timeout: float = NETWORK_TIMEOUT_S) -> str | None:
    """Checks quickly whether any of ``urls`` can be reached.

    Opens a TCP connection (name resolution included) in a daemon thread and waits at most ``timeout``
    seconds in all, so a missing network or a hanging resolver never blocks the caller.

    Args:
        urls: Download URLs; the first reachable host wins.
        timeout: Seconds allowed in total.

    Returns:
        ``None`` when a host answered, otherwise a short reason (e.g. ``"no network: ..."``).
    """
    targets = list(dict.fromkeys(_network_target(u) for u in urls))
    result: dict[str, str | None] = {}

    def probe() -> None:
        errors = []
        for host, port in targets:
            try:
                with socket.create_connection((host, port), timeout=timeout):
                    result["problem"] = None
                    return
            except OSError as exc:
                errors.append(f"{host}:{port}: {exc}")
        result["problem"] = "; ".join(errors) or "no download URL"

    thread = threading.Thread(target=probe, name="gradnas-net-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if "problem" not in result:
        return f"no answer from {targets[0][0]} within {timeout:g} s"
    problem = result["problem"]
    return None if problem is None else f"no network: {problem}"


def _to_float_nchw(data: Any, channels_last: bool) -> torch.Tensor:
    """uint8 images (N x H x W; N x H x W x C when ``channels_last``, else N x C x H x W) -> float32 NCHW."""
    x = torch.as_tensor(data)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif channels_last:
        x = x.permute(0, 3, 1, 2)
    return x.contiguous().to(torch.float32).div_(255.0)


def _labels(ds: Any) -> torch.Tensor:
    labels = getattr(ds, "targets", None)
    if labels is None:
        labels = ds.labels  # SVHN
    return torch.as_tensor(labels, dtype=torch.int64).reshape(-1).clone()


def load_torchvision(name: str, root: Path, download: bool) -> Dataset:
    """Loads a torchvision dataset from ``root`` (downloading it when missing and ``download``).

    Args:
        name: One of :data:`NAMES`.
        root: torchvision root directory (absolute).
        download: Whether a missing dataset may be downloaded into ``root``.

    Returns:
        Both splits as a :class:`~nas.data.dataset.Dataset`, normalized with the train statistics.

    Raises:
        DatasetError: The dataset is not under ``root`` and downloading is off, impossible or failed.
    """
    spec = _TORCHVISION[name]
    cls = _tv_class(name)

    def build(train: bool, dl: bool) -> Any:
        return cls(root=str(root), download=dl, **_tv_split_kwargs(name, train))

    try:
        splits = (build(True, False), build(False, False))
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted ..."
        missing = f"{name} not found (or corrupted) under {root} (expected {spec.folder})"
        if not download:
            raise DatasetError(
                f"{missing} and download is off. Put the dataset there, allow downloading, "
                "or use --dataset mnist5k (offline)"
            ) from exc
        problem = None if _tv_archives_present(name, root) else _download_problem(_tv_urls(name))
        if problem is not None:
            raise DatasetError(
                f"{name} not found under {root} and could not be downloaded ({problem}). "
                "Put the dataset there, or use --dataset mnist5k (offline)"
            ) from exc
        logger.info("downloading %s to %s", name, root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            splits = (build(True, True), build(False, True))
        except (OSError, RuntimeError, ValueError) as exc2:  # URLError is an OSError
            reason = " ".join(str(exc2).split())[:200]
            raise DatasetError(
                f"{name} not found under {root} and could not be downloaded ({type(exc2).__name__}: "
                f"{reason}). Put the dataset there, or use --dataset mnist5k (offline)"
            ) from exc2

    train, test = splits
    channels_last = name in ("cifar10", "cifar100")  # torchvision keeps CIFAR as N x H x W x C
    train_x = _to_float_nchw(train.data, channels_last)
    test_x = _to_float_nchw(test.data, channels_last)
    train_y, test_y = _labels(train), _labels(test)
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes else int(max(train_y.max(), test_y.max())) + 1
    stats = normalize_images(train_x, test_x)  # its models can read image files of the same size
    return Dataset(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=num_classes,
        input_shape=tuple(int(s) for s in train_x.shape[1:]),  # type: ignore[arg-type]
        augment=spec.augment,
        source=f"torchvision {cls.__name__} at {root}",
        class_names=tuple(str(c) for c in classes) if classes else None,
        **stats,
    )


def unavailable_reason(name: str, root: Path, download: bool) -> str | None:
    """Why a torchvision dataset cannot be had from ``root`` now, or None when it can.

    It can when its files are under ``root``, or (with ``download``) when its archives are there or a
    download host answers within :data:`NETWORK_TIMEOUT_S` seconds.

    Args:
        name: One of :data:`NAMES`.
        root: torchvision root directory (absolute).
        download: Whether downloading is allowed.

    Returns:
        None, or a short reason: ``"no network: ..."``, ``"download check failed: ..."`` or
        ``"downloading is off"``.
    """
    if on_disk(name, root) or (download and _tv_archives_present(name, root)):
        return None
    if not download:
        return "downloading is off"
    problem = _download_problem(_tv_urls(name))
    if problem is None:
        return None
    return problem if problem.startswith("no network") else f"download check failed: {problem}"
