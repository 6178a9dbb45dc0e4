"""Throughput of the in-memory vs the streamed (DataLoader) path on the same image folder, side by side.

Writes a folder of ``--images`` random PNGs (``--size`` px, 4 classes) under a temporary directory, loads it
twice — ``max_memory=`` large (whole tensors in memory) and 1 byte (a :class:`nas.data.StreamedDataset`:
each image decoded from disk by the loader's workers) — and, alternating the two paths ``--repeats``
times so drift hits both alike:

* one search trial (:func:`nas.evaluate.evaluate`: probe batch, rung-0 metrics, ``--early-steps`` steps);
* one training epoch (:func:`nas.training.train`, ``--epochs 1``): train samples per second.

Prints the medians, the ratios streamed / in-memory, and checks that both paths gave the same early-step
losses and test accuracy (the streamed path must change speed, not results). One torch thread per trial,
as the search runs them. Loading (decoding the whole folder once, or sampling normalization statistics)
is reported separately: a worker process pays it once.

Usage::

    nice python benchmarks/streaming_throughput.py --images 600 --size 32 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_folder(root: Path, images: int, size: int) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        k = i % 4
        folder = root / f"class{k}"
        folder.mkdir(parents=True, exist_ok=True)
        a = rng.integers(0, 120, (size, size, 3)).astype(np.uint8)
        a[size // 4: size // 2, size // 4: size // 2, k % 3] = 240
        Image.fromarray(a).save(folder / f"{i:05d}.png")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=600)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--early-steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()

    import torch

    import nas.data as data
    from nas.evaluate import TrialSpec, evaluate
    from nas.training import TrainSpec, train

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), args.images, args.size)
        refs = {"in-memory": f"folder:{tmp}?max_memory=64G", "streamed": f"folder:{tmp}?max_memory=1"}
        load_s = {}
        for name, ref in refs.items():
            t0 = time.perf_counter()
            ds = data.load_dataset(ref, seed=0)
            load_s[name] = time.perf_counter() - t0
            print(f"{name:10s} loaded in {load_s[name]:.2f}s: {type(ds).__name__}, {ds.train_size} train / "
                  f"{ds.test_size} test, workers={getattr(ds, 'workers', 0)}")
        bounds = {"blocks": [1, 1], "width": [8, 8]}
        config = {"blocks": 1, "width": 8, "batch_size": args.batch_size, "lr": 0.05}
        trial_s: dict[str, list[float]] = {k: [] for k in refs}
        epoch_s: dict[str, list[float]] = {k: [] for k in refs}
        curves, accs = {}, {}
        for r in range(args.repeats):
            for name, ref in refs.items():
                spec = TrialSpec(space="resnet_cifar", config=config, dataset=ref, bounds=bounds, metrics=["grad_norm"],
                                 early_steps=args.early_steps, probe_size=64, seed=1, data_seed=0, threads=1)
                t0 = time.perf_counter()
                out = evaluate(spec)
                trial_s[name].append(time.perf_counter() - t0)
                curves[name] = out["loss_curve"]
                t0 = time.perf_counter()
                hist = train(TrainSpec(space="resnet_cifar", config=config, dataset=ref, bounds=bounds, epochs=1,
                                       seed=1, threads=1))
                epoch_s[name].append(time.perf_counter() - t0)
                accs[name] = hist["test_acc"][-1]
        n_train = data.load_dataset(refs["in-memory"], seed=0).train_size
        print(f"\n{args.images} PNGs of {args.size}x{args.size}, batch {args.batch_size}, {args.early_steps} early steps, "
              f"{args.repeats} repeats, medians:")
        print(f"{'path':10s} {'trial s':>8s} {'trials/min':>10s} {'epoch s':>8s} {'train samples/s':>16s}")
        med = {k: (statistics.median(trial_s[k]), statistics.median(epoch_s[k])) for k in refs}
        for name, (t, e) in med.items():
            print(f"{name:10s} {t:8.2f} {60 / t:10.1f} {e:8.2f} {n_train / e:16.0f}")
        t_ratio = med["streamed"][0] / med["in-memory"][0]
        e_ratio = med["streamed"][1] / med["in-memory"][1]
        print(f"streamed / in-memory time: trial {t_ratio:.2f}x, epoch {e_ratio:.2f}x")
        same = all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for a, b in zip(curves["in-memory"], curves["streamed"]))
        print(f"same early-step losses on both paths: {same}; test accuracy after 1 epoch: "
              f"in-memory {accs['in-memory']:.4f}, streamed {accs['streamed']:.4f}")


if __name__ == "__main__":
    main()
