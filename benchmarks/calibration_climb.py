"""In-study calibration inside the asynchronous climb, replayed on the proxy lab's population tables (issue 24,
item 2): labels are only what the climb produces anyway (no paid probe).

The climb is the search's own: :func:`budget_simulator.run_ladder` (the real planner, :class:`Ladder` and
:func:`choose` on a simulated clock, one worker, costs in epoch equivalents as ``benchmarks/budget_search.py``),
and rung 0 is ranked by the search's own :func:`nas.search.rung0.rung0_scores` each time the ladder asks
(whenever its rung-0 set grows): the prior alone (**without**), or, **with** calibration, refit on the labels
so far once there are :data:`nas.lab.calibration.MIN_LABELS`: the 50-step loss (``train_loss_last@50``) of
every candidate that finished the early rung and the accuracy after one epoch of every candidate that
finished the short rung, whatever their bracket. The early rung ranks by the early set, the short rung by
the 1-epoch accuracy, as in ``budget_search.py``.

The **prior** of each lab is chosen without it (``calibration_replay.priors``: ``nas.lab.loo.choose`` on the
other labs), so no figure is in-sample; ``--prior shipped`` takes ``BUDGET_INIT_FEATURES`` /
``BUDGET_EARLY_FEATURES`` (chosen on the resnet lab: in-sample there). NB201 has no early losses, epoch curves
or costs: it is not replayed here (``calibration_replay.py`` replays it with the trained accuracy as every
label, the optimistic case).

**Tau by number of labels** (per seed, a rung-0 population of ``--population`` of the lab, budget
``--tau-budget``, calibration on): when the climb's 5th, 10th, 20th and 40th label arrives, the candidates done
at rung 0 and not promoted (nor labelled) are ranked by the prior over the cohort (**before**, what the
search without calibration ranks) and by the calibrated score on the labels so far (**after**); Kendall tau
against the lab accuracy ``acc``; mean, sd, paired gain and the share of seeds it is positive, over the seeds
that reached that many labels.

Both refits are reported: on the prior's features (and the free config values) only, and with the rung-0 pool
(``nas.lab.calibration.POOL_METRICS``, the search's default), which a calibrated search scores at rung 0.

**Budget to a top-5 % config** (per seed, the random half of the lab ``budget_search.py`` searches, every
budget of ``--budgets``, ``--brackets`` 1 and 4): the fraction of seeds whose answer is a top-5 % config of
the pool, and the budget at which half and 80 % of the seeds find one (95 % bootstrap interval over seeds),
without calibration and with either refit on the same pool and draws; with the pool, every rung-0 candidate
also pays ``--pool-cost`` steps.

Usage::

    nice python benchmarks/calibration_climb.py --seeds 50
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import budget_search as bs  # noqa: E402
import calibration_replay as cr  # noqa: E402
from budget_simulator import Table, run_ladder  # noqa: E402

from nas.lab.calibration import POOL_METRICS, LabelSet  # noqa: E402
from nas.lab.loo import load_lab  # noqa: E402
from nas.lab.selection import cost_steps, tau  # noqa: E402
from nas.search.rung0 import rung0_scores  # noqa: E402

TABLES = ("benchmarks/tables/resnet_mnist5k.csv.gz", "benchmarks/tables/mlp_mnist5k.csv.gz",
          "benchmarks/tables/vgg_mnist5k.csv.gz", "benchmarks/tables/nb201_lab.csv.gz")
COUNTS, LOSS = cr.COUNTS, cr.LOSS  # the label counts and the early loss of the probe replay
#: What scoring the rung-0 pool costs in one ``objectives.score`` call, in training steps: measured with
#: ``python benchmarks/metric_cost.py --threads 1 --clock cpu --no-memory --sets-only --reps 5`` ("rung-0 pool",
#: CPU ResNet-20, batch 64; 3.2-3.6 steps, docs/metrics.md); the sum of its metrics' costs alone is 5.5.
POOL_COST = 3.6
#: Calibration settings: label -> (calibrate, the refit's extra keys: None = the rung-0 pool and the free config
#: values, the search's default; "free" = the free config values only, the refit before the pool existed).
MODES = {"without calibration": (False, None), "with calibration, prior's features": (True, "free"),
         "with calibration and the rung-0 pool": (True, None)}


class Climb:
    """The scores one replayed climb asks for, with the labels its ladder has produced so far.

    ``draw`` (``run_ladder``'s hook) hands out the pool without replacement and keeps the ladder; its rung-0
    ranking calls :func:`rung0_scores` with the labels read off the ladder (``calibrate``) or none."""

    def __init__(self, pool: bs.Pool, prior, early, calibrate: bool, rng: np.random.Generator,
                 counts: Sequence[int] = (), extra: str | None = None) -> None:
        self.pool, self.prior, self.early, self.calibrate = pool, tuple(prior), tuple(early), calibrate
        self.extra = extra
        self.records = pool.rows.to_dict("records")
        self.unused = [int(i) for i in rng.permutation(pool.n)]
        self.first = np.array([pool.epoch_acc(i, 1) for i in range(pool.n)])
        self.early_scores = np.asarray(pool.score(range(pool.n), "early"), dtype=float)
        self.ladder, self.pool_of = None, {}
        self.counts, self.snapshots = sorted(counts), []  # tau rows at the label counts
        self.arrived: list[tuple[int, int]] = []  # (rung, pool index) in arrival order

    # ---------------------------------------------------------------- run_ladder's hooks
    def draw(self, bracket: int, ladder, pool_of: dict) -> int:
        if self.ladder is None:
            self.ladder, self.pool_of = ladder, pool_of
            finish = ladder.finish

            def finished(n: int) -> None:  # every finished job: a label when it was the early or short rung
                finish(n)
                k = ladder.cands[n][1]
                if k in (1, 2):
                    self.arrived.append((k, self.pool_of[n]))
                    if self.counts and len(self.arrived) == self.counts[0]:
                        self._snapshot(self.counts.pop(0))

            ladder.finish = finished
        i = self.unused.pop()
        if not self.unused:  # the pool is drawn: no more new candidates (run_ladder's own list is not used)
            ladder.stop_new, ladder.limit = True, len(pool_of) + 1
        return i

    def score(self, idx: Sequence[int], k: int) -> list[float]:
        idx = list(idx)
        if k == 1:
            return list(self.early_scores[idx])
        if k == 2:
            return list(self.first[idx])
        labels, others = self.labels(idx, self.arrived) if self.calibrate else ([], [])
        return self.rung0(idx, labels, others)[0]

    # ---------------------------------------------------------------- labels and the rung-0 ranking
    def labels(self, cohort: Sequence[int], arrived) -> tuple[list[LabelSet], list[int]]:
        """The label sets over ``cohort`` then the labelled candidates outside it (``others``)."""
        pos = {i: j for j, i in enumerate(cohort)}
        others: list[int] = []
        kinds: dict[int, dict[int, float]] = {1: {}, 2: {}}
        for k, i in arrived:
            if i not in pos:
                pos[i] = len(cohort) + len(others)
                others.append(i)
            kinds[k][pos[i]] = float(self.pool.loss50[i]) if k == 1 else float(self.first[i])
        kinds = {k: {j: v for j, v in d.items() if math.isfinite(v)} for k, d in kinds.items()}
        sets = [LabelSet("train_loss_last", "minimize", kinds[1]), LabelSet("short_test_acc", "maximize", kinds[2])]
        return [s for s in sets if s.values], others

    def rung0(self, cohort: Sequence[int], labels, others, extra: str | None = "mode") -> tuple[list[float], dict | None]:
        """``rung0_scores`` of the cohort; ``extra``: ``"free"`` (the free config values only), None (the pool
        and the free values) or ``"mode"`` (this climb's setting)."""
        keys = cr.refit_extra(self.pool.rows.columns, self.extra if extra == "mode" else extra)
        return rung0_scores([self.records[i] for i in cohort], (), labels, [self.records[i] for i in others],
                            self.prior, extra=keys)

    def _snapshot(self, count: int) -> None:
        lad = self.ladder
        cohort = sorted(self.pool_of[n] for n in lad.finished(0, 0))
        labelled = {i for _, i in self.arrived}
        number = {i: n for n, i in self.pool_of.items()}
        rest = [j for j, i in enumerate(cohort) if i not in labelled and lad.cands[number[i]][1] == 0]
        if len(rest) < 3:
            return
        before = np.asarray(self.rung0(cohort, [], [])[0])
        labels, others = self.labels(cohort, self.arrived)
        after, desc = self.rung0(cohort, labels, others, "free")
        pooled, pdesc = self.rung0(cohort, labels, others, None)
        acc = self.pool.acc[np.array(cohort)]
        self.snapshots.append({"labels": count, "n_rest": len(rest), "before": tau(before[rest], acc[rest]),
                               "after": tau(np.asarray(after)[rest], acc[rest]),
                               "pool": tau(np.asarray(pooled)[rest], acc[rest]),
                               "flipped": ",".join((desc or {}).get("flipped", [])),
                               "learned": ",".join(f["key"] for f in (pdesc or {}).get("features", []))})


def replay(pool: bs.Pool, prior, early, budget: float, brackets: int, calibrate: bool, seed: Sequence[int],
           counts: Sequence[int] = (), extra: str | None = None) -> tuple[int | None, float, Climb]:
    """(answer, epochs spent, the climb) of one replayed asynchronous search on one worker."""
    rng = np.random.default_rng(list(seed))
    climb = Climb(pool, prior, early, calibrate, np.random.default_rng([*seed, 1]), counts, extra)
    n = pool.n
    costs = np.stack([pool.cost_init, pool.cost_early, np.ones(n), np.full(n, bs.FULL_EPOCHS - 1.0)], axis=1)
    good = pool.top(0.05)
    table = Table(costs, climb.score, np.nan_to_num(pool.observed, nan=-1.0), good)
    out = run_ladder(table, budget, 1, "async", brackets, rng, max_candidates=n, replace=False, draw=climb.draw)
    return out.answer(budget), out.busy, climb


def _pool(rows: pd.DataFrame, prior, early, pool_cost: float | None = None) -> tuple[bs.Pool, tuple, tuple]:
    """The replay's pool, rung 0 charged the prior's metrics (the sum of each one's cost alone) and, with
    ``pool_cost`` (steps), the rung-0 pool scored beside them (a calibrated search): the prior's metrics outside
    the pool plus ``pool_cost``."""
    init = cr._present(rows, prior)
    early_f = cr._present(bs.steps_view(rows, str(bs.EARLY_STEPS)), early) or init
    keys = [f.key for f in init]
    cost = cost_steps(keys) if pool_cost is None else cost_steps([k for k in keys if k not in POOL_METRICS]) + pool_cost
    return bs.Pool(rows, cost, 0.0, init, early_f), init, early_f


def tau_replay(table: pd.DataFrame, name: str, prior, early, seeds: int, population: float, budget: float,
               seed0: int = 0) -> pd.DataFrame:
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng([s, 7])
        idx = rng.permutation(len(table))[: int(round(population * len(table)))]
        pool, init, early_f = _pool(table.iloc[np.sort(idx)], prior, early)
        _, _, climb = replay(pool, init, early_f, budget, 1, True, (s, 5), COUNTS)
        rows += [{"lab": name, "seed": s, **snap} for snap in climb.snapshots]
    return pd.DataFrame(rows)


def budget_replay(table: pd.DataFrame, prior, early, seeds: int, budgets: Sequence[float],
                  brackets: Sequence[int], seed0: int = 0, pool_cost: float = POOL_COST) -> pd.DataFrame:
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng(s)
        half = table.iloc[rng.permutation(len(table))[len(table) // 2:]]
        pool, init, early_f = _pool(half, prior, early)
        pooled = _pool(half, prior, early, pool_cost)[0]  # rung 0 also scores the pool: it costs more
        good = pool.top(0.05)
        for b in budgets:
            for nb in brackets:
                for mode, (cal, extra) in MODES.items():
                    p = pooled if cal and extra is None else pool
                    best, spent, _ = replay(p, init, early_f, b, nb, cal, (s, 4, int(b * 1000)), extra=extra)
                    name = f"async{' + brackets ' + str(nb) if nb > 1 else ''}, {mode}"
                    rows.append(bs._row(s, name, b, p, good, best, spent))
    return pd.DataFrame(rows)


def format_taus(res: pd.DataFrame, name: str) -> str:
    lines = [f"{name}: Kendall tau of the rung-0 candidates not yet promoted, before vs after calibration (on the "
             f"prior's features; with the rung-0 pool), when the climb's n-th label arrives (mean +- sd over the "
             f"seeds that reached it; gain: paired, share of seeds > 0)"]
    for k, g in res.groupby("labels"):
        d, dp = g["after"] - g["before"], g["pool"] - g["before"]
        flips = pd.Series([f for x in g["flipped"] for f in x.split(",") if f]).value_counts()
        learned = pd.Series([f for x in g["learned"] for f in x.split(",") if f]).value_counts()
        lines.append(f"  {k:>2} labels ({len(g)} seeds, {g['n_rest'].mean():.0f} left): before "
                     f"{g['before'].mean():+.3f} +- {g['before'].std():.3f}; prior's features {g['after'].mean():+.3f} "
                     f"+- {g['after'].std():.3f}, gain {d.mean():+.3f} ({(d > 0).mean():.0%}); with the pool "
                     f"{g['pool'].mean():+.3f} +- {g['pool'].std():.3f}, gain {dp.mean():+.3f} ({(dp > 0).mean():.0%})")
        lines.append("       flipped (prior's features): " + (", ".join(f"{f} {c}" for f, c in flips.items()) or "none")
                     + "; weighed with the pool: " + ", ".join(f"{f} {c}" for f, c in learned.head(8).items()))
    return "\n".join(lines)


def format_budget(runs: pd.DataFrame, name: str) -> str:
    summary = bs.summarize(runs)
    budgets = sorted(summary["budget"].unique())
    strategies = list(dict.fromkeys(runs["strategy"]))
    lines = [f"{name}: fraction of seeds whose answer is a top-5 % config ({runs['seed'].nunique()} seeds; budget "
             f"in epoch equivalents)", f"{'':58s}" + "".join(f"{b:>6g}" for b in budgets)]
    for st in strategies:
        s = summary[summary["strategy"] == st].set_index("budget")
        lines.append(f"{st:58s}" + "".join(f"{s.loc[b, 'p_top']:6.2f}" for b in budgets))
    fmt = lambda b: f"{b:.1f}" if np.isfinite(b) else "never"
    for st in strategies:
        lo, hi = bs.bootstrap_budget(runs, st)
        lines.append(f"  {st:58s} half {fmt(bs.budget_to_half(summary, st)):>6} [{fmt(lo)}, {fmt(hi)}]   80 % "
                     f"{fmt(bs.budget_to_half(summary, st, 0.8)):>6}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--tables", nargs="+", default=list(TABLES),
                   help="lab tables; the population ones are replayed, all choose the priors (default: the three labs)")
    p.add_argument("--seeds", type=int, default=50, help="seeds per lab (default: %(default)s)")
    p.add_argument("--prior", choices=("loo", "shipped"), default="loo",
                   help="loo: the rung-0 set chosen without the lab (default); shipped: BUDGET_INIT_FEATURES")
    p.add_argument("--population", type=float, default=2 / 3,
                   help="tau replay: rung-0 population as a fraction of the lab (default: %(default).2f)")
    p.add_argument("--tau-budget", type=float, default=144.0,
                   help="tau replay: the climb's budget in epoch equivalents (default: %(default)g)")
    p.add_argument("--budgets", default=",".join(map(str, bs.BUDGETS)),
                   help="budget replay: epoch-equivalent budgets (default: %(default)s)")
    p.add_argument("--brackets", default="1,4", help="budget replay: bracket settings (default: %(default)s)")
    p.add_argument("--pool-cost", type=float, default=POOL_COST,
                   help="budget replay: training steps rung 0 pays for the rung-0 pool of a calibrated search, "
                        "beside the prior's other metrics (default: %(default)s, measured; 5.5 = its metrics alone)")
    p.add_argument("--no-budget", action="store_true", help="skip the budget replay")
    p.add_argument("--no-tau", action="store_true", help="skip the tau replay")
    args = p.parse_args(argv)
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
        brackets = [int(b) for b in args.brackets.split(",") if b.strip()]
    except ValueError:
        p.error("--budgets and --brackets must be comma-separated numbers")
    if args.seeds < 1 or not 0 < args.population <= 1 or not budgets or not brackets or min(brackets) < 1 \
            or args.tau_budget <= 0 or args.pool_cost < 0:
        p.error("need --seeds >= 1, 0 < --population <= 1, --tau-budget > 0, budgets and brackets >= 1")
    missing = [t for t in args.tables if not Path(t).is_file()]
    if missing:
        p.error(f"no table at {', '.join(missing)}")
    if args.prior == "loo" and len(args.tables) < 2:
        p.error("--prior loo needs at least two tables")
    warnings.filterwarnings("ignore", "invalid value encountered in subtract")  # bootstrap ends at inf (never)
    labs = [load_lab(t) for t in args.tables]
    chosen = cr.priors(labs, args.prior)
    print(f"prior: {'chosen without the lab (leave one lab out)' if args.prior == 'loo' else 'shipped'}; "
          f"{args.seeds} seeds; one worker, asynchronous climb")
    for lab in labs:
        t = lab.phases["init"]
        if "early" not in lab.phases or "val_acc_curve" not in t.columns or "config" not in t.columns:
            print(f"\n{lab.name}: not replayed (no early losses, epoch curves or costs)")
            continue
        init, early = chosen[lab.name]
        print(f"\n{lab.name}: rung 0 " + " + ".join(f"{f.key}:{f.direction[:3]}*{f.weight:g}" for f in init)
              + "; early " + " + ".join(f"{f.key}:{f.direction[:3]}*{f.weight:g}" for f in early))
        t0 = time.process_time()
        if not args.no_tau:
            print(format_taus(tau_replay(t, lab.name, init, early, args.seeds, args.population, args.tau_budget),
                              lab.name))
        if not args.no_budget:
            print(format_budget(budget_replay(t, init, early, args.seeds, budgets, brackets, pool_cost=args.pool_cost),
                                lab.name))
        print(f"  ({time.process_time() - t0:.0f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
