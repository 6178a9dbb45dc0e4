"""The budget search on a simulated cluster: worker utilization and time to a top-5 % config for 2, 8, 64
and 512 workers, synchronous vs asynchronous promotion, one vs several brackets.

Driven by the real planner (:func:`nas.search.plan.plan_brackets`), the real promotion rule and budget
policy (:class:`nas.search.budget_ladder.Ladder`, :func:`~nas.search.budget_policy.choose`) and the real
submit/wait loop (:func:`nas.search.executor.run_jobs`) on a discrete-event clock (:class:`SimCluster`:
a job finishes its cost in simulated seconds after it started; nothing sleeps). Costs and results come
from a lab table (default ``benchmarks/tables/resnet_mnist5k.csv.gz``, 150 resnet configs): a config's
training epoch is its measured 3-epoch validation time / 3 (``val_time``) divided by ``--gpu-ratio``, a
step is an epoch / (4000 // batch), the rung-0 metrics cost their measured cost in steps, the early rung
50 steps, plus ``--overhead`` seconds per job (start-up, data, scheduling; not scaled). What a rung
observes is the table's: the rung-0 metrics, the 50-step loss, the test accuracy after epoch 1 and after
the 3 epochs. The features of the rung-0 and early scores are chosen on the other half of the table
(held out, as in ``budget_search.py``); candidates are drawn from the pool with replacement (a cluster
sees more candidates than the table has configs).

The asynchronous climb's end-of-run tail (:func:`~nas.search.budget_policy.choose`) trains waiting candidates
shortened to the epochs that fit: a config trained ``e`` of the 3 epochs observes the best test accuracy of
its first ``e`` epochs (the table's 3-epoch curve; a shorter schedule would anneal sooner, so this is a
pessimistic stand-in) and costs ``e`` epochs.

The budget is ``--trainings`` full trainings of the mean config, in wall-clock time, for every worker count
(so the compute grows with the workers). Reported per setting (mean over ``--seeds``): utilization =
busy worker-seconds / (workers x the run's wall time, until its last job ends); the same over the budget
(workers x the budget, or the run's end when later: an early end counts as idle); the run's end / the
budget; the time at which the
answer (the best fully trained candidate by its observed accuracy) is first a top-5 % config of the pool,
as a fraction of the budget (``-`` when never: counted as 1 in the mean, and the fraction of seeds that
reach one is given).

Usage::

    nice python benchmarks/budget_simulator.py --seeds 5
"""

from __future__ import annotations

import argparse
import dataclasses
import heapq
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nas.search.budget_ladder import Ladder
from nas.search.budget_policy import choose
from nas.search.executor import run_jobs
from nas.search.plan import BudgetError, plan_brackets

FULL_EPOCHS, SHORT_EPOCHS, EARLY_STEPS, TRAIN_SIZE = 3, 1, 50, 4000
WORKERS = (2, 8, 64, 512)
#: The most rung-0 candidates per worker (the search's --trials cap).
MAX_PER_WORKER = 16


class SimCluster:
    """The executor interface on a simulated clock: ``submit(key, (cost, result))`` runs a job that
    finishes ``cost`` seconds later; ``wait()`` returns the first to finish and moves the clock there."""

    def __init__(self) -> None:
        self.t, self.seq, self.heap, self.busy = 0.0, 0, [], 0.0

    def now(self) -> float:
        return self.t

    def submit(self, key: Any, job: tuple[float, Any]) -> None:
        cost, result = job
        self.seq += 1
        self.busy += cost
        heapq.heappush(self.heap, (self.t + cost, self.seq, key, result))

    def wait(self) -> list[tuple[Any, str, Any]]:
        done, _, key, result = heapq.heappop(self.heap)
        self.t = max(self.t, done)
        return [(key, "ok", result)]

    def shutdown(self) -> None:
        pass


@dataclasses.dataclass
class Table:
    """What the simulation needs of a pool of configs: per config the seconds of each rung's job (rung 3:
    the epochs after the short rung), the scores a rung observes and the answer's judged accuracy.

    ``score(idx, rung)`` scores pool rows ``idx`` after ``rung`` (0: rung-0 metrics, 1: early loss, 2: the
    short rung's accuracy); ``observed[i]``: the final accuracy the search sees; ``good[i]``: top config;
    ``curve[i, e - 1]``: what a training shortened to ``e`` epochs sees (None: nothing is shortened, no tail)."""

    costs: np.ndarray  # (n, 4)
    score: Callable[[Sequence[int], int], Sequence[float]]
    observed: np.ndarray
    good: np.ndarray
    curve: np.ndarray | None = None  # (n, FULL_EPOCHS)


@dataclasses.dataclass
class Outcome:
    end: float  # when the last job finished
    busy: float  # worker-seconds of jobs
    trace: list[tuple[float, int]]  # (time, answer pool index) after every finished final-rung job
    jobs: int
    brackets: int
    shortened: int = 0  # shortened final trainings (the tail)

    def answer(self, at: float) -> int | None:
        out = None
        for t, i in self.trace:
            if t <= at + 1e-9:
                out = i
        return out

    def time_to(self, good: np.ndarray) -> float:
        """When the answer is first a good config (inf: never)."""
        return next((t for t, i in self.trace if good[i]), math.inf)


def run_ladder(table: Table, budget: float, workers: int, mode: str, brackets: int, rng: np.random.Generator,
               eta: int = 3, max_candidates: int | None = None, replace: bool = True,
               draw: Callable[[int, "Ladder", dict], int] | None = None, redraw: bool = False) -> Outcome:
    """One budget search on :class:`SimCluster`: plan from the pool's mean costs, then :func:`choose` picks
    every job (with the async tail when the table has a ``curve``; two kept candidates per worker, as the
    live search). ``draw(bracket, ladder, pool_of)`` gives a new candidate's pool index (default: uniform,
    with replacement unless ``replace`` is False). ``redraw`` (without replacement): once every config has
    been drawn, a later bracket's new candidate is drawn uniformly from the configs no candidate has trained
    yet (none at a rung above 0, none in a later bracket), and a new candidate of bracket 0 goes to an open
    later bracket instead: a later bracket admits a config whatever its rung-0 score, and live, where the
    space is not used up, it would still sample one; without it a finite pool that bracket 0 drew whole
    leaves the later brackets empty."""
    mean = tuple(float(x) for x in table.costs.mean(axis=0))
    n_pool = len(table.observed)
    cap = max_candidates if replace else min(max_candidates or n_pool, n_pool)
    try:
        plans = plan_brackets(budget, mean, workers, eta, cap, FULL_EPOCHS, SHORT_EPOCHS, brackets)
    except BudgetError:
        return Outcome(0.0, 0.0, [], 0, 0)
    ladder = Ladder(plans, mode)
    ladder.limit = None if redraw and not replace else cap
    tail = table.curve is not None
    ladder.tail = 2 * workers if tail else 0
    sim = SimCluster()
    pool_of: dict[int, int] = {}
    unused = list(rng.permutation(n_pool))
    trace: list[tuple[float, int]] = []
    best: list = [None, -math.inf]  # the answer's pool index and its observed accuracy

    def cost(n: Any, k: int) -> float:
        c = table.costs[pool_of[n]] if n is not None else mean
        return float(c[k])

    def job_cost(n: int, k: int, prev: int) -> float:
        """The job's seconds: a full training that did not run the short rung trains from scratch."""
        return cost(n, k) + (cost(n, 2) if k == 3 and prev < 2 else 0.0)

    def epoch(n: int) -> float:
        """Seconds per epoch of a whole training of ``n`` (a shortened one runs from scratch)."""
        return (cost(n, 2) + cost(n, 3)) / FULL_EPOCHS

    def score(b: int, k: int, numbers: list[int]) -> Sequence[float]:
        return table.score([pool_of[n] for n in numbers], k)

    def pick(b: int) -> tuple[int, int] | None:
        """(pool index, bracket) of a new candidate asked for bracket ``b``; None when none is left."""
        if replace:
            return int(rng.integers(n_pool)), b
        if unused:
            return int(unused.pop()), b
        if not redraw:
            return None
        trained = {pool_of[m] for m, c in ladder.cands.items() if c[0] > 0 or c[1] > 0}
        spare = [i for i in range(n_pool) if i not in trained]
        open_ = [c for c, p in enumerate(ladder.brackets) if c > 0 and ladder.asked[c] < p.counts[0]]
        if not spare or not open_:
            return None
        return int(rng.choice(spare)), (b if b in open_ else open_[0])

    def more():
        job = choose(ladder, score, budget - sim.now(), cost, workers, epoch=epoch if tail else None)
        if job is not None and job[0] == "new":
            got = (draw(job[1], ladder, pool_of), job[1]) if draw is not None else pick(job[1])
            if got is None:  # the pool is used up: no new candidate from now on
                ladder.stop_new, ladder.limit = True, len(pool_of)
                job = choose(ladder, score, budget - sim.now(), cost, workers, epoch=epoch if tail else None)
                if job is not None and job[0] == "new":
                    return None
        if job is None:
            return None
        if job[0] == "new":
            n = len(pool_of)
            pool_of[n], b = got
            ladder.add(n, b)
            return n, (cost(n, 0), None)
        _, n, k, *cut = job
        prev = ladder.cands[n][1]
        ladder.start(n, k, cut[0] if cut else None)
        return n, (cut[0] * epoch(n) if cut else job_cost(n, k, prev), None)

    def handle(n, status, payload, seconds) -> None:
        ladder.finish(n)
        b, k = ladder.cands[n][0], ladder.cands[n][1]
        if k == ladder.final(b):
            i = pool_of[n]
            seen = table.curve[i, ladder.epochs[n] - 1] if n in ladder.epochs else table.observed[i]
            if best[0] is None or seen > best[1]:
                best[0], best[1] = i, seen
            trace.append((sim.now(), best[0]))
        for m in ladder.stopped(score, epoch if tail else None):
            ladder.tell(m)

    run_jobs(sim, workers, [], handle, more=more, clock=sim.now)
    return Outcome(sim.now(), sim.busy, trace, len(pool_of), len(plans), len(ladder.epochs))


# ------------------------------------------------------------------------------------ the lab table
def lab_table(rows, init_features, early_features, gpu_ratio: float, overhead: float, init_cost_steps: float,
              top: float = 0.05) -> Table:
    """A :class:`Table` from lab rows (costs in seconds, module docstring)."""
    import json

    from nas.lab.tables import steps_view
    from objectives.combine import rank_aggregate

    rows = rows.reset_index(drop=True)
    view = steps_view(rows, str(EARLY_STEPS))
    configs = [json.loads(c) for c in rows["config"]]
    spe = np.maximum(1, TRAIN_SIZE // np.array([c["batch_size"] for c in configs], dtype=float))
    epoch = rows["val_time"].to_numpy(dtype=float) / FULL_EPOCHS / gpu_ratio
    step = epoch / spe
    costs = np.stack([init_cost_steps * step, EARLY_STEPS * step, SHORT_EPOCHS * epoch,
                      (FULL_EPOCHS - SHORT_EPOCHS) * epoch], axis=1) + overhead
    curves = [json.loads(c) if isinstance(c, str) else [] for c in rows["val_acc_curve"]]
    first = np.array([float(c[0]) if c and c[0] is not None else 0.0 for c in curves])
    acc = rows["acc"].to_numpy(dtype=float)
    observed = np.nan_to_num(rows["val_best_acc"].to_numpy(dtype=float), nan=-1.0)
    # a training of e epochs sees the best of the curve's first e (missing epochs: what it ended with)
    curve = np.array([[max([float(a) for a in c[:e] if a is not None] or [-1.0]) for e in range(1, FULL_EPOCHS + 1)]
                      for c in curves])
    curve = np.minimum(np.where(curve < 0, observed[:, None], curve), observed[:, None])
    k = max(1, math.ceil(top * len(acc)))
    good = acc >= np.sort(acc)[::-1][k - 1]

    # the combined scores over the whole pool, once: a cohort of draws with replacement ranks as the pool does
    # (a rank aggregate over a subset orders it almost as over the pool; recomputing it per decision would
    # make the 512-worker runs take hours)
    ranks = {0: np.asarray(rank_aggregate(rows, init_features), dtype=float),
             1: np.asarray(rank_aggregate(view, early_features), dtype=float), 2: first}

    def score(idx: Sequence[int], rung: int) -> Sequence[float]:
        return list(ranks[rung][list(idx)])

    return Table(costs, score, observed, good, curve)


def simulate(df, seeds: int, workers: Sequence[int], trainings: float, gpu_ratio: float, overhead: float,
             brackets: int) -> list[dict]:
    from budget_search import features_for
    from nas.lab.selection import cost_steps

    out = []
    for s in range(seeds):
        rng = np.random.default_rng(s)
        perm = rng.permutation(len(df))
        tune, pool_rows = df.iloc[perm[: len(df) // 2]], df.iloc[perm[len(df) // 2:]]
        init, early = features_for(tune, 2.0)
        table = lab_table(pool_rows, init, early, gpu_ratio, overhead, cost_steps([f.key for f in init]))
        budget = trainings * float(table.costs[:, 2:].sum(axis=1).mean())
        for w in workers:
            for mode in ("sync", "async"):
                for nb in sorted({1, brackets}):
                    o = run_ladder(table, budget, w, mode, nb, np.random.default_rng([s, w]),
                                   max_candidates=MAX_PER_WORKER * w)
                    t = o.time_to(table.good)
                    out.append({"seed": s, "workers": w, "promotion": mode, "brackets": o.brackets,
                                "util": o.busy / (w * o.end) if o.end else math.nan,
                                "util_budget": o.busy / (w * max(o.end, budget)), "end": o.end / budget,
                                "to_top": t / budget if np.isfinite(t) else math.nan, "jobs": o.jobs,
                                "shortened": o.shortened})
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import pandas as pd

    from nas.lab.tables import load

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default="benchmarks/tables/resnet_mnist5k.csv.gz", help="a resnet lab table")
    p.add_argument("--seeds", type=int, default=5, help="random halves of the table (default: %(default)s)")
    p.add_argument("--workers", default=",".join(map(str, WORKERS)), help="worker counts (default: %(default)s)")
    p.add_argument("--trainings", type=float, default=20.0,
                   help="wall-clock budget in full trainings of the mean config (default: %(default)s)")
    p.add_argument("--gpu-ratio", type=float, default=10.0,
                   help="a GPU is this many times faster than the table's CPU times (default: %(default)s)")
    p.add_argument("--overhead", type=float, default=0.0, help="seconds per job, not scaled (default: %(default)s)")
    p.add_argument("--brackets", type=int, default=4, help="the most brackets of the 'several' rows (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        p.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if args.seeds < 1 or not workers or min(workers) < 1 or args.gpu_ratio <= 0 or args.trainings <= 0 \
            or args.brackets < 1 or args.overhead < 0:
        p.error("need --seeds >= 1, --workers >= 1, --gpu-ratio > 0, --trainings > 0, --brackets >= 1, --overhead >= 0")
    if not Path(args.table).is_file():
        p.error(f"no table at {args.table}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    rows = pd.DataFrame(simulate(load(args.table), args.seeds, workers, args.trainings, args.gpu_ratio,
                                 args.overhead, args.brackets))
    g = rows.groupby(["workers", "promotion", "brackets"])
    summary = g.agg(util=("util", "mean"), util_budget=("util_budget", "mean"), end=("end", "mean"),
                    reach=("to_top", lambda t: float(t.notna().mean())),
                    to_top=("to_top", lambda t: float(t.fillna(1.0).mean())), jobs=("jobs", "mean"),
                    shortened=("shortened", "mean")).reset_index()
    print(f"table {args.table}; budget {args.trainings:g} mean full trainings of wall time; GPU ratio "
          f"{args.gpu_ratio:g}; overhead {args.overhead:g} s/job; {args.seeds} seeds (held-out halves)")
    print("utilization: busy worker-seconds / (workers x the run's wall time until its last job ends); "
          "over budget: / (workers x the budget), an early end counted idle")
    print(f"{'workers':>7} {'promotion':>9} {'brackets':>8} {'utilization':>11} {'over budget':>11} {'end/budget':>10} "
          f"{'top-5% reached':>14} {'time to top-5%':>14} {'candidates':>10} {'shortened':>9}")
    for r in summary.itertuples():
        print(f"{r.workers:>7} {r.promotion:>9} {r.brackets:>8.1f} {r.util:>11.1%} {r.util_budget:>11.1%} "
              f"{r.end:>10.2f} {r.reach:>14.2f} {r.to_top:>14.2f} {r.jobs:>10.0f} {r.shortened:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
