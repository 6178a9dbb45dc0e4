"""``folder:PATH``: an image folder in torchvision's ``ImageFolder`` layout, read into memory.

Layouts: ``PATH/<class>/<image>`` (a seeded stratified ``test_fraction`` is held out as the test split), or
``PATH/train/<class>/...`` with ``PATH/test/<class>/...`` (or ``PATH/val/``) as given. Images (extensions
of torchvision's ``IMG_EXTENSIONS``; subfolders of a class folder count) are decoded with PIL, converted to
RGB (or one grayscale channel), resized with bilinear filtering to ``size`` and scaled to [0, 1]; both
splits are then normalized per channel with the train split's mean and std. Hidden folders (``.name``)
are ignored. A folder whose decoded images fit the memory limit (``max_memory=``, default a quarter of this
machine's memory; float32, 4 bytes per value) is held in memory; a larger one is a
:class:`~nas.data.stream.StreamedDataset` that decodes each image when a batch needs it (normalized with
statistics of a seeded sample of the train images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .dataset import Dataset, DatasetError, normalize_along, stratified_split
from .reference import Reference, parse_fraction, parse_size
from .stream import Normalized, StreamedDataset, channel_stats, loader_workers, memory_limit, tensor_bytes

__all__ = ["load_folder", "prepare_images"]

_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
_DEFAULT_SIZE = 32


def _extensions() -> tuple[str, ...]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return tuple(IMG_EXTENSIONS)


def _class_dirs(root: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _images(folder: Path) -> list[str]:
    ext = _extensions()
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [os.path.join(dirpath, f) for f in sorted(filenames) if f.lower().endswith(ext) and not f.startswith(".")]
    return found


def _scan(root: Path, classes: Sequence[str] | None, what: str) -> tuple[list[str], list[str], list[int]]:
    """``(classes, image paths, labels)`` of one split folder; ``classes`` given for the test split."""
    is_test = classes is not None
    found = _class_dirs(root)
    if not found:
        loose = len(_images(root))
        raise DatasetError(
            f"{what} has no class subfolders{f' ({loose} images directly inside)' if loose else ''}: put each "
            f"class's images in {root}/<class name>/"
        )
    if classes is None:
        classes = found
    else:
        unknown = [c for c in found if c not in classes]
        if unknown:
            raise DatasetError(
                f"{what} has class folder(s) {', '.join(unknown)} that the train split lacks: add them to train/ "
                "or remove them"
            )
    paths: list[str] = []
    labels: list[int] = []
    for index, name in enumerate(classes):
        if not (root / name).is_dir():
            continue
        files = _images(root / name)
        if not files and not is_test:
            raise DatasetError(
                f"class folder {root / name} has no images ({', '.join(_extensions())}): add images or remove it"
            )
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise DatasetError(f"{what} has no images ({', '.join(_extensions())}): add images to its class folders")
    return list(classes), paths, labels


def _open(path: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"cannot read image {path} ({type(exc).__name__}): fix or remove the file") from exc


def _decode(image: Any, mode: str, size: tuple[int, int], path: str = "an image") -> np.ndarray:
    """One image as uint8 ``H x W x C`` in ``mode`` (``"L"`` or ``"RGB"``), resized to ``size`` (H, W)."""
    from PIL import Image

    try:
        image = image.convert(mode)
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
    except OSError as exc:  # truncated or corrupt data shows up on decode
        raise DatasetError(f"cannot decode {path} ({exc}): fix or remove the file") from exc
    return array.reshape(size[0], size[1], -1)


class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded when read: ``(x, label)``, ``x`` float32 ``C x H x W`` in [0, 1] (as :func:`_read`)."""

    def __init__(self, paths: Sequence[str], labels: Sequence[int], mode: str, size: tuple[int, int]) -> None:
        self.paths, self.labels, self.mode, self.size = list(paths), list(labels), mode, tuple(size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path = self.paths[i]
        with _open(path) as image:
            array = _decode(image, self.mode, self.size, path)
        return torch.from_numpy(np.array(array)).permute(2, 0, 1).to(torch.float32).div_(255.0), self.labels[i]


def _read(paths: list[str], mode: str, size: tuple[int, int]) -> torch.Tensor:
    """Float32 ``N x C x H x W`` in [0, 1]."""
    channels = 1 if mode == "L" else 3
    out = np.empty((len(paths), size[0], size[1], channels), dtype=np.uint8)
    for i, path in enumerate(paths):
        with _open(path) as image:
            out[i] = _decode(image, mode, size, path)
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(torch.float32).div_(255.0).contiguous()  # x / 255


def load_folder(ref: Reference, seed: int, name: str) -> Dataset:
    """Loads ``folder:PATH[?size=&test_fraction=&grayscale=&augment=]`` (see the module docstring).

    Args:
        ref: The parsed reference (absolute path).
        seed: Seed of the held-out split (unused with train/ and test/ subfolders).
        name: The dataset's name (its canonical reference).

    Raises:
        DatasetError: A missing path, no class subfolders, a class folder without images, fewer than 2
            classes, an unreadable image, or data too large for memory.
    """
    root = Path(ref.target)
    if not root.exists():
        raise DatasetError(f"{name}: {root} does not exist; give a folder with one subfolder of images per class")
    if not root.is_dir():
        raise DatasetError(f"{name}: {root} is a file; give a folder with one subfolder of images per class")
    test_root = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    if (root / "train").is_dir() and test_root is not None:
        classes, train_paths, train_labels = _scan(root / "train", None, f"{root / 'train'} (train split)")
        _, test_paths, test_labels = _scan(test_root, classes, f"{test_root} (test split)")
        split = f"{root.name}/train and {root.name}/{test_root.name}"
    else:
        classes, train_paths, train_labels = _scan(root, None, f"{root} (train split)")
        test_paths, test_labels = [], []
        split = None
    if len(classes) < 2:
        raise DatasetError(f"{name}: found 1 class folder ({classes[0]}); a classifier needs at least 2 classes")
    mode, size = _mode_and_size(ref, train_paths + test_paths)
    channels = 1 if mode == "L" else 3
    need = tensor_bytes(len(train_paths) + len(test_paths), (channels, *size))
    limit = memory_limit(ref.option("max_memory"))
    if split is None:
        y = torch.tensor(train_labels, dtype=torch.int64)
        fraction = parse_fraction(ref.option("test_fraction", "0.2"), name)
        n_test = max(1, round(fraction * len(y)))
        if n_test >= len(y):
            raise DatasetError(f"{name}: {len(y)} images are too few to hold out a test split; add images")
        train_idx, test_idx = stratified_split(y, n_test, torch.Generator().manual_seed(int(seed)))
        split = f"stratified held-out {fraction:g} ({len(train_idx):,}/{len(test_idx):,}), seed {int(seed)}"
        paths = train_paths
        train_paths, test_paths = [paths[i] for i in train_idx.tolist()], [paths[i] for i in test_idx.tolist()]
        train_labels, test_labels = y[train_idx].tolist(), y[test_idx].tolist()
        if need <= limit:  # decoded once, in the order of the files (the in-memory path as it always was)
            x = _read(paths, mode, size)
            train_x, test_x, train_y, test_y = x[train_idx], x[test_idx], y[train_idx], y[test_idx]
            del x
    elif need <= limit:
        train_x, test_x = _read(train_paths, mode, size), _read(test_paths, mode, size)
        train_y = torch.tensor(train_labels, dtype=torch.int64)
        test_y = torch.tensor(test_labels, dtype=torch.int64)
    shape = (channels, size[0], size[1])
    info = f"image folder {root} ({len(classes)} classes, {channels}x{size[0]}x{size[1]} {mode}; {split})"
    if need > limit:
        return _streamed(ref, name, info, classes, shape, mode, size, seed, need, limit,
                         (train_paths, train_labels), (test_paths, test_labels))
    mean, std = normalize_along(train_x, test_x, 1)
    recipe = {"kind": "image", "mode": mode, "size": list(size), "divide_by": 255.0, "mean": list(mean), "std": list(std)}
    return Dataset(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        num_classes=len(classes), input_shape=(channels, size[0], size[1]), augment=ref.option("augment", "none"),
        source=info, mean=mean, std=std, class_names=tuple(classes), preprocess=recipe, loss=ref.option("loss"),
    )


def _streamed(ref: Reference, name: str, info: str, classes: list[str], shape: tuple[int, int, int], mode: str,
              size: tuple[int, int], seed: int, need: int, limit: int, train: tuple[list[str], list[int]],
              test: tuple[list[str], list[int]]) -> StreamedDataset:
    """The folder as a :class:`StreamedDataset` (its images exceed the memory limit)."""
    workers = loader_workers()
    train_files, test_files = ImageFiles(*train, mode, size), ImageFiles(*test, mode, size)
    mean, std = channel_stats(train_files, 0, seed=int(seed), workers=workers)
    recipe = {"kind": "image", "mode": mode, "size": list(size), "divide_by": 255.0, "mean": list(mean), "std": list(std)}
    return StreamedDataset(
        name=name, train=Normalized(train_files, mean, std), test=Normalized(test_files, mean, std),
        num_classes=len(classes), input_shape=shape, augment=ref.option("augment", "none"),
        source=f"{info}; streamed: {need / 2**30:.2f} GiB as tensors > max_memory {limit / 2**30:.2f} GiB",
        mean=mean, std=std, class_names=tuple(classes), preprocess=recipe, loss=ref.option("loss"),
        workers=workers, estimated_bytes=need,
    )


def _mode_and_size(ref: Reference, paths: list[str]) -> tuple[str, tuple[int, int]]:
    """PIL mode (``"L"``/``"RGB"``) and ``(H, W)``: from the options, else from the images' headers."""
    gray = ref.option("grayscale", "auto")
    size = parse_size(ref.options["size"]) if "size" in ref.options else None
    if gray != "auto" and size is not None:
        return ("L" if gray == "1" else "RGB"), size
    sizes, modes = set(), set()
    for path in paths:  # headers only: PIL decodes pixels lazily
        with _open(path) as image:
            sizes.add(image.size)
            modes.add(image.mode)
    if gray == "auto":
        gray = "1" if all(m in _GRAY_MODES for m in modes) else "0"
    if size is None:
        size = (sizes.pop()[::-1]) if len(sizes) == 1 else (_DEFAULT_SIZE, _DEFAULT_SIZE)
    return ("L" if gray == "1" else "RGB"), tuple(size)


def prepare_images(images: Sequence[Any], preprocess: dict[str, Any]) -> torch.Tensor:
    """Model inputs from raw images, prepared like the train split (``Dataset.preprocess`` of a folder).

    Args:
        images: Paths or PIL images.
        preprocess: The ``{"kind": "image", ...}`` recipe stored in the dataset (and in a saved model).

    Returns:
        Float32 ``N x C x H x W``.
    """
    if not preprocess or preprocess.get("kind") != "image":
        raise DatasetError("prepare_images needs the image recipe of a folder dataset (Dataset.preprocess)")
    mode, size = preprocess["mode"], tuple(preprocess["size"])
    arrays = []
    for item in images:
        if isinstance(item, (str, os.PathLike)):
            with _open(os.fspath(item)) as image:
                arrays.append(_decode(image, mode, size, os.fspath(item)))
        else:
            arrays.append(_decode(item, mode, size))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).to(torch.float32) / float(preprocess["divide_by"])
    mean = torch.tensor(preprocess["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(preprocess["std"], dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()
