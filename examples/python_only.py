"""A search from Python only: your arrays or torch Dataset, your model family as a function, no files to write.

    python examples/python_only.py                       # about 2 minutes on a 2-core CPU
    python examples/python_only.py --budget 5m --n-train 5000

What it shows: ``nas.search(space=a_function, data=(train, test), budget=...)``. The training part is a
pair of numpy arrays ``(x, y)``, the test part a torch ``Dataset`` (either form works for either part; a
``DataLoader`` too): gradnas reads them into memory, infers the input shape (1 x 12 x 12) and the number
of classes (3), normalizes with the training statistics and saves a copy under ``RUNS_DIR/data`` so worker
processes load the same tensors. ``space(trial, num_classes, input_shape)`` is a define-by-run search
space (Optuna style): what it asks the trial for is what gets searched, plus the batch size and learning
rate. The result holds the trained best model (``result.best_model``), its config and test accuracy.

The data: 12 x 12 grayscale images of horizontal stripes, vertical stripes or a checkerboard, with random
phase, contrast and noise. Run time on a 2-core CPU: the budget plus start-up (``--budget 2m``: 2 min 31 s
measured on a busy machine, test accuracy 0.99); the example's test (300 images, ``--budget 30s``) about
40 seconds.

Keep the search under ``if __name__ == "__main__":``: with ``--workers 2`` or more, Ray workers import
this file to rebuild the space function, and must not start a search of their own.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

CLASSES = ("horizontal", "vertical", "checkerboard")


def make_images(n: int, size: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)``: ``n`` images of shape ``1 x size x size`` (float32) and their class indices (int64)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), n)
    rows, cols = np.mgrid[0:size, 0:size]
    x = np.empty((n, 1, size, size), dtype=np.float32)
    for i, label in enumerate(y):
        period, phase = rng.integers(2, 5), rng.integers(0, 4)
        h, v = (rows + phase) // period % 2, (cols + phase) // period % 2
        pattern = (h, v, h ^ v)[label]
        x[i, 0] = rng.uniform(0.5, 1.5) * pattern + rng.normal(0, 0.6, (size, size))
    return x, y


class Images(torch.utils.data.Dataset):
    """The same images as a torch Dataset: items are ``(tensor 1 x H x W, int label)``."""

    def __init__(self, n: int, size: int = 12, seed: int = 1) -> None:
        self.x, self.y = make_images(n, size, seed)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.x[i]), int(self.y[i])


def space(trial, num_classes=3, input_shape=(1, 12, 12)):
    """A small convnet: conv-BN-ReLU blocks (width, depth, kernel), optional pooling, global average, linear."""
    width = trial.suggest_int("width", 4, 32, log=True)
    depth = trial.suggest_int("depth", 1, 3)
    kernel = trial.suggest_categorical("kernel", [3, 5])
    pool = trial.suggest_categorical("pool", ["max", "none"])
    layers: list[nn.Module] = []
    c_in = input_shape[0]
    for i in range(depth):
        c_out = width * 2**i
        layers += [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        if pool == "max":
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=2000, help="training images (default: %(default)s)")
    p.add_argument("--n-test", type=int, default=500, help="test images (default: %(default)s)")
    p.add_argument("--budget", default="2m", help="wall-clock budget of the search (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the finalists' training (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="1: in this process; more: Ray workers (default: 1)")
    p.add_argument("--runs-dir", default="runs", help="where the study and the data copy go (default: %(default)s)")
    p.add_argument("--study", default="python-only", help="study name; rerunning continues it (default: %(default)s)")
    p.add_argument("--probe-size", type=int, default=64, help="examples in the probe batch (default: %(default)s)")
    args = p.parse_args(argv)

    import nas

    train = make_images(args.n_train, seed=0)  # numpy arrays
    test = Images(args.n_test, seed=1)  # a torch Dataset
    result = nas.search(space=space, data=(train, test), budget=args.budget, epochs=args.epochs,
                        workers=args.workers, runs_dir=args.runs_dir, study=args.study,
                        probe_size=args.probe_size, group_size=min(8, args.probe_size))
    if result.best is None:
        print("no candidate finished its training: give a larger --budget")
        return result
    print(f"config: {result.config}")
    print(f"test accuracy: {result.test_acc:.3f}")
    # the trained model (also result.best_model), and the normalization its inputs need
    model, info = nas.load_model(result.best["model"], with_info=True)
    x, y = make_images(100, seed=2)
    mean, std = (torch.tensor(info[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    x = (torch.from_numpy(x) - mean) / std
    with torch.no_grad():
        accuracy = (model(x).argmax(1).numpy() == y).mean()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters; accuracy on 100 new images: {accuracy:.2f}")
    return result


if __name__ == "__main__":
    main()
