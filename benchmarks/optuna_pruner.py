"""Optuna's TPE with gradnas's GradientPruner, against TPE alone and TPE + Hyperband: replayed and live.

(a) **Replay** on a proxy-lab table (``benchmarks/tables/*.csv.gz``), as ``benchmarks/budget_search.py``
replays TPE + Hyperband: every seed splits the lab into random halves; the rung-0 feature set is chosen on
one half (``budget_search.features_for``: capped at 2 training steps) and the study searches the other (the
pool: a sampled config maps to the nearest unused pool config, ``budget_baselines.Nearest``). Costs are
training-epoch equivalents: one epoch of the config = 1, the rung-0 scoring = its measured cost in steps /
steps per epoch. A trained config's observation is its lab test accuracy (``val_best_acc``); a seed
*reaches* a top-5 % config when its best observed trained config is in the pool's top 5 % by lab accuracy.
Strategies (``--quantile``, ``--warmup``: the GradientPruner's settings):

* ``TPE``: every config trained 3 epochs;
* ``TPE + Hyperband``: ``HyperbandPruner(1, 3, 3)`` on the test accuracy reported after each epoch;
* ``TPE + GradientPruner``: the rung-0 values stored and judged by ``GradientPruner.decide`` (the Optuna
  integration's own code, on the trial's user attributes), survivors trained 3 epochs;
* ``TPE + Gradient + Hyperband``: ``GradientPruner(then=HyperbandPruner(1, 3, 3))``.

Output: the budget by which half and 80 % of the seeds reached a top-5 % config (the median and 80th
percentile over seeds of the first cost at which each did; inf when fewer seeds ever did).

(b) **Multi-objective replay** (accuracy max, parameters min) on the same pools: TPE (multi-objective)
alone vs with the GradientPruner; at equal budgets, the fraction of trials pruned and the hypervolume of the
trained configs' (lab accuracy, log10 parameters) as a fraction of the pool's own front's hypervolume
(reference point: accuracy 0, the pool's largest log10 parameters).

(c) **Live** on mnist5k (``--live SECONDS``; 0 skips): the example's objective
(``examples/optuna_pruned.py``: an MLP, lr, batch size), trained ``--live-epochs`` epochs with the test
accuracy reported after each, for each strategy and 3 seeds, each run given the same wall-clock budget.
Output: best test accuracy, trials trained / pruned, and seconds to reach ``--live-target`` accuracy.

Usage::

    nice python benchmarks/optuna_pruner.py --seeds 50 --live 45
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import optuna  # noqa: E402

import budget_search as bs  # noqa: E402  (its Pool, Trace and held-out feature choice)
from budget_baselines import Nearest  # noqa: E402

from nas.integrations.optuna import GradientPruner, values_key  # noqa: E402
from nas.lab.selection import cost_steps  # noqa: E402
from nas.lab.tables import load  # noqa: E402
from objectives.combine import feature_inputs  # noqa: E402
from search_spaces import get_space  # noqa: E402

FULL = bs.FULL_EPOCHS
STRATEGIES = ("TPE", "TPE + Hyperband", "TPE + GradientPruner", "TPE + Gradient + Hyperband")
MO_BUDGETS = (30, 60, 90, 120, 180)


def _hyperband() -> optuna.pruners.HyperbandPruner:
    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=FULL, reduction_factor=3)


def _pruner(strategy: str, features, quantile: float, warmup: int) -> optuna.pruners.BasePruner:
    if strategy == "TPE":
        return optuna.pruners.NopPruner()
    if strategy == "TPE + Hyperband":
        return _hyperband()
    then = _hyperband() if "Hyperband" in strategy else None
    return GradientPruner(quantile=quantile, warmup=warmup, features=features, then=then)


def _space(pool: bs.Pool):
    import json

    settings = json.loads(pool.rows["settings"].iloc[0])
    return get_space(settings["space"]).with_bounds(**settings["bounds"])


def _params(pool: bs.Pool) -> np.ndarray:
    """Parameters of each pool config: the table's, or counted on the built model where the table lacks it."""
    if not hasattr(pool, "params"):
        params = np.array(pd.to_numeric(pool.rows["params"], errors="coerce"), dtype=float)
        space = _space(pool)
        for i in np.flatnonzero(~np.isfinite(params)):
            model = space.build(space.validate(pool.configs[i]), 10, (1, 28, 28), seed=0)
            params[i] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
        pool.params = params
    return pool.params


def _values(pool: bs.Pool, i: int) -> dict[str, float]:
    """The rung-0 inputs of pool config ``i`` (metrics at init and the config's lr and batch size)."""
    row = pool.rows.iloc[i]
    keys = feature_inputs(pool.init_features) + ["lr", "batch_size"]
    return {k: float(pd.to_numeric(row[k], errors="coerce")) for k in dict.fromkeys(keys) if k in row.index}


def _jsonable(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def run_study(pool: bs.Pool, strategy: str, seed: int, quantile: float, warmup: int, multi: bool = False,
              on_trial: Callable[[float, int | None, bool], None] | None = None) -> optuna.Study:
    """One TPE study over the pool; ``on_trial(cost so far, trained config or None, pruned by gradients)``."""
    space, nearest = _space(pool), Nearest(pool)
    pruner = _pruner(strategy, pool.init_features, quantile, warmup)
    study = optuna.create_study(study_name=f"{strategy}-{seed}", sampler=optuna.samplers.TPESampler(seed=seed),
                                directions=["maximize", "minimize"] if multi else ["maximize"], pruner=pruner)
    params = _params(pool) if multi else None
    cost = 0.0
    for _ in range(pool.n):
        trial = study.ask()
        i = nearest(space.sample(trial))
        if isinstance(pruner, GradientPruner):
            cost += float(pool.cost_init[i])
            values = _values(pool, i)
            trial.set_user_attr(values_key("init"), _jsonable(values))
            verdict, _ = pruner.decide(study, trial.number, values, "init")
            if verdict.prune:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                if on_trial:
                    on_trial(cost, None, True)
                continue
        pruned = False
        for epoch in range(1, FULL + 1):
            cost += 1.0
            if not multi:
                trial.report(pool.epoch_acc(i, epoch), epoch)
                if epoch < FULL and trial.should_prune():
                    pruned = True
                    break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            if on_trial:
                on_trial(cost, None, False)
            continue
        acc = pool.epoch_acc(i, FULL)
        study.tell(trial, [acc, float(params[i])] if multi else acc)
        if on_trial:
            on_trial(cost, i, False)
    return study


# ------------------------------------------------------------------------------------ (a) budget to a top config
def first_hit(pool: bs.Pool, strategy: str, seed: int, quantile: float, warmup: int, top: float) -> float:
    """The cost at which the best observed trained config is first a top config (inf: never)."""
    good, trace = pool.top(top), bs.Trace(pool)
    hit = [math.inf]

    def on_trial(cost: float, i: int | None, _: bool) -> None:
        if i is not None:
            trace.cost = cost
            trace.trained(i)
            if hit[0] == math.inf and good[trace.best]:
                hit[0] = cost

    run_study(pool, strategy, seed, quantile, warmup, on_trial=on_trial)
    return hit[0]


def pools(df: pd.DataFrame, seeds: int, seed0: int, max_cost: float, old_cost_steps: float = 6.2):
    """(seed, pool) per seed: the held-out half, features chosen on the other half (``budget_search``'s split)."""
    for s in range(seed0, seed0 + seeds):
        perm = np.random.default_rng(s).permutation(len(df))
        tune, rows = df.iloc[perm[: len(df) // 2]], df.iloc[perm[len(df) // 2:]]
        init, early = bs.features_for(tune, max_cost)
        yield s, bs.Pool(rows, cost_steps([f.key for f in init]), old_cost_steps, init, early)


def seeds_quantile(hits: Sequence[float], q: float) -> float:
    """The budget by which a fraction ``q`` of the seeds had reached (the ceil(q n)-th smallest first hit)."""
    ordered = sorted(hits)
    return float(ordered[max(0, math.ceil(q * len(ordered)) - 1)])


# ------------------------------------------------------------------------------------ (b) multi-objective
def hypervolume(points: np.ndarray, ref: tuple[float, float]) -> float:
    """2-D hypervolume of ``(accuracy, log10 params)`` points (accuracy maximized, size minimized) dominated
    from ``ref`` = (worst accuracy, largest size): a sweep over the points sorted by size."""
    pts = [(a, p) for a, p in points if a > ref[0] and p < ref[1]]
    area, best_acc = 0.0, ref[0]
    for a, p in sorted(pts, key=lambda t: (t[1], -t[0])):
        if a > best_acc:
            area += (a - best_acc) * (ref[1] - p)
            best_acc = a
    return area


def mo_replay(pool: bs.Pool, seed: int, quantile: float, warmup: int, budgets: Sequence[float]) -> list[dict[str, Any]]:
    logp = np.log10(_params(pool))
    ref = (0.0, float(np.nanmax(logp)))
    full = hypervolume(np.column_stack([pool.acc, logp]), ref)
    rows = []
    for strategy in ("TPE", "TPE + GradientPruner"):
        events: list[tuple[float, int | None, bool]] = []
        run_study(pool, strategy, seed, quantile, warmup, multi=True, on_trial=lambda c, i, p: events.append((c, i, p)))
        for b in budgets:
            seen = [e for e in events if e[0] <= b + 1e-9]
            trained = [i for _, i, _ in seen if i is not None]
            hv = hypervolume(np.column_stack([pool.acc[trained], logp[trained]]), ref) if trained else 0.0
            rows.append({"seed": seed, "strategy": strategy, "budget": b, "trials": len(seen),
                         "pruned": sum(p for _, _, p in seen) / max(1, len(seen)), "hv": hv / full})
    return rows


# ------------------------------------------------------------------------------------ (c) live on mnist5k
def live(seconds: float, epochs: int, target: float, quantile: float, warmup: int, seeds: Sequence[int]) -> pd.DataFrame:
    """Each strategy x seed: a TPE study on the example's objective for ``seconds`` of wall clock."""
    import torch
    import torch.nn.functional as F

    from nas.data import load_dataset
    from nas.integrations.optuna import check

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from optuna_pruned import build

    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    xt, yt, xv, yv = data.train_x, data.train_y, data.test_x, data.test_y
    rows = []
    for seed in seeds:
        for strategy in STRATEGIES:
            pruner = _pruner(strategy, None, quantile, warmup)
            study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                        pruner=pruner, study_name=f"live-{strategy}-{seed}")
            start, reached = time.perf_counter(), [math.inf]

            def objective(trial: optuna.Trial) -> float:
                lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
                bsz = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
                torch.manual_seed(seed * 100_000 + trial.number)
                model = build(trial, xt[0].numel(), data.num_classes)
                if isinstance(pruner, GradientPruner):
                    check(trial, model, (xt[:64], yt[:64]))
                opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
                gen = torch.Generator().manual_seed(trial.number)
                acc = 0.0
                for epoch in range(1, epochs + 1):
                    for idx in torch.randperm(len(xt), generator=gen).split(bsz):
                        opt.zero_grad()
                        F.cross_entropy(model(xt[idx]), yt[idx]).backward()
                        opt.step()
                    with torch.no_grad():
                        acc = float((model(xv).argmax(1) == yv).float().mean())
                    if acc >= target and reached[0] == math.inf:
                        reached[0] = time.perf_counter() - start
                    trial.report(acc, epoch)
                    if epoch < epochs and trial.should_prune():
                        raise optuna.TrialPruned()
                return acc

            study.optimize(objective, timeout=seconds, catch=(ValueError,))
            states = [t.state.name for t in study.trials]
            done = [t.value for t in study.trials if t.state.name == "COMPLETE"]
            rows.append({"seed": seed, "strategy": strategy, "trials": len(states),
                         "trained": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
                         "best_acc": max(done) if done else math.nan, "to_target_s": reached[0]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ driver
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="benchmarks/tables/resnet_mnist5k.csv.gz", help="a proxy-lab table")
    p.add_argument("--seeds", type=int, default=50, help="replay seeds (random halves); 0: no replay (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    p.add_argument("--top", type=float, default=0.05, help="fraction of the pool that is top (default: %(default)s)")
    p.add_argument("--quantile", type=float, default=0.5, help="GradientPruner quantile (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="GradientPruner warm-up (default: %(default)s)")
    p.add_argument("--max-cost", type=float, default=2.0, help="rung-0 selection cap, training steps (default: %(default)s)")
    p.add_argument("--no-mo", action="store_true", help="skip the multi-objective replay")
    p.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                   help="wall-clock budget of each live mnist5k run (4 strategies x 3 seeds); 0: skip (default)")
    p.add_argument("--live-epochs", type=int, default=3, help="epochs per live trial (default: %(default)s)")
    p.add_argument("--live-target", type=float, default=0.93, help="live accuracy to reach (default: %(default)s)")
    args = p.parse_args(argv)
    if args.seeds < 0 or not 0 < args.top <= 1 or not 0 <= args.quantile <= 1 or args.warmup < 0 or args.live < 0:
        p.error("need --seeds >= 0, 0 < --top <= 1, 0 <= --quantile <= 1, --warmup >= 0, --live >= 0")
    if not Path(args.table).is_file():
        p.error(f"no table at {args.table}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    df = load(args.table)
    hits: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    mo: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for s, pool in pools(df, args.seeds, args.seed, args.max_cost):
        for strategy in STRATEGIES:
            hits[strategy].append(first_hit(pool, strategy, s, args.quantile, args.warmup, args.top))
        if not args.no_mo:
            mo += mo_replay(pool, s, args.quantile, args.warmup, MO_BUDGETS)
    if args.seeds:
        report_replay(args, df, hits, mo, time.perf_counter() - t0)
    if args.live > 0:
        t1 = time.perf_counter()
        res = live(args.live, args.live_epochs, args.live_target, args.quantile, args.warmup, seeds=(0, 1, 2))
        print(f"\n(c) live mnist5k: {args.live:g} s wall clock per run, {args.live_epochs} epochs per trial, 3 seeds "
              f"({time.perf_counter() - t1:.0f} s in all); seconds to test accuracy {args.live_target:g}")
        print(res.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        agg = res.groupby("strategy", sort=False).agg(best_acc=("best_acc", "mean"), trained=("trained", "mean"),
                                                      pruned=("pruned", "mean"), to_target_s=("to_target_s", "median"))
        print(agg.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


def report_replay(args: argparse.Namespace, df: pd.DataFrame, hits: dict[str, list[float]], mo: list[dict[str, Any]],
                  seconds: float) -> None:
    print(f"(a) replay: {args.table} ({len(df)} configs, pools of {len(df) - len(df) // 2}, rung-0 features chosen on "
          f"the other half, cap {args.max_cost:g} steps); {args.seeds} seeds; GradientPruner quantile "
          f"{args.quantile:g}, warmup {args.warmup}; {seconds:.0f} s")
    print(f"budget (epoch equivalents) by which a fraction of the seeds reached a top-{args.top:.0%} config:")
    print(f"  {'strategy':<28}{'half':>8}{'80 %':>8}{'never':>7}")
    for strategy, h in hits.items():
        print(f"  {strategy:<28}{seeds_quantile(h, 0.5):8.1f}{seeds_quantile(h, 0.8):8.1f}{sum(map(math.isinf, h)):7d}")
    for strategy in ("TPE + GradientPruner", "TPE + Gradient + Hyperband"):
        ratios = [seeds_quantile(hits[strategy], q) / seeds_quantile(hits["TPE + Hyperband"], q) for q in (0.5, 0.8)]
        print(f"  {strategy} / TPE + Hyperband: {ratios[0]:.2f}x (half), {ratios[1]:.2f}x (80 %)")
    if mo:
        t = pd.DataFrame(mo).groupby(["strategy", "budget"]).agg(hv=("hv", "mean"), pruned=("pruned", "mean"),
                                                                trials=("trials", "mean")).reset_index()
        print("\n(b) multi-objective replay (accuracy, parameters): hypervolume of the trained configs / the pool "
              f"front's, mean over {args.seeds} seeds; fraction of trials pruned")
        print(f"  {'strategy':<24}" + "".join(f"{b:>16g}" for b in MO_BUDGETS))
        for strategy, g in t.groupby("strategy"):
            cells = "".join(f"{r.hv:8.3f} ({r.pruned:4.0%})" for r in g.sort_values("budget").itertuples())
            print(f"  {strategy:<24}{cells}")


if __name__ == "__main__":
    sys.exit(main())
