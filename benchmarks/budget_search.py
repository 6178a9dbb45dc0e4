"""Search under a budget, replayed on the proxy lab: best accuracy found vs budget, five strategies.

The resnet lab table (``benchmarks/tables/resnet_mnist5k.csv.gz``) has, for 150 configs, every metric at
init, the 50-step training loss, and 3 epochs of the validation recipe with per-epoch test accuracy: a
tabular benchmark. A strategy spends a budget counted in **training-epoch equivalents** (one epoch of
the config at hand = 1; a training step = ``1 / steps_per_epoch`` with ``steps_per_epoch = 4000 // batch``;
scoring the rung-0 metrics = their cost in steps, ``objectives/data/metric_costs.json``), and
ends with an answer: the fully trained (3-epoch) config with the best observed test accuracy
(``val_best_acc``, the run with the trial's seed). The answer is judged by its lab accuracy ``acc`` (the
mean of the two seeds' best test accuracies, so the selection's own seed noise does not flatter it);
*top* = the best ``ceil(--top * n)`` configs of the pool by ``acc``.

Held out: each seed splits the lab into two random halves; the combined score's features are chosen on
one half (``nas.lab.selection.select`` at init capped at ``--max-cost`` training steps, then the early loss plus
that set, as the shipped ``BUDGET_INIT_FEATURES`` were chosen on the whole lab) and every strategy searches
the other half (the pool). ``--shipped`` uses the shipped feature sets instead (tuned on every row: not a
held-out figure).

Strategies (all on the same pool and seed):

* ``gradnas multi-fidelity``: :func:`nas.search.plan.plan` for the budget with the pool's mean costs
  (rungs init -> 50 steps -> 1 epoch -> 3 epochs, eta 3), re-planned after each rung with the cost
  actually spent (:func:`nas.search.plan.replan`); promotion by the combined init score, the combined
  early score, then the 1-epoch accuracy; candidates drawn uniformly from the pool;
* ``random, full training``: configs in random order, each trained 3 epochs;
* ``random + loss@50 filter``: batches of 9 random configs run 50 steps each, the one with the lowest
  training loss (``train_loss_last@50``) trained 3 epochs;
* ``TPE + Hyperband``: Optuna's ``TPESampler`` with ``HyperbandPruner(min_resource=1, max_resource=3,
  reduction_factor=3)`` on the test accuracy reported after each epoch; a sampled config is mapped to the
  nearest config of the pool not yet evaluated (categorical mismatches count 1 each, numbers by their
  distance over the range, log for lr and batch size);
* ``NSGA-II, old defaults``: Optuna's ``NSGAIISampler`` on the old objectives (confusion, diversity,
  kappa_w at init, minimized; constraint rank_input <= 0.15), each trial costing ``--old-cost-steps``
  steps of scoring; after every 9 trials the best untrained trial (feasible, then non-dominated rank,
  then mean rank) is trained 3 epochs.

Anytime strategies answer at every budget from one run; the multi-fidelity search is rerun per budget
(its plan depends on it). Output: mean lab accuracy of the answer and the fraction of seeds whose answer
is top, per strategy and budget; the budget at which half the seeds find a top config (interpolated on
the grid); ``--plot PNG`` draws both curves.

Usage::

    python benchmarks/budget_search.py --table benchmarks/tables/resnet_mnist5k.csv.gz --seeds 50 \\
        --plot runs/budget_search.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import optuna

from nas.lab.selection import candidate_features, cost_steps, select, select_structured
from nas.lab.tables import load, phase_table, steps_view
from nas.search.plan import BudgetError, plan, promote, replan
from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, Feature, rank_aggregate

TRAIN_SIZE = 4000  # mnist5k train split
FULL_EPOCHS = 3
EARLY_STEPS = 50
FILTER_BATCH = 9
BUDGETS = (4, 6, 9, 12, 18, 24, 36, 48, 72, 96, 144)
STRATEGIES = ("gradnas multi-fidelity", "gradnas async", "gradnas async + brackets", "random, full training",
              "random + loss@50 filter", "TPE + Hyperband", "NSGA-II, old defaults")
#: The ladder variants (benchmarks/budget_simulator.py's run_ladder on one worker): (promotion, most brackets).
LADDER = {"gradnas async": ("async", 1), "gradnas async + brackets": ("async", 4)}


# ------------------------------------------------------------------------------------ the pool
class Pool:
    """The configs a seed searches: costs (epoch equivalents) and what each rung observes."""

    def __init__(self, rows: pd.DataFrame, init_cost_steps: float, old_cost_steps: float,
                 init_features: Sequence[Feature], early_features: Sequence[Feature]) -> None:
        self.rows = rows.reset_index(drop=True)
        self.view = steps_view(self.rows, str(EARLY_STEPS))
        self.n = len(self.rows)
        self.configs = [json.loads(c) for c in self.rows["config"]]
        batch = np.array([c["batch_size"] for c in self.configs], dtype=float)
        spe = np.maximum(1, TRAIN_SIZE // batch)
        self.cost_init = init_cost_steps / spe
        self.cost_old = old_cost_steps / spe
        self.cost_early = EARLY_STEPS / spe
        self.acc = self.rows["acc"].to_numpy(dtype=float)
        self.observed = pd.to_numeric(self.rows["val_best_acc"], errors="coerce").to_numpy(dtype=float)
        self.curves = [_curve(c) for c in self.rows["val_acc_curve"]]
        self.loss50 = pd.to_numeric(self.rows["train_loss_last@50"], errors="coerce").to_numpy(dtype=float)
        self.init_features, self.early_features = tuple(init_features), tuple(early_features)

    def top(self, frac: float) -> np.ndarray:
        k = max(1, math.ceil(frac * self.n))
        return self.acc >= np.sort(self.acc)[::-1][k - 1]

    def epoch_acc(self, i: int, epoch: int) -> float:
        """Test accuracy after ``epoch`` (1-based) epochs of the 3-epoch run; a diverged run keeps its last."""
        c = self.curves[i]
        if not c:
            return 0.0
        v = c[min(epoch, len(c)) - 1]
        return float(v) if v is not None and np.isfinite(v) else 0.0

    def score(self, idx: Sequence[int], phase: str) -> np.ndarray:
        table = (self.rows if phase == "init" else self.view).iloc[list(idx)].reset_index(drop=True)
        return rank_aggregate(table, self.init_features if phase == "init" else self.early_features)


def _curve(text: Any) -> list[float]:
    if isinstance(text, str):
        try:
            return [float("nan") if v is None else float(v) for v in json.loads(text)]
        except (json.JSONDecodeError, TypeError, ValueError):
            return []
    return []


class Trace:
    """Cumulative cost of every finished full training and the answer after it."""

    def __init__(self, pool: Pool) -> None:
        self.pool, self.cost, self.points = pool, 0.0, []  # (cost, answer index)
        self.best: int | None = None

    def trained(self, i: int) -> None:
        if self.best is None or self.pool.observed[i] > self.pool.observed[self.best] or not np.isfinite(
                self.pool.observed[self.best]):
            self.best = i
        self.points.append((self.cost, self.best))

    def answer(self, budget: float) -> int | None:
        out = None
        for cost, best in self.points:
            if cost <= budget + 1e-9:
                out = best
        return out


# ------------------------------------------------------------------------------------ strategies
def gradnas_multi_fidelity(pool: Pool, budget: float, rng: np.random.Generator) -> tuple[int | None, float]:
    """(answer, epochs spent) of one budgeted run with the search's planner (skipped rungs included)."""
    p = pool
    mean = (float(p.cost_init.mean()), float(p.cost_early.mean()), 1.0, float(FULL_EPOCHS - 1))
    try:
        pl = plan(budget, mean, workers=1, max_candidates=p.n, full_epochs=FULL_EPOCHS)
    except BudgetError:
        return None, 0.0
    cohort = [int(i) for i in rng.permutation(p.n)[: pl.counts[0]]]
    spent = float(p.cost_init[cohort].sum())
    prev = 0
    for k in (1, 2, 3):
        if pl.counts[k] == 0:
            continue
        pl = replan(pl, prev, budget - spent, mean, available=len(cohort))
        if prev == 0:
            score = p.score(cohort, "init")
        elif prev == 1:
            score = p.score(cohort, "early")
        else:
            score = np.array([p.epoch_acc(i, 1) for i in cohort])
        cohort = [cohort[j] for j in promote(score, pl.counts[k])]
        cost = {1: lambda i: p.cost_early[i], 2: lambda i: 1.0,
                3: lambda i: FULL_EPOCHS - (1.0 if pl.counts[2] else 0.0)}[k]
        spent += float(sum(cost(i) for i in cohort))
        prev = k
    best = max(cohort, key=lambda i: (np.nan_to_num(p.observed[i], nan=-1.0), -i)) if cohort else None
    return best, spent


def ladder_replay(pool: Pool, good: np.ndarray, budget: float, mode: str, brackets: int,
                  rng: np.random.Generator) -> tuple[int | None, float]:
    """(answer, epochs spent) of the search's promotion rule (:class:`nas.search.budget_ladder.Ladder`,
    ``mode`` and up to ``brackets`` brackets) on one worker, costs in epoch equivalents, the pool drawn
    without replacement. The rung-0 and early scores rank the pool once (a cohort orders almost as the
    pool does), the short rung by the accuracy after epoch 1."""
    from budget_simulator import Table, run_ladder

    n = pool.n
    costs = np.stack([pool.cost_init, pool.cost_early, np.ones(n), np.full(n, FULL_EPOCHS - 1.0)], axis=1)
    ranks = {0: np.asarray(pool.score(range(n), "init"), dtype=float),
             1: np.asarray(pool.score(range(n), "early"), dtype=float),
             2: np.array([pool.epoch_acc(i, 1) for i in range(n)])}
    table = Table(costs, lambda idx, k: list(ranks[k][list(idx)]), np.nan_to_num(pool.observed, nan=-1.0), good)
    out = run_ladder(table, budget, 1, mode, brackets, rng, max_candidates=n, replace=False, redraw=True)
    return out.answer(budget), out.busy


# ------------------------------------------------------------------------------------ driver
def features_for(tune: pd.DataFrame, max_cost: float | None) -> tuple[tuple[Feature, ...], tuple[Feature, ...]]:
    """The rung-0 and early feature sets chosen on ``tune`` (as ``nas.lab`` chose the shipped
    ``BUDGET_INIT_FEATURES``: init selection capped at ``max_cost`` steps; early = loss + that set)."""
    ta, kind = phase_table(tune, "init")
    init, _ = select(ta, candidate_features(ta, kind), max_cost=max_cost)
    view = steps_view(tune, str(EARLY_STEPS))
    return init, select_structured(view, init)


def simulate(df: pd.DataFrame, seeds: int, budgets: Sequence[float], top: float, init_cost_steps: float | None,
             old_cost_steps: float, shipped: bool = False, seed0: int = 0, max_cost: float | None = 2.0,
             progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """One row per (seed, strategy, budget): the answer's lab accuracy, whether it is top, epochs spent."""
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng(s)
        perm = rng.permutation(len(df))
        tune, pool_rows = df.iloc[perm[: len(df) // 2]], df.iloc[perm[len(df) // 2:]]
        init, early = (BUDGET_INIT_FEATURES, BUDGET_EARLY_FEATURES) if shipped else features_for(tune, max_cost)
        cost = init_cost_steps if init_cost_steps is not None else cost_steps([f.key for f in init])
        pool = Pool(pool_rows, cost, old_cost_steps, init, early)
        good = pool.top(top)
        from budget_baselines import nsga2_old, random_filter, random_full, tpe_hyperband

        traces = {
            "random, full training": random_full(pool, np.random.default_rng([s, 1])),
            "random + loss@50 filter": random_filter(pool, np.random.default_rng([s, 2])),
            "TPE + Hyperband": tpe_hyperband(pool, s),
            "NSGA-II, old defaults": nsga2_old(pool, s),
        }
        for b in budgets:
            best, spent = gradnas_multi_fidelity(pool, b, np.random.default_rng([s, 3, int(b * 1000)]))
            rows.append(_row(s, "gradnas multi-fidelity", b, pool, good, best, spent))
            for name, (mode, brackets) in LADDER.items():
                best, spent = ladder_replay(pool, good, b, mode, brackets, np.random.default_rng([s, 4, int(b * 1000)]))
                rows.append(_row(s, name, b, pool, good, best, spent))
            for name, tr in traces.items():
                ans = tr.answer(b)
                rows.append(_row(s, name, b, pool, good, ans, min(b, tr.cost)))
        if progress:
            progress(s)
    return pd.DataFrame(rows)


def _row(seed, strategy, budget, pool, good, best, spent) -> dict[str, Any]:
    return {"seed": seed, "strategy": strategy, "budget": budget, "spent": spent,
            "acc": float(pool.acc[best]) if best is not None else float("nan"),
            "top": bool(good[best]) if best is not None else False,
            "regret": float(pool.acc.max() - pool.acc[best]) if best is not None else float("nan")}


def budget_to_half(summary: pd.DataFrame, strategy: str, level: float = 0.5) -> float:
    """Smallest budget at which ``level`` of the seeds' answers are top (half by default; linear
    interpolation between grid points; inf when never)."""
    s = summary[summary["strategy"] == strategy].sort_values("budget")
    return _crossing(s["budget"].to_numpy(dtype=float), s["p_top"].to_numpy(dtype=float), level)


def _crossing(budgets: np.ndarray, p_top: np.ndarray, level: float) -> float:
    prev_b, prev_p = 0.0, 0.0
    for b, p in zip(budgets, p_top):
        if p >= level:
            return float(prev_b + (b - prev_b) * (level - prev_p) / (p - prev_p)) if p > prev_p else float(b)
        prev_b, prev_p = b, p
    return math.inf


def bootstrap_budget(runs: pd.DataFrame, strategy: str, level: float = 0.5, n: int = 1000,
                     seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval over seeds of :func:`budget_to_half` at ``level``: the seeds resampled with
    replacement ``n`` times (inf ends: the level was not reached in that share of the resamples)."""
    r = runs[runs["strategy"] == strategy]
    table = r.pivot_table(index="seed", columns="budget", values="top", aggfunc="mean").sort_index(axis=1)
    budgets, tops = table.columns.to_numpy(dtype=float), table.to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    draws = [_crossing(budgets, tops[rng.integers(len(tops), size=len(tops))].mean(axis=0), level) for _ in range(n)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return float(lo), float(hi)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["strategy", "budget"])
    out = g.agg(acc=("acc", "mean"), acc_sd=("acc", "std"), p_top=("top", "mean"), spent=("spent", "mean"),
                answered=("acc", lambda a: float(np.isfinite(a).mean()))).reset_index()
    return out


def format_summary(summary: pd.DataFrame, seeds: int, top: float, runs: pd.DataFrame | None = None) -> str:
    lines = []
    budgets = sorted(summary["budget"].unique())
    head = f"{'strategy':<26}" + "".join(f"{b:>7g}" for b in budgets)
    for label, col, fmt in (("mean lab accuracy of the answer", "acc", "{:7.3f}"),
                            (f"fraction of seeds whose answer is top {top:.0%}", "p_top", "{:7.2f}")):
        lines += ["", f"{label} (budget in epoch equivalents; {seeds} seeds):", head]
        for name in STRATEGIES:
            s = summary[summary["strategy"] == name].set_index("budget")
            if s.empty:
                continue
            cells = "".join(fmt.format(s.loc[b, col]) if np.isfinite(s.loc[b, col]) else f"{'-':>7}" for b in budgets)
            lines.append(f"{name:<26}{cells}")
    lines += ["", "budget (epochs) at which half / 80 % of the seeds find a top config "
                  "(95 % bootstrap interval over seeds):"]
    fmt = lambda b: f"{b:7.1f}" if np.isfinite(b) else f"{'never':>7}"
    present = [name for name in STRATEGIES if (summary["strategy"] == name).any()]
    half = {name: budget_to_half(summary, name) for name in present}
    for name in present:
        ci = bootstrap_budget(runs, name) if runs is not None else (math.nan, math.nan)
        eighty = budget_to_half(summary, name, 0.8)
        lines.append(f"  {name:<26} half {fmt(half[name])} [{fmt(ci[0]).strip()}, {fmt(ci[1]).strip()}]"
                     f"   80 % {fmt(eighty)}")
    ref = half.get("TPE + Hyperband", math.inf)
    for name in [n for n in present if n.startswith("gradnas")]:
        if np.isfinite(ref) and np.isfinite(half[name]):
            lines.append(f"  {name} / TPE + Hyperband: {half[name] / ref:.2f}x the budget to half the seeds")
    return "\n".join(lines)


def plot(summary: pd.DataFrame, path: str | Path, top: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name in STRATEGIES:
        s = summary[summary["strategy"] == name].sort_values("budget")
        axes[0].plot(s["budget"], s["acc"], marker="o", label=name)
        axes[1].plot(s["budget"], s["p_top"], marker="o", label=name)
    for ax, label in ((axes[0], "mean lab accuracy of the answer"), (axes[1], f"P(answer in top {top:.0%})")):
        ax.set_xscale("log")
        ax.set_xlabel("budget (training-epoch equivalents)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="benchmarks/tables/resnet_mnist5k.csv.gz", help="the resnet lab table")
    p.add_argument("--seeds", type=int, default=50, help="seeds (random halves) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    p.add_argument("--top", type=float, default=0.05, help="fraction of the pool that is top (default: %(default)s)")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="epoch-equivalent budgets (default: %(default)s)")
    p.add_argument("--init-cost-steps", type=float, default=None,
                   help="cost of the rung-0 metrics in training steps (default: the chosen set's cost from "
                        "objectives/data/metric_costs.json, measured by benchmarks/metric_cost.py)")
    p.add_argument("--max-cost", type=float, default=2.0,
                   help="cap of the rung-0 feature selection in training steps; 0: no cap (default: %(default)s)")
    p.add_argument("--old-cost-steps", type=float, default=6.2,
                   help="cost of the old default metrics in training steps (default: %(default)s)")
    p.add_argument("--shipped", action="store_true", help="use the shipped feature sets (tuned on every row)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the two curves here")
    p.add_argument("--csv", default=None, help="write every (seed, strategy, budget) row here")
    args = p.parse_args(argv)
    if args.seeds < 1 or not 0 < args.top <= 1:
        p.error("need --seeds >= 1 and 0 < --top <= 1")
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        p.error(f"--budgets must be comma-separated numbers, got {args.budgets!r}")
    if not Path(args.table).is_file():
        p.error(f"no table at {args.table}")
    df = load(args.table)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    from tqdm.auto import tqdm

    bar = tqdm(total=args.seeds, unit="seed", file=sys.stderr)
    runs = simulate(df, args.seeds, budgets, args.top, args.init_cost_steps, args.old_cost_steps, args.shipped,
                    args.seed, args.max_cost or None, progress=lambda s: bar.update(1))
    bar.close()
    summary = summarize(runs)
    print(f"table: {args.table} ({len(df)} configs; pools of {len(df) - len(df) // 2}, "
          f"features {'shipped (not held out)' if args.shipped else 'chosen on the other half'}); "
          f"rung-0 metrics {'capped at ' + format(args.max_cost, 'g') if args.max_cost else 'uncapped'} "
          f"({'cost ' + format(args.init_cost_steps, 'g') if args.init_cost_steps else 'their measured cost'} steps), "
          f"old metrics {args.old_cost_steps:g} steps")
    print(format_summary(summary, args.seeds, args.top, runs))
    if args.csv:
        runs.to_csv(args.csv, index=False)
    if args.plot:
        print(f"plot: {plot(summary, args.plot, args.top)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
