"""First real figures of proxy quality: search on mnist5k, validate by full training, report tau.

Runs the three commands end to end, as a user would (each one a ``python -m nas`` subprocess):

1. ``search``: ``--trials`` (40) trials of resnet_cifar bounded to small CPU-friendly nets (blocks 1-2,
   width 8-16, batch 32-128) on ``mnist5k`` (4,000 / 1,000 real MNIST digits, offline), every metric
   scored (``--metrics all``) at init and after the early steps, default objectives and constraints;
2. ``validate --random 20 --epochs 3``: the Pareto front plus 20 random complete trials, fully trained;
3. ``report``: correlations.csv, plots, report.html.

Then prints Kendall's tau of every metric against validated accuracy (and against convergence), sorted
by tau in the metric's better direction (positive = the metric ranks the nets the right way), with n,
p-values and the top-k hit rate, followed by the wall time of each phase and in total.

Rerunning with the same ``--study`` continues: the search tops up to ``--trials`` complete trials,
validation skips trials already trained with the same epochs. ``--fresh`` starts over.

Usage::

    python benchmarks/validate_mnist5k.py                       # the full run (CPU: tens of minutes)
    python benchmarks/validate_mnist5k.py --trials 6 --random 2 --epochs 1 --metrics default --study quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = {"blocks": [1, 2], "width": [8, 16], "batch_size": [32, 128]}


def run(args: list[str], env: dict[str, str]) -> float:
    print(f"\n$ python -m nas {' '.join(args)}", flush=True)
    t = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "nas", *args], cwd=ROOT, env=env)
    dt = time.perf_counter() - t
    if code not in (0, 1):  # 1: some trials failed, which the report counts
        sys.exit(f"command failed with exit code {code}")
    return dt


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=40, help="complete search trials (default: %(default)s)")
    p.add_argument("--random", type=int, default=20, help="random trials validated besides the front (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="validation epochs (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, help="parallel trials (default: CPU cores)")
    p.add_argument("--metrics", default="all", help="'all', 'default' (the thesis metrics) or a list (default: %(default)s)")
    p.add_argument("--early-steps", type=int, default=20, help="search: steps between the two scorings (default: %(default)s)")
    p.add_argument("--study", default="validate_mnist5k", help="study name (default: %(default)s)")
    p.add_argument("--runs-dir", default=str(ROOT / "runs"), help="runs folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="delete the study folder first")
    args = p.parse_args()

    folder = Path(args.runs_dir) / args.study
    if args.fresh and folder.exists():
        shutil.rmtree(folder)
    workers = args.workers or max(1, os.cpu_count() or 1)
    # one intra-op thread per worker: oversubscribed cores slow small-net training many times over
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    common = ["--study", args.study, "--runs-dir", args.runs_dir]
    times = {}
    t0 = time.perf_counter()
    search = ["search", *common, "--space", "resnet_cifar", "--bounds", json.dumps(BOUNDS), "--dataset", "mnist5k",
              "--trials", str(args.trials), "--workers", str(workers), "--early-steps", str(args.early_steps),
              "--seed", str(args.seed), "--no-progress"]
    if args.metrics != "default":
        search += ["--metrics", args.metrics]
    times["search"] = run(search, env)
    times["validate"] = run(["validate", *common, "--random", str(args.random), "--epochs", str(args.epochs),
                             "--workers", str(workers), "--no-progress"], env)
    times["report"] = run(["report", *common, "--epochs", str(args.epochs)], env)
    total = time.perf_counter() - t0

    import pandas as pd

    try:
        from nas.report.stats import direction_sign
    except ImportError:  # run from a checkout without the editable install
        sys.path.insert(0, str(ROOT))
        from nas.report.stats import direction_sign

    df = pd.read_csv(folder / "correlations.csv")
    df = df[df["subset"] == "all"]
    acc = df[df["target"] == "val_best_acc"].set_index("metric")
    conv = df[df["target"] == "val_converged"].set_index("metric")
    sign = acc["direction"].map(direction_sign)
    acc = acc.assign(tau_better=acc["kendall_tau"] * sign).sort_values("tau_better", ascending=False, na_position="last")

    def cell(v, p=None):
        if pd.isna(v):
            return "undefined"
        return f"{v + 0.0:+.3f}".replace("-0.000", "+0.000") + (" ns" if p is not None and p > 0.05 else "")

    print(f"\nKendall tau vs validated accuracy ({args.epochs} epoch(s)) and vs convergence; "
          "'better' = tau signed so that > 0 means the metric ranks nets the right way; ns: p > 0.05")
    header = f"{'metric':26s} {'dir':3s} {'n':>3s} {'tau':>10s} {'p':>8s} {'better':>8s} {'tau(conv)':>12s} {'top-k':>6s}"
    print(header + "\n" + "-" * len(header))
    for m, r in acc.iterrows():
        c = conv.loc[m]
        topk = "–" if pd.isna(r["topk_hits"]) else f"{int(r['topk_hits'])}/{int(r['topk_k'])}"
        p_txt = "–" if pd.isna(r["kendall_p"]) else f"{r['kendall_p']:.2g}"
        print(f"{m:26s} {r['direction'][:3]:3s} {int(r['n']):3d} {cell(r['kendall_tau'], r['kendall_p']):>10s} "
              f"{p_txt:>8s} {cell(r['tau_better']):>8s} {cell(c['kendall_tau'], c['kendall_p']):>12s} {topk:>6s}")
    print("\nwall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {total:.0f} s "
          f"({workers} worker(s), {os.cpu_count()} CPU core(s))")
    print(f"report: {folder / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
