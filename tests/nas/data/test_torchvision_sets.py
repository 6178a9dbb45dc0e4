"""Tests of the torchvision-backed datasets (nas/data/torchvision_sets.py) with a fake CIFAR-10 on disk,
and of the download reachability check. No network is used (see conftest.py).
"""

from __future__ import annotations

import socket
import time
import urllib.error

import pytest
import torch

import nas.data.torchvision_sets as torchvision_sets
from nas.data import DatasetError, load_dataset


def assert_one_line(message: str) -> None:
    assert message and "\n" not in message


# ------------------------------------------------------------------------------------------------------------
# torchvision path with a fake CIFAR-10 on disk
# ------------------------------------------------------------------------------------------------------------


def test_fake_cifar10_loads_through_torchvision(tmp_path, relaxed_md5, no_network, fresh_cache, fake_cifar10):
    raw = fake_cifar10(tmp_path)
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
        "class_names": list(ds.class_names),
        "mean": list(ds.mean),
        "std": list(ds.std),
    }
    # its models can read image files: the recipe undoes exactly the affine map above
    assert ds.preprocess == {"kind": "image", "mode": "RGB", "size": [32, 32], "divide_by": 255.0,
                             "mean": list(ds.mean), "std": list(ds.std)}
    assert torch.allclose(torch.tensor(ds.mean, dtype=torch.float64), m.flatten(), atol=1e-6)
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

    monkeypatch.setattr(torchvision_sets, "_download_problem", lambda urls, timeout=None: None)
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", fail)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", tmp_path)
    message = str(info.value)
    assert_one_line(message)
    assert "could not be downloaded (URLError" in message and "connection reset (test)" in message
    assert message.endswith("or use --dataset mnist5k (offline)")


# ------------------------------------------------------------------------------------------------------------
# Download check
# ------------------------------------------------------------------------------------------------------------


def test_download_check_never_hangs(monkeypatch):
    def hang(address, timeout=None, *args, **kwargs):
        time.sleep(5)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    problem = torchvision_sets._download_problem(["https://www.cs.toronto.edu/x.tar.gz"], timeout=0.2)
    assert time.monotonic() - start < 4.0  # returns before the 5 s hang ends
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
    assert torchvision_sets._download_problem(["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]) is None
    assert seen == [("www.cs.toronto.edu", 443)]
