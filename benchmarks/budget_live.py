"""Live search under a fixed wall-clock budget on this machine: gradnas vs Optuna TPE + HyperbandPruner.

Both drive the same space, bounds (the space's CPU bounds on a CPU), dataset and training recipe
(:func:`nas.training.train`, ``--epochs`` epochs, warmup + cosine):

* ``gradnas``: ``python -m nas search --budget B --seed S`` (a subprocess; its ``best_model.json``);
* ``tpe+hyperband``: a single-objective Optuna study (``TPESampler(seed=S)``,
  ``HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)``), ``--workers`` trials at once
  (``study.optimize(n_jobs=..., timeout=B)``; torch threads = cores / workers), each trial trained epoch by
  epoch (``TrainSpec.stop_after``, resumed from its checkpoint) and reporting its test accuracy after each epoch.
  Its answer is the completed (not pruned) trial with the best final test accuracy.

Per seed and method: the answer's test accuracy, wall time, and where the time went (gradnas: candidates
per rung; TPE: trials completed / pruned, epochs trained). Results are appended to ``--out``/results.csv as
they finish (rerun to add seeds; finished (method, seed) pairs are skipped).

Usage::

    python benchmarks/budget_live.py --budget 20m --seeds 3 --dataset mnist5k
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402


def run_gradnas(budget: str, seed: int, dataset: str, epochs: int, out: Path, workers: int) -> dict[str, Any]:
    study = f"gradnas-s{seed}"
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "nas", "search", "--budget", budget, "--seed", str(seed), "--dataset",
                        dataset, "--epochs", str(epochs), "--workers", str(workers), "--study", study, "--runs-dir",
                        str(out), "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - t0
    best_file = out / study / "best_model.json"
    if r.returncode != 0 or not best_file.exists():
        return {"acc": float("nan"), "wall": wall, "spent": f"failed: {r.stderr.strip().splitlines()[-1:]}"}
    best = json.loads(best_file.read_text())
    line = next((x for x in r.stdout.splitlines() if x.startswith("wall time")), "")
    return {"acc": best["test_acc"], "wall": wall, "spent": line.split(";", 1)[-1].strip()}


def run_tpe_hyperband(budget_s: float, seed: int, dataset: str, epochs: int, out: Path, workers: int) -> dict[str, Any]:
    import optuna
    import torch

    from nas.data import resolve_dataset
    from nas.training import TrainSpec, train
    from search_spaces import get_space

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    dataset, _ = resolve_dataset(dataset, "data")
    space = get_space("resnet_cifar")
    if not torch.cuda.is_available():
        space = space.with_bounds(**space.cpu_bounds)
    folder = out / f"tpe-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    counts = {"epochs": 0}

    def objective(trial: optuna.Trial) -> float:
        config = space.sample(trial)
        acc = 0.0
        for epoch in range(1, epochs + 1):
            h = train(TrainSpec(space="resnet_cifar", config=config, dataset=dataset, epochs=epochs,
                                bounds=space.bounds, seed=seed * 100_003 + trial.number, data_seed=seed,
                                checkpoint=str((folder / f"trial_{trial.number}.pt").resolve()), stop_after=epoch))
            with lock:
                counts["epochs"] += 1
            accs = [a for a in h["test_acc"] if a is not None]
            acc = float(h["final_test_acc"] if h.get("diverged") else (accs[-1] if accs else 0.0)) or 0.0
            if h.get("diverged"):
                return acc
            trial.report(acc, epoch)
            if epoch < epochs and trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=f"tpe-hyperband-{seed}", direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                                      reduction_factor=3))
    t0 = time.monotonic()
    study.optimize(objective, timeout=budget_s, n_jobs=workers, catch=(Exception,))
    wall = time.monotonic() - t0
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    acc = max((t.value for t in done), default=float("nan"))
    return {"acc": acc, "wall": wall,
            "spent": f"{len(done)} complete, {len(pruned)} pruned trial(s), {counts['epochs']} epochs trained"}


def main(argv: Sequence[str] | None = None) -> int:
    from nas.search.plan import BudgetError, parse_duration

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget", default="20m", help="wall-clock budget per run (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default: %(default)s)")
    p.add_argument("--dataset", default="mnist5k", help="dataset (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="full training epochs of both (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, help="parallel trials of both (default: %(default)s)")
    p.add_argument("--out", default="runs/budget_live", help="output folder (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        budget_s = parse_duration(args.budget)
    except BudgetError as exc:
        p.error(str(exc))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.csv"
    done = pd.read_csv(results) if results.exists() else pd.DataFrame(columns=["method", "seed"])
    for seed in range(args.seeds):
        for method in ("gradnas", "tpe+hyperband"):
            if ((done["method"] == method) & (done["seed"] == seed)).any():
                continue
            if method == "gradnas":
                r = run_gradnas(args.budget, seed, args.dataset, args.epochs, out, args.workers)
            else:
                r = run_tpe_hyperband(budget_s, seed, args.dataset, args.epochs, out, args.workers)
            row = {"method": method, "seed": seed, "budget_s": budget_s, **r}
            print(f"{method:14s} seed {seed}: test acc {r['acc']:.4f}, wall {r['wall']:.0f} s; {r['spent']}", flush=True)
            done = pd.concat([done, pd.DataFrame([row])], ignore_index=True)
            done.to_csv(results, index=False)
    table = done.pivot_table(index="seed", columns="method", values="acc")
    print(table.to_string())
    if {"gradnas", "tpe+hyperband"} <= set(table.columns):
        wins = int((table["gradnas"] >= table["tpe+hyperband"]).sum())
        print(f"gradnas at least as accurate in {wins} of {len(table)} seed(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
