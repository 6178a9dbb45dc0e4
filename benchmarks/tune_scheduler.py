"""Ray Tune: random + ASHA vs random + the gradnas scheduler, replayed on the proxy lab (budget to a top config).

The replay of ``benchmarks/budget_search.py``, with its pool, costs and answer: each seed splits the resnet lab
table (150 configs with every metric at init and 3 epochs of per-epoch test accuracy) into random halves; the
rung-0 features of the combined score are chosen on one half (capped at ``--max-cost`` training steps, as the
shipped ``BUDGET_INIT_FEATURES`` were chosen) and both schedulers run on the other half (the pool), trials in
one random order per seed, one at a time (``max_concurrent_trials=1``). The budget is counted in training-epoch
equivalents (one epoch of the config = 1; the rung-0 scoring = its measured cost in steps / steps per
epoch); the answer at a budget is the fully trained (3-epoch) trial with the best observed test accuracy
so far; *top* = the best ``ceil(--top * n)`` configs of the pool by lab accuracy.

* ``random + ASHA``: Ray's own ``ASHAScheduler`` (``time_attr="epoch"``, ``max_t=3``, ``grace_period=1``,
  ``reduction_factor=3``: rungs at epochs 1 and 3), fed each trial's per-epoch accuracy;
* ``random + gradnas scheduler``: :class:`nas.integrations.tune_rungs.Promotions` -- the decisions of
  :class:`nas.integrations.tune.GradientScheduler`, the same code, driven without Ray -- with the same rungs:
  every trial pays its rung-0 scoring, the gate stops it below the ``--quantile`` of the earlier trials'
  combined scores (after ``--warmup`` trials), survivors are halved on the accuracy.

Nothing is tuned on the pool: the features come from the other half, ``--quantile``/``--warmup`` are the
scheduler's defaults. Output: the fraction of seeds whose answer is top per budget, and the budget at which
half the seeds find a top config (interpolated on the grid), per scheduler, and their ratio.

``--live`` instead runs both as real Ray Tune runs on mnist5k (resnet_cifar at its CPU bounds; per seed the same
``--samples`` random configs under each scheduler, ``--budget-s`` seconds each, 2 trials at once): best test
accuracy reached and the time to reach ``--threshold``.

Usage::

    nice python benchmarks/tune_scheduler.py --seeds 50
    nice python benchmarks/tune_scheduler.py --live --seeds 3 --budget-s 100

Measured (2026-12, shared 2-core CPU; the full output in docs/results/benchmarks.md, "Ray Tune scheduler"):
replay, 50 seeds: half the seeds find a top-5 % config at 25.5 epochs with ASHA, 21.0 with the gradnas
scheduler (0.82x; the target 0.5x is not met); the whole 75-config pool costs 128.7 vs 76.3 epochs. Live,
3 seeds x 100 s: best accuracy 0.831 vs 0.902 (mean), too few trials (6-9 per run) for the gate to matter.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import budget_search as bs  # noqa: E402  (the lab pool, its costs, the answer's trace, feature choice)

from nas.integrations.tune_rungs import STOP, Promotions  # noqa: E402
from nas.lab.selection import cost_steps  # noqa: E402
from nas.lab.tables import load  # noqa: E402
from objectives.combine import BUDGET_INIT_FEATURES, feature_inputs  # noqa: E402

STRATEGIES = ("random + ASHA", "random + gradnas scheduler")
RUNGS = dict(grace_period=1, reduction_factor=3, max_t=bs.FULL_EPOCHS)
BUDGETS = (3, 4, 6, 9, 12, 18, 24, 36, 48, 72, 96, 144)


def _rung0(pool: bs.Pool, i: int) -> dict[str, Any]:
    """What ``report_gradients`` reports for lab row ``i``: the values the features read, and the config's lr."""
    row = pool.rows.iloc[i]
    keys = feature_inputs(pool.init_features) + ["lr", "batch_size"]
    return {k: float(pd.to_numeric(row[k], errors="coerce")) for k in dict.fromkeys(keys) if k in row.index}


class Run(NamedTuple):
    trace: bs.Trace  # cost and answer after each full training
    gated: int  # trials the gate stopped
    trained: list[int]  # the pool indices trained to the last epoch, in order


def run_scheduler(pool: bs.Pool, order: Sequence[int], gate: bool, quantile: float | None = 0.5,
                  warmup: int = 5) -> Run:
    """Trials in ``order``, one at a time, under Ray's ASHA (``gate=False``) or the gradnas decisions
    (``quantile=None``: its halving without the gate, the scoring still paid)."""
    tr, trained = bs.Trace(pool), []
    if gate:
        p = Promotions(["max"], quantile=quantile, warmup=warmup, features=pool.init_features, **RUNGS)
    else:
        from ray.tune.schedulers import ASHAScheduler

        asha = ASHAScheduler(time_attr="epoch", metric="acc", mode="max", **RUNGS)
    gated = 0
    for i in order:
        trial = SimpleNamespace(trial_id=str(i))
        if gate:
            tr.cost += float(pool.cost_init[i])
            if p.gate(trial.trial_id, _rung0(pool, i)) == STOP:
                gated += 1
                continue
        else:
            asha.on_trial_add(None, trial)
        result: dict[str, float] = {}
        for epoch in range(1, bs.FULL_EPOCHS + 1):
            tr.cost += 1.0
            result = {"epoch": epoch, "acc": pool.epoch_acc(i, epoch)}
            if gate:
                stop = p.on_result(trial.trial_id, epoch, [result["acc"]]) == STOP
            else:
                stop = asha.on_trial_result(None, trial, result) == "STOP"
            if epoch == bs.FULL_EPOCHS:
                tr.trained(i)
                trained.append(i)
            if stop:
                break
        if gate:
            p.on_complete(trial.trial_id, result["epoch"], [result["acc"]])
        else:
            asha.on_trial_complete(None, trial, result)
    return Run(tr, gated, trained)


def replay(df: pd.DataFrame, seeds: int, budgets: Sequence[float], top: float = 0.05, quantile: float = 0.5,
           warmup: int = 5, max_cost: float | None = 2.0, shipped: bool = False, seed0: int = 0) -> pd.DataFrame:
    """One row per (seed, strategy, budget): the answer's lab accuracy, whether it is top, the gate's stops."""
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng(s)
        perm = rng.permutation(len(df))
        tune_rows, pool_rows = df.iloc[perm[: len(df) // 2]], df.iloc[perm[len(df) // 2:]]
        init, early = (BUDGET_INIT_FEATURES, ()) if shipped else bs.features_for(tune_rows, max_cost)
        pool = bs.Pool(pool_rows, cost_steps([f.key for f in init]), 0.0, init, early or init)
        good = pool.top(top)
        order = [int(i) for i in np.random.default_rng([s, 7]).permutation(pool.n)]
        for name, gate in zip(STRATEGIES, (False, True)):
            tr, gated, _ = run_scheduler(pool, order, gate, quantile, warmup)
            for b in budgets:
                ans = tr.answer(b)
                rows.append({**bs._row(s, name, b, pool, good, ans, min(b, tr.cost)), "gated": gated,
                             "total": tr.cost})
    return pd.DataFrame(rows)


def report(runs: pd.DataFrame, seeds: int, top: float) -> str:
    summary = bs.summarize(runs)
    budgets = sorted(summary["budget"].unique())
    lines = [f"fraction of seeds whose answer is top {top:.0%} (budget in epoch equivalents; {seeds} seeds):",
             f"{'scheduler':<28}" + "".join(f"{b:>6g}" for b in budgets)]
    for name in STRATEGIES:
        s = summary[summary["strategy"] == name].set_index("budget")
        lines.append(f"{name:<28}" + "".join(f"{s.loc[b, 'p_top']:6.2f}" for b in budgets))
    lines += ["", "budget at which half the seeds find a top config; mean epochs to run the whole pool:"]
    half = {name: bs.budget_to_half(summary, name) for name in STRATEGIES}
    for name in STRATEGIES:
        r = runs[(runs["strategy"] == name) & (runs["budget"] == budgets[0])]
        stops = f", gate stopped {r['gated'].mean():.1f} of the pool" if name != STRATEGIES[0] else ""
        b = f"{half[name]:7.1f} epochs" if math.isfinite(half[name]) else "  not reached"
        lines.append(f"  {name:<28} {b}  (whole pool {r['total'].mean():.1f}{stops})")
    if all(math.isfinite(v) for v in half.values()):
        lines.append(f"  gradnas / ASHA: {half[STRATEGIES[1]] / half[STRATEGIES[0]]:.2f}x the budget")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ live (Ray Tune, mnist5k)
def _live_trainable(config: dict, configs: list, epochs: int, seed: int, gate: bool) -> None:
    """One candidate: (gradnas) its rung-0 values at iteration 0, then ``nas.training.train`` epoch by epoch,
    the test accuracy reported after each epoch with the wall clock."""
    import torch
    from ray import tune

    from nas.data import load_dataset
    from nas.integrations.tune import report_gradients
    from nas.training import TrainSpec, train
    from search_spaces import get_space

    torch.set_num_threads(1)
    c, i = configs[config["i"]], int(config["i"])
    space = get_space("resnet_cifar")
    space = space.with_bounds(**space.cpu_bounds)
    data = load_dataset("mnist5k", seed=seed)
    if gate:
        model = space.build(c, data.num_classes, data.input_shape, seed=seed * 1000 + i)
        report_gradients(model, (data.train_x[:64], data.train_y[:64]), lr=c["lr"], batch_size=c["batch_size"],
                         metrics={"acc": 0.1, "wall": time.time()})

    def on_epoch(h: dict) -> None:
        accs = [a for a in h["test_acc"] if a is not None]
        tune.report({"acc": float(accs[-1]) if accs else 0.0, "wall": time.time()})

    train(TrainSpec(space="resnet_cifar", config=c, dataset="mnist5k", epochs=epochs, bounds=space.bounds,
                    seed=seed * 1000 + i, data_seed=seed, threads=1), on_epoch=on_epoch)


def live(seeds: int, budget_s: float, epochs: int, samples: int, threshold: float, storage: str) -> pd.DataFrame:
    """Per seed, the same random configs under ASHA and under the gradnas scheduler, ``budget_s`` each."""
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nas.integrations.tune import GradientScheduler
    from search_spaces import get_space

    space = get_space("resnet_cifar")
    space = space.with_bounds(**space.cpu_bounds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    for s in range(seeds):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=s))
        configs = [space.sample(study.ask()) for _ in range(samples)]
        for name, gate in zip(STRATEGIES, (False, True)):
            sched = (GradientScheduler(metric="acc", mode="max", max_t=epochs, **{k: RUNGS[k] for k in (
                "grace_period", "reduction_factor")}) if gate else
                ASHAScheduler(metric="acc", mode="max", max_t=epochs, grace_period=1, reduction_factor=3))
            t0 = time.time()
            grid = tune.Tuner(
                tune.with_parameters(_live_trainable, configs=configs, epochs=epochs, seed=s, gate=gate),
                param_space={"i": tune.grid_search(list(range(samples)))},
                tune_config=tune.TuneConfig(scheduler=sched, max_concurrent_trials=2, time_budget_s=budget_s),
                run_config=tune.RunConfig(storage_path=str(Path(storage).resolve()), verbose=0,
                                          name=f"{'gradnas' if gate else 'asha'}-s{s}")).fit()
            frames = [r.metrics_dataframe for r in grid if r.metrics_dataframe is not None]
            res = pd.concat(frames) if frames else pd.DataFrame(columns=["acc", "wall"])
            res = res[res["acc"].notna()] if len(res) else res
            reached = res[res["acc"] >= threshold]["wall"] if len(res) else pd.Series(dtype=float)
            rows.append({"seed": s, "strategy": name, "best_acc": float(res["acc"].max()) if len(res) else math.nan,
                         "time_to_threshold": float(reached.min() - t0) if len(reached) else math.nan,
                         "trials_started": len(frames), "wall": time.time() - t0})
            print(rows[-1], flush=True)
    ray.shutdown()
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="benchmarks/tables/resnet_mnist5k.csv.gz", help="the resnet lab table")
    p.add_argument("--seeds", type=int, default=50, help="seeds (random halves) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    p.add_argument("--top", type=float, default=0.05, help="fraction of the pool that is top (default: %(default)s)")
    p.add_argument("--quantile", type=float, default=0.5, help="the gate's quantile (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="the gate's warm-up trials (default: %(default)s)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="budgets (default: %(default)s)")
    p.add_argument("--max-cost", type=float, default=2.0,
                   help="cap of the rung-0 feature selection in training steps; 0: none (default: %(default)s)")
    p.add_argument("--shipped", action="store_true", help="the shipped rung-0 set (tuned on every row)")
    p.add_argument("--live", action="store_true", help="instead: live Ray Tune runs on mnist5k (ASHA vs gradnas)")
    p.add_argument("--budget-s", type=float, default=100, help="live: wall-clock seconds per run (default: %(default)s)")
    p.add_argument("--samples", type=int, default=40, help="live: random configs per seed (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="live: max_t in epochs (default: %(default)s)")
    p.add_argument("--threshold", type=float, default=0.9, help="live: the accuracy to reach (default: %(default)s)")
    p.add_argument("--storage", default="runs/tune_scheduler", help="live: Tune's storage (default: %(default)s)")
    args = p.parse_args(argv)
    if args.live:
        if args.seeds < 1 or args.budget_s <= 0 or args.samples < 1 or args.epochs < 1:
            p.error("need --seeds, --samples, --epochs >= 1 and --budget-s > 0")
        warnings.filterwarnings("ignore")
        res = live(args.seeds, args.budget_s, args.epochs, args.samples, args.threshold, args.storage)
        print(f"live: mnist5k, resnet_cifar (CPU bounds), {args.samples} random configs per seed, "
              f"{args.budget_s:g} s per run, 2 trials at once, max_t {args.epochs} epochs")
        print(res.to_string(index=False))
        print(res.groupby("strategy")[["best_acc", "time_to_threshold", "trials_started"]].mean().to_string())
        return 0
    if args.seeds < 1 or not 0 < args.top <= 1 or not 0 <= args.quantile <= 1 or args.warmup < 0:
        p.error("need --seeds >= 1, 0 < --top <= 1, 0 <= --quantile <= 1 and --warmup >= 0")
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        p.error(f"--budgets must be comma-separated numbers, got {args.budgets!r}")
    if not Path(args.table).is_file():
        p.error(f"no table at {args.table}")
    warnings.filterwarnings("ignore")
    df = load(args.table)
    runs = replay(df, args.seeds, budgets, args.top, args.quantile, args.warmup, args.max_cost or None,
                  args.shipped, args.seed)
    print(f"table: {args.table} ({len(df)} configs; pools of {len(df) - len(df) // 2}, rung-0 features "
          f"{'shipped (not held out)' if args.shipped else 'chosen on the other half'}); gate quantile "
          f"{args.quantile:g}, warm-up {args.warmup}; rungs at epochs 1 and {bs.FULL_EPOCHS}, reduction factor 3")
    print(report(runs, args.seeds, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
