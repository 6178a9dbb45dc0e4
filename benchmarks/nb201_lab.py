"""The NAS-Bench-201 proxy lab table: score caches of ``nb201_proxies.py`` -> one row per cell.

``benchmarks/nb201_proxies.py --cache C`` keeps one row per (cell, metric, settings). This script pivots
one or more such caches into the wide table ``benchmarks/proxy_lab.py`` reads: one row per NB201 cell
with its index, arch string, the 200-epoch test accuracies (``C10``, ``C100``, ``IN16``) and one column
per metric and input:

* data-free metrics (``params``, ``flops``, ``synflow``, ``naswot_random``, the AZ-NAS components,
  ``meco``): the metric's name;
* data-dependent metrics: ``<metric>[<data>]``, e.g. ``kappa_w[mnist5k]`` (mnist5k digits padded to
  3 x 32 x 32) or ``kappa_w[gaussian]`` (standard-normal images, uniform random labels).

Unless ``--partial``, columns scored on fewer than 90 % of the cells are left out (a metric dropped from a
run part-way) and then only the cells that have every remaining column are kept; the settings strings must
agree on the skeleton, init and batch (rows of other settings are ignored, and a metric found under two
different settings for the same input is an error: the caches were made with different options).

Usage (the committed table; the caches come from the two commands in benchmarks/tables/README.md)::

    python benchmarks/nb201_lab.py --table ../shared/nb201/nats_bench.csv \
        --cache runs/nb201/mnist5k.csv runs/nb201/gaussian.csv --out benchmarks/tables/nb201_lab.csv.gz
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

TARGETS = (("C10", "CIFAR10TestAccuracy200Epochs"), ("C100", "CIFAR100TestAccuracy200Epochs"),
           ("IN16", "ImageNetTestAccuracy200Epochs"))
ARCH_COLUMN = "ArchitectureString"
#: Columns of the wide table that are not metric values.
NON_METRIC = ("index", "arch", "settings", "lr", "batch_size", *[short for short, _ in TARGETS])
_DATA = re.compile(r"; data=(\w+) ")


def column_name(metric: str, settings: str) -> str:
    """``kappa_w`` + ``...; data=mnist5k batch=32 ...`` -> ``kappa_w[mnist5k]``; data-free: the metric."""
    m = _DATA.search(settings)
    return f"{metric}[{m.group(1)}]" if m else metric


def base_settings(settings: str) -> str:
    """The part every metric of one run shares (skeleton, classes, input, init)."""
    return settings.split(";")[0].strip()


def build(caches: Sequence[str | Path], truth: pd.DataFrame, partial: bool = False) -> pd.DataFrame:
    frames = []
    for path in caches:
        if not Path(path).is_file():
            raise SystemExit(f"error: no cache at {path}: run benchmarks/nb201_proxies.py --cache {path} first")
        frames.append(pd.read_csv(path))
    long = pd.concat(frames, ignore_index=True)
    bases = long["settings"].map(base_settings).unique()
    if len(bases) != 1:
        raise SystemExit(f"error: the caches mix network settings {list(bases)}; give caches of one skeleton/init")
    long["column"] = [column_name(m, s) for m, s in zip(long["metric"], long["settings"])]
    clash = long.groupby("column")["settings"].nunique()
    if (clash > 1).any():
        raise SystemExit(f"error: {list(clash[clash > 1].index)} appear under several settings (batch, seed); "
                         "give caches made with the same options")
    wide = long.drop_duplicates(["index", "column"], keep="last").pivot(index="index", columns="column",
                                                                          values="value")
    if not partial:  # columns scored on fewer than 90 % of the cells go, then cells missing any column left
        # (scored = a cache row exists; a scored NaN is a value: the metric is undefined for that cell)
        scored = long.drop_duplicates(["index", "column"]).assign(one=1).pivot(
            index="index", columns="column", values="one").notna().reindex(index=wide.index, columns=wide.columns)
        counts = scored.sum()
        keep = [c for c in wide.columns if counts[c] >= 0.9 * counts.max()]
        wide = wide.loc[scored[keep].all(axis=1), keep]
    wide = wide.sort_index()
    out = pd.DataFrame({"index": wide.index.astype(int)})
    out["arch"] = truth[ARCH_COLUMN].to_numpy()[out["index"]]
    for short, col in TARGETS:
        out[short] = truth[col].to_numpy(dtype=float)[out["index"]]
    out["settings"] = bases[0]
    # NB201's training recipe (SGD, lr 0.1 with cosine decay, batch 256): constants, for the features that
    # read the config (relative_step = lr * grad_weight_ratio ranks as grad_weight_ratio here)
    out["lr"], out["batch_size"] = 0.1, 256
    return pd.concat([out.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, help="NATS-Bench CSV (../shared/nb201/nats_bench.csv)")
    p.add_argument("--cache", nargs="+", required=True, help="score caches of nb201_proxies.py")
    p.add_argument("--out", required=True, help="wide table to write (.csv or .csv.gz)")
    p.add_argument("--partial", action="store_true",
                   help="keep cells that lack some columns (default: only cells with every column)")
    args = p.parse_args(argv)
    truth = pd.read_csv(args.table)
    if any(c not in truth.columns for _, c in TARGETS):
        p.error(f"{args.table} is not a NATS-Bench table (needs {[c for _, c in TARGETS]})")
    wide = build(args.cache, truth, args.partial)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    wide.to_csv(args.out, index=False, float_format="%.8g")
    metrics = [c for c in wide.columns if c not in NON_METRIC]
    print(f"wrote {args.out}: {len(wide)} cells x {len(metrics)} metric columns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
