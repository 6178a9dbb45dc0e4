"""The in-memory dataset container every loader returns, its error type, and the shared normalization.

Each loader (:mod:`nas.data.torchvision_sets`, :mod:`nas.data.offline`) builds both splits as float32
``N x C x H x W`` tensors and normalizes them with :func:`normalize_splits` (the train split's
per-channel mean and standard deviation, applied to both splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Dataset", "DatasetError", "normalize_splits"]


class DatasetError(ValueError):
    """A dataset name, location or option is invalid, or the data cannot be obtained.

    The message is one line saying what is wrong and what is valid or what to do, suitable for a CLI to
    print without a traceback.
    """


@dataclass(frozen=True, eq=False)
class Dataset:
    """An in-memory labelled image dataset, both splits.

    Instances are cached and shared by :func:`nas.data.load_dataset`: treat the tensors as read-only.

    Attributes:
        name: Registry name, e.g. ``"cifar10"``.
        train_x: Train images, float32 ``N x C x H x W``, normalized per channel with the train split's
            mean and standard deviation.
        train_y: Train labels, int64 ``N``, in ``[0, num_classes)``.
        test_x: Test images, normalized with the *train* statistics.
        test_y: Test labels, int64.
        num_classes: Number of classes.
        input_shape: ``(C, H, W)`` of one image.
        augment: Train-time augmentation kind for :func:`nas.data.augment_batch`: ``"crop_flip"`` (CIFAR),
            ``"crop"`` (SVHN: digits must not be mirrored) or ``"none"`` (MNIST-like, synthetic).
        source: Human-readable provenance, e.g. ``"torchvision CIFAR10 at /abs/data"``.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    input_shape: tuple[int, int, int]
    augment: str
    source: str

    def describe(self) -> dict[str, Any]:
        """Returns a JSON-able summary to record in a study.

        Returns:
            A dict with ``name``, ``train_size``, ``test_size``, ``input_shape`` (list), ``num_classes``,
            ``augment`` and ``source``.
        """
        return {
            "name": self.name,
            "train_size": int(self.train_x.shape[0]),
            "test_size": int(self.test_x.shape[0]),
            "input_shape": [int(s) for s in self.input_shape],
            "num_classes": int(self.num_classes),
            "augment": self.augment,
            "source": self.source,
        }


def normalize_splits(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalizes both splits in place with the train split's per-channel mean and (population) std.

    ``x[:, c] <- (x[:, c] - mean_c) / max(std_c, 1e-12)``, with ``mean_c`` and ``std_c`` (``correction=0``)
    of the train split's channel ``c``. Statistics are taken one channel at a time in float32 (torch's CPU
    reductions sum pairwise, so this is accurate to ~1e-6 without a float64 copy of the data).

    Args:
        train_x: Train images ``N x C x H x W`` (modified in place).
        test_x: Test images ``M x C x H x W`` (modified in place, with the train statistics).

    Returns:
        ``(train_x, test_x)``, the same tensors.
    """
    for ch in range(train_x.shape[1]):
        std, mean = torch.std_mean(train_x[:, ch], correction=0)
        std = std.clamp_min(1e-12)
        train_x[:, ch].sub_(mean).div_(std)
        test_x[:, ch].sub_(mean).div_(std)
    return train_x, test_x
