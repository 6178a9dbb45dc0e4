"""The in-memory dataset container every loader returns, its error type, and the shared split/normalization.

Each loader (:mod:`nas.data.torchvision_sets`, :mod:`nas.data.offline`, the user-data loaders) builds both
splits as float32 ``N x C x H x W`` tensors and normalizes them with :func:`normalize_splits` or
:func:`normalize_along` (the train split's per-channel, or per-feature, mean and standard deviation, applied
to both splits). :func:`stratified_split` holds out a seeded, class-stratified test part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable, Iterator

import torch

__all__ = ["Dataset", "DatasetError", "DatasetFacts", "normalize_along", "normalize_images", "normalize_splits", "stratified_split"]


class DatasetError(ValueError):
    """A dataset name, location or option is invalid, or the data cannot be obtained.

    The message is one line saying what is wrong and what is valid or what to do, suitable for a CLI to
    print without a traceback.
    """


@dataclass(frozen=True, eq=False, kw_only=True)
class DatasetFacts:
    """What a dataset records besides its data, and what both kinds answer alike: the base of
    :class:`Dataset` (whole tensors) and :class:`~nas.data.stream.StreamedDataset` (read through a loader).

    Attributes (keyword-only):
        mean: How the inputs were normalized, with ``std``: ``x = (raw - mean) / std`` per channel (images,
            raw pixels scaled to [0, 1]; length C) or per feature (tables; length F). ``None`` for the
            built-in datasets (their statistics are not recorded).
        std: See ``mean``.
        class_names: Name of each class index (image folder names, a table's target values), or ``None``.
        preprocess: A JSON-able recipe that turns a raw input into a model input the way the train split
            was prepared (``{"kind": "image", ...}`` or ``{"kind": "table", ...}``; see
            :func:`nas.data.prepare_images` and :func:`nas.data.encode_table`), or ``None``.
        loss: The training loss, a name or reference (:func:`nas.data.loss.resolve_loss`), or ``None``:
            cross-entropy on class labels. With float targets (``train_y`` float32 ``N x T``) the task is
            regression: ``num_classes`` is then the number of outputs ``T``.

    A subclass supplies ``name``, ``num_classes``, ``input_shape``, ``augment``, ``source``, ``task``,
    ``train_size``, ``test_size`` and :meth:`_splits` (the train and the test split).
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    preprocess: dict[str, Any] | None = None
    loss: str | None = None

    def _splits(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def _split(self, which: str) -> Any:
        if which not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {which!r}")
        train, test = self._splits()
        return train if which == "train" else test

    def describe(self) -> dict[str, Any]:
        """Returns a JSON-able summary to record in a study.

        Returns:
            A dict with ``name``, ``train_size``, ``test_size``, ``input_shape`` (list), ``num_classes``,
            ``augment`` and ``source``; what the kind adds (:meth:`_described`: a streamed dataset says so
            and its estimated size); ``class_names``, ``mean`` and ``std`` (lists) where they are set;
            ``loss`` and ``task`` when a loss was given.
        """
        out: dict[str, Any] = {
            "name": self.name, "train_size": int(self.train_size), "test_size": int(self.test_size),
            "input_shape": [int(s) for s in self.input_shape], "num_classes": int(self.num_classes),
            "augment": self.augment, "source": self.source, **self._described(),
        }
        for key in ("class_names", "mean", "std"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        if self.loss is not None:
            out.update(loss=self.loss, task=self.task)
        return out

    def _described(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True, eq=False)
class Dataset(DatasetFacts):
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
        mean, std, class_names, preprocess, loss: See :class:`DatasetFacts` (keyword-only).

    The consumers read batches through :attr:`train_size`, :meth:`take` and :meth:`batches`, which a
    :class:`~nas.data.stream.StreamedDataset` answers too (data larger than the memory limit).
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

    streamed = False

    @property
    def task(self) -> str:
        """``"regression"`` when the targets are floats, else ``"classification"``."""
        return "regression" if self.train_y.is_floating_point() else "classification"

    @property
    def train_size(self) -> int:
        return int(self.train_x.shape[0])

    @property
    def test_size(self) -> int:
        return int(self.test_x.shape[0])

    def _splits(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        return (self.train_x, self.train_y), (self.test_x, self.test_y)

    def take(self, which: str, idx: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The examples ``idx`` of split ``which``: ``(x[idx], y[idx])``."""
        x, y = self._split(which)
        return x[idx], y[idx]

    def batches(self, which: str, index_batches: Iterable[Any], device: Any = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(x[idx], y[idx])`` for each index batch, in order (the whole split moved to ``device`` once;
        :meth:`on` does that ahead for a caller that reads many epochs)."""
        x, y = self._split(which)
        if device is not None:
            x, y = x.to(device), y.to(device)
        for idx in index_batches:
            yield x[idx], y[idx]

    def on(self, device: Any) -> "Dataset":
        """This dataset with both splits on ``device`` (itself when they are there already)."""
        device = torch.device(device)
        if self.train_x.device == device and self.test_x.device == device:
            return self
        return replace(self, train_x=self.train_x.to(device), train_y=self.train_y.to(device),
                       test_x=self.test_x.to(device), test_y=self.test_y.to(device))


def normalize_splits(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalizes both splits in place with the train split's per-channel mean and (population) std.

    ``x[:, c] <- (x[:, c] - mean_c) / max(std_c, 1e-12)``, with ``mean_c`` and ``std_c`` (``correction=0``)
    of the train split's channel ``c`` (:func:`normalize_along` over dimension 1).

    Args:
        train_x: Train images ``N x C x H x W`` (modified in place).
        test_x: Test images ``M x C x H x W`` (modified in place, with the train statistics).

    Returns:
        ``(train_x, test_x)``, the same tensors.
    """
    normalize_along(train_x, test_x, 1)
    return train_x, test_x


def normalize_images(train_x: torch.Tensor, test_x: torch.Tensor) -> dict[str, Any]:
    """:func:`normalize_splits` for images read from 8-bit files scaled to [0, 1]; returns what a saved model
    needs to prepare a new image file the same way: ``mean``, ``std`` and the ``preprocess`` recipe
    (``{"kind": "image", "mode": "L"|"RGB", "size": [H, W], "divide_by": 255.0, "mean", "std"}``, the form
    an image folder records; :func:`nas.data.prepare_images` reads it) -- keyword arguments of :class:`Dataset`.
    """
    mean, std = normalize_along(train_x, test_x, 1)
    c, h, w = (int(s) for s in train_x.shape[1:])
    recipe = None
    if c in (1, 3):
        recipe = {"kind": "image", "mode": "L" if c == 1 else "RGB", "size": [h, w], "divide_by": 255.0,
                  "mean": list(mean), "std": list(std)}
    return {"mean": tuple(mean), "std": tuple(std), "preprocess": recipe}


def normalize_along(
    train_x: torch.Tensor, test_x: torch.Tensor, dim: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalizes both splits in place, one index of ``dim`` at a time, with the train split's statistics.

    For each index ``i`` of dimension ``dim`` (1: channels of ``N x C x H x W``; 3: features of
    ``N x 1 x 1 x F``): ``x.select(dim, i) <- (x.select(dim, i) - mean_i) / max(std_i, 1e-12)``, mean and
    population std (``correction=0``) of the train split's slice. Statistics are taken one slice at a time
    in float32 (torch's CPU reductions sum pairwise, so this is accurate to ~1e-6 without a float64 copy).

    Args:
        train_x: Train inputs (modified in place).
        test_x: Test inputs (modified in place, with the train statistics).
        dim: The dimension whose slices are normalized separately.

    Returns:
        ``(mean, std)``: the statistics used, one float per index of ``dim`` (std after the clamp).
    """
    means, stds = [], []
    for i in range(train_x.shape[dim]):
        std, mean = torch.std_mean(train_x.select(dim, i), correction=0)
        std = std.clamp_min(1e-12)
        train_x.select(dim, i).sub_(mean).div_(std)
        test_x.select(dim, i).sub_(mean).div_(std)
        means.append(float(mean))
        stds.append(float(std))
    return tuple(means), tuple(stds)


def stratified_split(
    y: torch.Tensor, n_test: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Splits indices so each class has (to within one example) its overall share in the test part.

    Class quotas use the largest-remainder rule so the test part has exactly ``n_test`` examples.

    Returns:
        ``(train_idx, test_idx)``, each shuffled.
    """
    classes, counts = torch.unique(y, return_counts=True)
    exact = counts.double() * n_test / len(y)
    quota = exact.floor().long()
    short = n_test - int(quota.sum())
    if short > 0:
        quota[torch.argsort(exact - quota.double(), descending=True, stable=True)[:short]] += 1
    train_parts, test_parts = [], []
    for cls, q in zip(classes.tolist(), quota.tolist()):
        idx = torch.nonzero(y == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        test_parts.append(idx[:q])
        train_parts.append(idx[q:])
    train_idx, test_idx = torch.cat(train_parts), torch.cat(test_parts)
    train_idx = train_idx[torch.randperm(len(train_idx), generator=generator)]
    test_idx = test_idx[torch.randperm(len(test_idx), generator=generator)]
    return train_idx, test_idx
