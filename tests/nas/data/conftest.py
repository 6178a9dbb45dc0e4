"""Fixtures of the dataset tests: no network, an empty dataset cache, relaxed md5 checks, a fake CIFAR-10.

No test here uses the network: the torchvision path is exercised with a tiny fake CIFAR-10 written in the
on-disk format torchvision reads (md5 checks relaxed to "file exists" for the test), and the offline
failure paths with the network blocked at the socket level so nothing can hang.
"""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest

import nas.data as data


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


def _write_fake_cifar10(root: Path, per_batch: int = 20, n_test: int = 30, seed: int = 0) -> dict:
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


@pytest.fixture
def fake_cifar10():
    """The writer of a tiny CIFAR-10 in torchvision's layout: ``fake_cifar10(root, ...) -> arrays written``."""
    return _write_fake_cifar10
