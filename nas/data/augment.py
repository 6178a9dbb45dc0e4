"""Train-time augmentation of a batch with tensor ops only (any device): random crop, optional mirror."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .dataset import DatasetError

__all__ = ["AUGMENT_KINDS", "augment_batch", "crop_windows"]

#: Train-time augmentations understood by :func:`augment_batch`.
AUGMENT_KINDS = ("crop_flip", "crop", "none")

_CROP_PAD = 4


def crop_windows(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Crops ``x[i, :, top[i]:top[i]+h, left[i]:left[i]+w]`` for every ``i`` with one gather.

    Args:
        x: Batch ``N x C x H' x W'``.
        top: Row offset of each crop, int ``N``.
        left: Column offset of each crop, int ``N``.
        h: Crop height.
        w: Crop width.

    Returns:
        ``N x C x h x w``.
    """
    n, c = x.shape[:2]
    rows = (top.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (left.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chans = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return x[batch, chans, rows, cols]


def augment_batch(
    x: torch.Tensor, kind: str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Applies a dataset's train-time augmentation to a batch, with tensor ops only (any device).

    ``"crop_flip"``: each image is zero-padded by 4 pixels on every side (zero is the channel mean, the
    images being normalized) and cropped back to its size at a random offset, then mirrored left-right with
    probability 1/2. ``"crop"``: the crop only (SVHN). ``"none"``: ``x`` itself is returned.

    Args:
        x: Batch ``N x C x H x W``.
        kind: One of :data:`AUGMENT_KINDS`, usually ``dataset.augment``.
        generator: Random generator for reproducible augmentation; its device may differ from ``x``'s.

    Returns:
        A new tensor of the same shape, dtype and device (``x`` itself for ``"none"``).

    Raises:
        DatasetError: Unknown ``kind`` or ``x`` not 4-dimensional.
    """
    if kind not in AUGMENT_KINDS:
        raise DatasetError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENT_KINDS)}")
    if kind == "none":
        return x
    if x.ndim != 4:
        raise DatasetError(f"augment_batch needs a batch N x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    if n == 0:
        return x.clone()
    rng_device = generator.device if generator is not None else x.device
    pad = _CROP_PAD
    offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=rng_device).to(x.device)
    out = crop_windows(F.pad(x, (pad, pad, pad, pad)), offsets[0], offsets[1], h, w)
    if kind == "crop_flip":
        flip = torch.rand(n, generator=generator, device=rng_device).to(x.device) < 0.5
        out = torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)
    return out
