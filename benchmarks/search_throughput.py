"""Search throughput: trials per minute with 1 and 2 workers on the same search, side by side.

Runs the same small search twice — ``--workers 1`` (in process, no Ray) and ``--workers 2`` (Ray
tasks) — each into its own fresh SQLite study, every trial with the same fixed ``--threads`` (default 1,
as the search does, so both paths compute the same values), and prints trials per minute, the ratio, and
the per-trial time split into data / build / score at init / early training / score after (means over
the complete trials, from the trials' stored ``time_*`` attributes). Ray start-up is included in the
2-worker wall time (it is part of what a user waits for), printed separately, and the ratio is also
given without it.

Data loading: a worker process keeps its dataset (``nas.data.load_dataset`` caches it per process and
Ray reuses worker processes), so only each worker's first trial loads it. The table shows the cold load
(first trial of each worker) against the later trials, and the per-trial time a worker that reloaded its
data for every trial would have (mean total + cold load).

Usage::

    python benchmarks/search_throughput.py [--trials 16] [--dataset mnist5k] [--early-steps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import optuna

from nas.search.config import SearchConfig
from nas.search.proxy import run_trials
from nas.study import combined_metrics, default_objectives, open_study, parse_objectives
from nas.search.ranking import complete_trials
from search_spaces import get_space

BOUNDS = {"blocks": (1, 2), "width": (8, 16), "batch_size": (32, 128)}


def one_run(workers: int, args, folder: Path) -> dict:
    space = get_space("resnet_cifar", **BOUNDS)
    objs = parse_objectives(default_objectives(args.early_steps))
    cons = []
    study = open_study(f"w{workers}", f"sqlite:///{folder / f'w{workers}.db'}", objs, cons, "random", args.seed, {})
    settings = SearchConfig(
        space="resnet_cifar", bounds=space.bounds, dataset=args.dataset, data_dir=args.data_dir,
        metrics=combined_metrics(), early_steps=args.early_steps, probe_size=64,
        seed=args.seed, group_size=8, trials=args.trials, workers=workers,
        threads=args.threads,
    )
    ray_start = 0.0
    if workers > 1:
        import ray

        t = time.perf_counter()
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 object_store_memory=200 * 1024 * 1024)
        ray_start = time.perf_counter() - t
    t = time.perf_counter()
    stats = run_trials(study, space, settings, objs, cons)
    wall = time.perf_counter() - t + ray_start
    done = complete_trials(study)
    split = {k: statistics.mean(tr.user_attrs[k] for tr in done)
             for k in ("time_data", "time_build", "time_score_init", "time_train", "time_score_early", "time_total")}
    by_worker: dict = {}
    for tr in sorted(done, key=lambda tr: tr.datetime_start):
        by_worker.setdefault(tr.user_attrs.get("worker_pid", "driver"), []).append(tr.user_attrs["time_data"])
    cold = [times[0] for times in by_worker.values()]
    warm = [t for times in by_worker.values() for t in times[1:]]
    return {"wall": wall, "ray_start": ray_start, "complete": len(done), "failed": stats["failed"], **split,
            "cold": statistics.mean(cold), "warm": statistics.mean(warm) if warm else float("nan"),
            "workers_seen": len(by_worker)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--dataset", default="mnist5k")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per trial (both paths)")
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--early-steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        results = {w: one_run(w, args, Path(tmp)) for w in (1, 2)}
    print(f"resnet_cifar {BOUNDS}, dataset {args.dataset}, {args.trials} trials, {args.early_steps} early steps, "
          f"{args.threads} thread(s) per trial, the search's default metrics ({len(combined_metrics())}) at init and after")
    print(f"{'workers':>7s} {'complete':>8s} {'failed':>6s} {'wall s':>8s} {'trials/min':>10s} {'data':>6s} "
          f"{'build':>6s} {'score0':>7s} {'train':>6s} {'score1':>7s} {'total':>6s}  (mean s per trial)")
    for w, r in results.items():
        tpm = 60 * r["complete"] / r["wall"]
        r["tpm"] = tpm
        r["tpm_no_start"] = 60 * r["complete"] / max(1e-9, r["wall"] - r["ray_start"])
        print(f"{w:7d} {r['complete']:8d} {r['failed']:6d} {r['wall']:8.1f} {tpm:10.2f} {r['time_data']:6.3f} "
              f"{r['time_build']:6.2f} {r['time_score_init']:7.2f} {r['time_train']:6.2f} {r['time_score_early']:7.2f} "
              f"{r['time_total']:6.2f}")
    print(f"throughput ratio 2 workers / 1 worker: {results[2]['tpm'] / results[1]['tpm']:.2f}x with Ray start-up "
          f"({results[2]['ray_start']:.1f} s), {results[2]['tpm_no_start'] / results[1]['tpm']:.2f}x without")
    for w, r in results.items():
        print(f"data, {w} worker(s): cold load {r['cold']:.3f} s (first trial of each of {r['workers_seen']} worker "
              f"process(es)), later trials {r['warm']:.4f} s; per-trial time if every trial reloaded: "
              f"{r['time_total'] + r['cold'] - r['time_data']:.2f} s vs {r['time_total']:.2f} s loading once")


if __name__ == "__main__":
    main()
