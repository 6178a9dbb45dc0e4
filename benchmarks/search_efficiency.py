"""Search efficiency on a saved proxy-vs-training table: trainings needed to find a top configuration.

The table written by ``benchmarks/proxy_vs_training.py`` is a small tabular benchmark: every config has
its proxy values and its trained accuracy. A strategy is an order in which to train the configs; its
cost is the number of trainings until the first *top* configuration is trained. This script compares:

* ``random order``: a uniformly random permutation;
* each single proxy (every metric at init and after the early steps, the derived values, the training
  loss baselines): configs sorted by the proxy in its better direction (``nas.lab.keys.direction``),
  ties broken at random; configs without a finite value come last (as failed trials of a search do),
  in random order;
* ``gradnas``: the gradnas multi-objective ranking of the default objectives
  (``nas.study.DEFAULT_OBJECTIVES``: confusion, diversity, kappa_w at init, minimized): by non-dominated
  sorting rank (``nas.validate.nondominated_ranks``: 1 = the Pareto front), then by the mean rank of
  the objectives (``nas.lab.correlations.mean_rank``), then at random; configs missing an objective last;
* ``gradnas+constraints``: the same after putting the configs that satisfy the default constraints
  (``nas.study.DEFAULT_CONSTRAINTS``: ``rank_input<=0.15``, ``loss_drop>=0``) first, as
  ``python -m nas validate --top K`` orders a default search's trials;
* ``gradnas_mean_rank``: by the mean rank alone.

Top configurations: the configs whose best test accuracy (``val_best_acc``) is at least the k-th best,
``k = max(1, ceil(--top * n))`` over the n configs with a finite accuracy (ties at the boundary are all
top, so there can be more than k). Every strategy is run with ``--seeds`` (20) random seeds (the random
tie-breaks of seed s are shared by all strategies; ``numpy.random.default_rng(--seed + s)``); the table
gives the mean ± standard deviation, median, best and worst number of trainings, sorted by the mean.

Check: for a random order the number of trainings to the first of K top configs among n has the closed
form mean ``(n + 1) / (K + 1)`` and variance ``K (n + 1) (n - K) / ((K + 1)^2 (K + 2))``; both are
printed beside the simulated random order.

Usage::

    python benchmarks/search_efficiency.py --table runs/proxy_vs_training/resnet_cifar_mnist5k_s0_e3.csv
    python benchmarks/search_efficiency.py --table TABLE.csv --seeds 100 --top 0.1
"""

from __future__ import annotations

import argparse
import math
import sys
import types
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from nas.lab.build import finished
from nas.lab.correlations import mean_rank
from nas.lab.keys import ACC, COMBINED, direction, kind_of, proxy_keys
from nas.lab.tables import steps_view, with_config
from nas.report import stats
from nas.report.stats import parse_number
from nas.study import DEFAULT_EARLY_STEPS, parse_constraint, parse_objectives
from nas.search.ranking import nondominated_ranks
from objectives.combine import combined_score

RANDOM = "random order"
GRADNAS = "gradnas"
OLD = "old defaults"
OLD_CONSTRAINED = "old defaults+constraints"


def top_mask(acc: np.ndarray, top: float) -> tuple[np.ndarray, int]:
    """Which configs are top (accuracy >= the k-th best, ``k = max(1, ceil(top * n))``), and k."""
    n = len(acc)
    k = max(1, math.ceil(top * n - 1e-9))
    k = min(k, n)
    threshold = np.sort(acc)[::-1][k - 1]
    return acc >= threshold, k


def random_expectation(n: int, good: int) -> tuple[float, float]:
    """Mean and standard deviation of the position of the first of ``good`` marked items in a uniformly
    random order of ``n``: ``(n+1)/(K+1)`` and ``sqrt(K (n+1) (n-K) / ((K+1)^2 (K+2)))``."""
    mean = (n + 1) / (good + 1)
    var = good * (n + 1) * (n - good) / ((good + 1) ** 2 * (good + 2))
    return mean, math.sqrt(var)


def oriented(values: Sequence[Any], direction: str) -> np.ndarray:
    """Table cells (:func:`~nas.report.stats.parse_number`) turned so that larger is better; non-finite or
    missing values become ``-inf`` (last): :func:`nas.report.stats.oriented`."""
    return stats.oriented([parse_number(x) for x in values], direction)


def first_hit(order: np.ndarray, good: np.ndarray) -> int:
    """Trainings needed: 1 + the position of the first top config in ``order``."""
    hits = np.flatnonzero(good[order])
    return int(hits[0]) + 1


#: The search's defaults before the proxy lab (thesis directions), kept as a strategy to compare with.
OLD_OBJECTIVES = "confusion:min,diversity:min,kappa_w:min"
OLD_CONSTRAINTS = ("rank_input<=0.15", "loss_drop>=0")


def combined_keys(df: pd.DataFrame, phase: str) -> list[np.ndarray] | None:
    """Sort key of the shipped combined score (``objectives.combined_score``), as ``validate --top`` orders
    a default search's trials: ``init``, or ``early`` on the table's values after the search's default
    early steps (``<m>@50`` columns as ``<m>@early``: ``nas.lab.tables.steps_view``); None without its inputs."""
    table = with_config(df)
    if phase == "early":
        table = steps_view(table, str(DEFAULT_EARLY_STEPS))
    try:
        return [-combined_score(table, phase).to_numpy()]
    except KeyError:
        return None


def gradnas_keys(df: pd.DataFrame, constrained: bool = False) -> list[np.ndarray]:
    """Sort keys (most significant first, smaller = trained earlier) of the old default ranking: non-dominated
    rank of :data:`OLD_OBJECTIVES`, then their mean rank (with ``constrained``: :data:`OLD_CONSTRAINTS` first)."""
    objs = parse_objectives(OLD_OBJECTIVES)
    n = len(df)
    keys: list[np.ndarray] = []
    if constrained:
        cons = [parse_constraint(c) for c in OLD_CONSTRAINTS]
        records = df.to_dict("records")
        feasible = np.array([all(c.violation({c.key: parse_number(r.get(c.key))}) <= 0 for c in cons)
                             for r in records], dtype=bool)
        keys.append((~feasible).astype(float))
    nd = np.full(n, np.inf)
    if all(o.key in df.columns for o in objs):
        vals = np.column_stack([df[o.key].map(parse_number).to_numpy(dtype=float) for o in objs])
        ok = np.flatnonzero(np.isfinite(vals).all(axis=1))
        if len(ok):
            import optuna

            dirs = [optuna.study.StudyDirection.MINIMIZE if o.direction == "minimize"
                    else optuna.study.StudyDirection.MAXIMIZE for o in objs]
            trials = [types.SimpleNamespace(values=list(vals[i])) for i in ok]
            nd[ok] = nondominated_ranks(trials, dirs)
    mr = mean_rank(df, objs)
    keys += [nd, np.where(np.isfinite(mr), mr, np.inf)]
    return keys


def strategies(df: pd.DataFrame) -> dict[str, tuple[str, list[np.ndarray]]]:
    """name -> (kind, sort keys most significant first; smaller = trained earlier) of every ranking."""
    out: dict[str, tuple[str, list[np.ndarray]]] = {}
    for key in proxy_keys(df.columns):
        out[key] = (kind_of(key), [-oriented(df[key].tolist(), direction(key))])
    for phase in ("init", "early"):
        keys = combined_keys(df, phase)
        if keys is not None:
            out[f"{GRADNAS} combined, {phase}"] = ("gradnas", keys)
    if all(k in df.columns for k in ("confusion", "diversity", "kappa_w")):
        out[OLD] = ("old", gradnas_keys(df))
        out[OLD_CONSTRAINED] = ("old", gradnas_keys(df, constrained=True))
    mr = mean_rank(df)
    out[COMBINED] = ("combined", [np.where(np.isfinite(mr), mr, np.inf)])
    return out


def simulate(df: pd.DataFrame, top: float = 0.05, seeds: int = 20, seed: int = 0) -> dict[str, Any]:
    """Trainings needed per strategy and seed on the configs of ``df`` with a finite accuracy.

    Returns:
        ``{"n", "k", "good", "excluded", "results": {name: (kind, [trainings per seed])}, "random_expected":
        (mean, sd)}``.
    """
    acc_all = df[ACC].map(parse_number).to_numpy(dtype=float) if ACC in df.columns else np.array([])
    keep = np.isfinite(acc_all)
    pool = df[keep].reset_index(drop=True)
    acc = acc_all[keep]
    n = len(pool)
    if n == 0:
        raise SystemExit("error: no config of the table has a finite accuracy (val_best_acc)")
    good, k = top_mask(acc, top)
    ranked = strategies(pool)
    results: dict[str, tuple[str, list[int]]] = {RANDOM: ("random", [])}
    results.update({name: (kind, []) for name, (kind, _) in ranked.items()})
    for s in range(seeds):
        rng = np.random.default_rng(seed + s)
        tiebreak = rng.random(n)
        results[RANDOM][1].append(first_hit(np.argsort(tiebreak, kind="stable"), good))
        for name, (_, keys) in ranked.items():
            order = np.lexsort([tiebreak] + list(reversed(keys)))  # lexsort: last key most significant
            results[name][1].append(first_hit(order, good))
    return {"n": n, "k": k, "good": int(good.sum()), "excluded": int((~keep).sum()), "results": results,
            "random_expected": random_expectation(n, int(good.sum()))}


def summary_rows(sim: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per strategy: mean, sd (ddof=0), median, best, worst; sorted by mean, then name."""
    rows = []
    for name, (kind, runs) in sim["results"].items():
        a = np.asarray(runs, dtype=float)
        rows.append({"strategy": name, "kind": kind, "mean": float(a.mean()), "sd": float(a.std()),
                     "median": float(np.median(a)), "best": int(a.min()), "worst": int(a.max())})
    rows.sort(key=lambda r: (r["mean"], r["strategy"]))
    return rows


#: Below this many top configs the summary warns that each proxy's figure is a single draw.
FEW_TOP = 5


def format_summary(sim: dict[str, Any], top: float, seeds: int) -> str:
    n, good = sim["n"], sim["good"]
    mean, sd = sim["random_expected"]
    rand = np.asarray(sim["results"][RANDOM][1], dtype=float)
    lines = [
        f"{n} configs with a trained accuracy" + (f" ({sim['excluded']} without, left out)" if sim["excluded"] else "")
        + f"; top {top:.3g}: k = {sim['k']}, {good} config(s) at or above the k-th best accuracy; {seeds} seed(s)",
        f"random order: simulated {rand.mean():.2f} ± {rand.std():.2f}; closed form (n+1)/(K+1) = {mean:.2f} "
        f"± {sd:.2f}",
    ]
    if good < FEW_TOP:
        lines.append(f"caution: {good} top config(s) only: a proxy's figure is where those few sit in its order "
                     "(one draw; the seeds only break ties), so differences of a few trainings mean little; "
                     "use a larger table or a larger --top")
    lines.append("")
    header = (f"{'strategy':26s} {'kind':8s} {'mean':>7s} {'± sd':>6s} {'median':>7s} {'best':>5s} {'worst':>6s} "
              f"{'vs random':>9s}")
    lines += [header, "-" * len(header)]
    for r in summary_rows(sim):
        lines.append(f"{r['strategy']:26s} {r['kind']:8s} {r['mean']:7.2f} {r['sd']:6.2f} {r['median']:7.1f} "
                     f"{r['best']:5d} {r['worst']:6d} {r['mean'] / mean:8.2f}x")
    lines.append("\n'vs random' = mean / closed-form mean of a random order (< 1: the strategy needs fewer trainings)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, help="CSV written by benchmarks/proxy_vs_training.py")
    p.add_argument("--seeds", type=int, default=20, help="random seeds averaged over (default: %(default)s)")
    p.add_argument("--top", type=float, default=0.05,
                   help="fraction of configs that count as top (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if not 0 < args.top <= 1:
        p.error("--top must be in (0, 1]")
    if not Path(args.table).is_file():
        raise SystemExit(f"error: no table at {args.table}")
    df = pd.read_csv(args.table)
    if "main_done" in df.columns:
        df = finished(df)
    sim = simulate(df, args.top, args.seeds, args.seed)
    print(f"table: {args.table}")
    print(format_summary(sim, args.top, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
