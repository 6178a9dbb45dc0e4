"""Tests of train-time augmentation (nas/data/augment.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.data import DatasetError, augment_batch


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
