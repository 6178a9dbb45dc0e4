"""Tests of the dataset registry's public API (nas/data/__init__.py): names, "auto", load_dataset's cache.

No network is used (see conftest.py).
"""

from __future__ import annotations

import json
import logging
import time

import pytest

import nas.data.torchvision_sets as torchvision_sets
from nas.data import Dataset, DatasetError, list_datasets, load_dataset, resolve_dataset


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
    assert time.monotonic() - start < 60  # a hang guard (no network wait), not a speed claim


# ------------------------------------------------------------------------------------------------------------
# resolve_dataset("auto")
# ------------------------------------------------------------------------------------------------------------


def test_auto_falls_back_to_mnist5k_offline(tmp_path, no_network):
    start = time.monotonic()
    name, warning = resolve_dataset("auto", tmp_path)
    assert time.monotonic() - start < 20  # a hang guard, not a speed claim
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


def test_auto_picks_cifar10_on_disk(tmp_path, relaxed_md5, no_network, fake_cifar10):
    fake_cifar10(tmp_path)
    assert resolve_dataset("auto", tmp_path) == ("cifar10", None)
    assert resolve_dataset("auto", tmp_path, download=False) == ("cifar10", None)
    assert not no_network


def test_auto_picks_cifar10_when_downloadable(tmp_path, monkeypatch):
    monkeypatch.setattr(torchvision_sets, "_download_problem", lambda urls, timeout=None: None)
    assert resolve_dataset("auto", tmp_path) == ("cifar10", None)


def test_load_auto_offline_logs_the_warning(tmp_path, no_network, caplog):
    with caplog.at_level(logging.WARNING, logger="nas.data"):
        ds = load_dataset("auto", tmp_path)
    assert ds.name == "mnist5k"
    assert any("falling back to mnist5k" in r.getMessage() for r in caplog.records)
