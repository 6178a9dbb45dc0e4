"""In-study calibration of the rung-0 score, replayed on the proxy lab's tables (issue 24, item 2).

For each lab (a ground-truth table, :mod:`nas.lab.loo`), the **prior** is the rung-0 score chosen without it:
``nas.lab.loo.choose`` on the other labs (``budget_init``: the rung-0 set capped at 2 training steps, as the
shipped ``BUDGET_INIT_FEATURES`` were chosen on the resnet lab). So no weight, direction or feature of the
prior was chosen on the rows reported (``--prior shipped`` takes ``BUDGET_INIT_FEATURES`` instead: chosen
on the resnet lab, so its resnet rows are in-sample). The calibration's own constants
(:data:`nas.lab.calibration.DEFAULT_PENALTY`, ``PRIOR_CORRELATION``) were set before any replay and not
tuned on these figures; ``penalty="loo"`` chooses the penalty on each replay's own labels.

**Tau by number of labels.** Per seed: a rung-0 population, a random ``--population`` fraction of the lab
(every candidate scored by the prior), then labels in the order a budget search produces them:

1. ``--probe`` random candidates' training loss after 50 steps (``train_loss_last@50``, minimized);
2. then, as rung 1 promotes them, the 50-step loss of the unlabelled candidates the prior ranks highest
   (one by one), and after every ``eta`` (3) of those the accuracy after one epoch (``val_acc_curve[0]``,
   maximized) of the best-loss candidate not yet trained (rung 2).

The NB201 lab has no early losses and no epoch curves: there every label is the trained accuracy itself
(the optimistic case). After 5, 10, 20 and 40 labels: Kendall tau against trained accuracy (``acc``) of
the candidates that have no label yet, ranked by the prior (**before**) and by
:func:`nas.lab.calibration.calibrate` on the labels so far (**after**; default penalty, leave-one-out
penalty, and no prior at all: penalty 1e-6, for reference). Mean and sd over seeds; the paired gain and the
fraction of seeds it is positive.

**Budget to a top-5 % config** (population labs; ``benchmarks/budget_search.py``'s replay, imported, not
edited): the multi-fidelity search on a random half of the lab with the prior's rung-0 set (and its
early set: the 50-step loss plus the prior, weight chosen without the lab), with and without calibration.
With calibration, the rung-0 promotion first trains ``--probe`` random members of the cohort 50 steps
(their cost charged: the run plans with the budget less the probe's mean cost, and the probe's actual cost
is added to what it spent; a probed candidate promoted to rung 1 pays its steps again) and ranks the cohort
by the calibrated score; ``with calibration, probe not charged`` runs the same without charging the probe
(what the calibrated ranking alone is worth, not a real strategy). Output: the fraction of seeds whose answer is top 5 % per budget, and the budget
at which half the seeds find one.

Usage::

    nice python benchmarks/calibration_replay.py --seeds 50
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

try:
    import nas  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import budget_search as bs  # noqa: E402  (benchmarks/budget_search.py: its Pool and multi-fidelity replay)

from nas.lab.calibration import FREE_FEATURES, POOL_METRICS, LabelSet, calibrate  # noqa: E402
from nas.lab.loo import PHASES, Lab, choose, load_lab  # noqa: E402
from nas.lab.selection import cost_steps, has_feature, tau  # noqa: E402
from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, Feature, rank_aggregate  # noqa: E402

TABLES = ("benchmarks/tables/resnet_mnist5k.csv.gz", "benchmarks/tables/nb201_lab.csv.gz",
          "benchmarks/tables/mlp_mnist5k.csv.gz", "benchmarks/tables/vgg_mnist5k.csv.gz")
COUNTS = (5, 10, 20, 40)
LOSS = "train_loss_last@50"
ETA = 3
#: The rankers compared: label -> calibrate's penalty (None: the prior, uncalibrated).
#: The budget replay's strategies; the last one does not charge the probe (what calibration's ranking alone
#: is worth, as when the labels come from rungs the search runs anyway).
FREE = "with calibration, probe not charged"
BUDGET_STRATEGIES = ("without calibration", "with calibration", FREE)
#: The refit weighs the rung-0 pool and the free config values (``calibrate``'s default) except in the row on
#: the prior's features (and the free values) only, the refit before the pool existed.
RANKERS = {"before (prior)": None, "after, prior's features only": (20.0, "free"), "after, penalty 20": 20.0,
           "after, penalty by LOO": "loo", "labels only (no prior)": 1e-6}


def refit_extra(columns, which: str | None) -> list[str] | None:
    """``calibrate``'s ``extra`` for a refit setting: ``"free"``, the free config values among ``columns`` (the
    refit before the rung-0 pool existed); None, calibrate's default (the pool and the free values)."""
    return [k for k in FREE_FEATURES if k in columns] if which == "free" else None


def priors(labs: Sequence[Lab], which: str) -> dict[str, tuple[tuple[Feature, ...], tuple[Feature, ...]]]:
    """lab name -> (rung-0 set, early set): chosen without that lab (``loo``), or the shipped ones."""
    out = {}
    for lab in labs:
        if which == "shipped":
            out[lab.name] = (BUDGET_INIT_FEATURES, BUDGET_EARLY_FEATURES)
            continue
        train = [o for o in labs if o is not lab]
        chosen = choose({ph: [o.phases[ph] for o in train if ph in o.phases] for ph in PHASES})
        out[lab.name] = (chosen["budget_init"], chosen.get("budget_early", ()))
    return out


def _present(table: pd.DataFrame, features: Sequence[Feature]) -> tuple[Feature, ...]:
    """The features the table has (one a lab lacks is left out of its score, as ``nas.lab.loo`` does)."""
    return tuple(f for f in features if has_feature(table, f.key))


def _first_epoch(curve) -> float:
    c = bs._curve(curve)
    return c[0] if c else float("nan")


def label_order(pop: pd.DataFrame, prior_scores: np.ndarray, probe: int, count: int,
                rng: np.random.Generator) -> list[tuple[str, int]]:
    """The first ``count`` labels, (kind, row), in the order a budget search produces them (module doc)."""
    n = len(pop)
    early = LOSS in pop.columns
    loss = pd.to_numeric(pop[LOSS], errors="coerce").to_numpy(float) if early else None
    order: list[tuple[str, int]] = []
    probed = [int(i) for i in rng.permutation(n)[:min(probe, n)]]
    order += [("loss" if early else "acc", i) for i in probed]
    have = set(probed)
    by_prior = [int(i) for i in np.argsort(-prior_scores, kind="stable") if int(i) not in have]
    trained: set[int] = set()
    promoted = 0
    while len(order) < count and by_prior:
        i = by_prior.pop(0)
        order.append(("loss" if early else "acc", i))
        have.add(i)
        promoted += 1
        if early and promoted % ETA == 0 and len(order) < count:
            lossed = [j for kind, j in order if kind == "loss" and j not in trained]
            best = min(lossed, key=lambda j: (np.nan_to_num(loss[j], nan=np.inf), j))
            trained.add(best)
            order.append(("acc1", best))
    return order[:count]


def _label_sets(pop: pd.DataFrame, order: Sequence[tuple[str, int]]) -> list[LabelSet]:
    values: dict[str, dict[int, float]] = {"loss": {}, "acc1": {}, "acc": {}}
    for kind, i in order:
        if kind == "loss":
            values[kind][i] = float(pd.to_numeric(pop[LOSS].iloc[i], errors="coerce"))
        elif kind == "acc1":
            values[kind][i] = _first_epoch(pop["val_acc_curve"].iloc[i])
        else:
            values[kind][i] = float(pop["acc"].iloc[i])
    spec = {"loss": (LOSS, "minimize"), "acc1": ("acc_epoch1", "maximize"), "acc": ("acc", "maximize")}
    return [LabelSet(spec[k][0], spec[k][1], v) for k, v in values.items() if v]


def tau_replay(lab: Lab, prior: Sequence[Feature], seeds: int, population: float, probe: int,
               counts: Sequence[int] = COUNTS, seed0: int = 0) -> pd.DataFrame:
    """One row per (seed, number of labels, ranker): tau on the unlabelled candidates, and the flips."""
    table = lab.phases["init"]
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng([s, 7])
        idx = rng.permutation(len(table))[: max(max(counts) + 10, int(round(population * len(table))))]
        pop = table.iloc[np.sort(idx)].reset_index(drop=True)
        feats = _present(pop, prior)
        prior_scores = rank_aggregate(pop, feats)
        order = label_order(pop, prior_scores, probe, max(counts), rng)
        acc = pop["acc"].to_numpy(float)
        for k in counts:
            got = order[:k]
            rest = np.array(sorted(set(range(len(pop))) - {i for _, i in got}))
            labels = _label_sets(pop, got)
            for name, penalty in RANKERS.items():
                if penalty is None:
                    score, flipped = prior_scores, ""
                else:
                    penalty, extra = penalty if isinstance(penalty, tuple) else (penalty, None)
                    cal = calibrate(pop, feats, labels, penalty=penalty, extra=refit_extra(pop.columns, extra))
                    score, flipped = cal.scores, ",".join(cal.description["flipped"])
                rows.append({"lab": lab.name, "seed": s, "labels": k, "ranker": name, "n_rest": len(rest),
                             "tau": tau(score[rest], acc[rest]), "flipped": flipped})
    return pd.DataFrame(rows)


class CalibratedPool(bs.Pool):
    """``budget_search.Pool`` whose rung-0 promotion is calibrated on a random probe's 50-step losses."""

    def __init__(self, *args, probe: int = 10, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.probe, self.probe_cost = probe, 0.0

    def score(self, idx: Sequence[int], phase: str) -> np.ndarray:
        if phase != "init":
            return super().score(idx, phase)
        idx = list(idx)
        probed = idx[: self.probe]  # the cohort is a uniform draw in random order: a random probe
        self.probe_cost += float(self.cost_early[probed].sum())
        cohort = self.rows.iloc[idx].reset_index(drop=True)
        labels = [LabelSet(LOSS, "minimize", {j: float(self.loss50[i]) for j, i in enumerate(probed)})]
        return calibrate(cohort, self.init_features, labels).scores


def budget_replay(lab: Lab, prior: Sequence[Feature], early: Sequence[Feature], seeds: int, budgets: Sequence[float],
                  probe: int, top: float = 0.05, seed0: int = 0) -> pd.DataFrame:
    """One row per (seed, strategy, budget) as ``budget_search.simulate``: the multi-fidelity search without
    and with calibration, on the same random half of the lab and the same cohort draws."""
    df = lab.phases["init"]
    rows = []
    for s in range(seed0, seed0 + seeds):
        rng = np.random.default_rng(s)
        pool_rows = df.iloc[rng.permutation(len(df))[len(df) // 2:]]
        init = _present(pool_rows, prior)
        early_f = _present(bs.steps_view(pool_rows, str(bs.EARLY_STEPS)), early) or init
        cost = cost_steps([f.key for f in init])
        plain = bs.Pool(pool_rows, cost, 0.0, init, early_f)
        # the calibrated search scores the rung-0 pool too (each metric's cost alone summed: an upper bound)
        cost = cost_steps(list(dict.fromkeys([f.key for f in init] + [k for k in POOL_METRICS if k in pool_rows])))
        good = plain.top(top)
        for b in budgets:
            crng = [s, 3, int(b * 1000)]
            best, spent = bs.gradnas_multi_fidelity(plain, b, np.random.default_rng(crng))
            rows.append(bs._row(s, "without calibration", b, plain, good, best, spent))
            cal = CalibratedPool(pool_rows, cost, 0.0, init, early_f, probe=probe)
            reserve = probe * float(cal.cost_early.mean())
            best, spent = bs.gradnas_multi_fidelity(cal, b - reserve, np.random.default_rng(crng))
            rows.append(bs._row(s, "with calibration", b, cal, good, best, spent + cal.probe_cost))
            free = CalibratedPool(pool_rows, cost, 0.0, init, early_f, probe=probe)
            best, spent = bs.gradnas_multi_fidelity(free, b, np.random.default_rng(crng))
            rows.append(bs._row(s, FREE, b, free, good, best, spent))
    return pd.DataFrame(rows)


def format_taus(res: pd.DataFrame) -> str:
    lines = []
    for lab, g in res.groupby("lab", sort=False):
        n_rest = g.groupby("labels")["n_rest"].mean()
        lines += ["", f"{lab}: Kendall tau of the unlabelled candidates against trained accuracy, mean +- sd over "
                      f"{g['seed'].nunique()} seeds (unlabelled left: "
                      + ", ".join(f"{n_rest[k]:.0f} at {k}" for k in n_rest.index) + ")",
                  f"{'ranker':28s}" + "".join(f"{f'{k} labels':>18s}" for k in sorted(g['labels'].unique()))]
        for name in RANKERS:
            cells = []
            for k in sorted(g["labels"].unique()):
                t = g[(g["ranker"] == name) & (g["labels"] == k)]["tau"]
                cells.append(f"{t.mean():+.3f} +- {t.std():.3f}")
            lines.append(f"{name:28s}" + "".join(f"{c:>18s}" for c in cells))
        before = g[g["ranker"] == "before (prior)"].set_index(["seed", "labels"])["tau"]
        for name in list(RANKERS)[1:3]:
            after = g[g["ranker"] == name].set_index(["seed", "labels"])["tau"]
            d = (after - before).groupby(level="labels")
            lines.append(f"{'gain, ' + name[7:]:28s}" + "".join(
                f"{f'{m:+.3f} ({p:.0%} >0)':>18s}" for m, p in zip(d.mean(), d.apply(lambda x: (x > 0).mean()))))
        flips = g[(g["ranker"] == "after, penalty 20") & (g["labels"] == g["labels"].max())]["flipped"]
        counted = pd.Series([k for f in flips for k in f.split(",") if k]).value_counts()
        lines.append(f"flipped at {g['labels'].max()} labels (penalty 20; seeds): "
                     + (", ".join(f"{k} {v}" for k, v in counted.items()) or "none"))
    return "\n".join(lines)


def format_budget(runs: pd.DataFrame, lab: str, top: float) -> str:
    summary = bs.summarize(runs)
    budgets = sorted(summary["budget"].unique())
    lines = [f"{lab}: fraction of seeds whose answer is top {top:.0%} (budget in epoch equivalents; "
             f"{runs['seed'].nunique()} seeds)", f"{'':36s}" + "".join(f"{b:>7g}" for b in budgets)]
    for name in BUDGET_STRATEGIES:
        s = summary[summary["strategy"] == name].set_index("budget")
        lines.append(f"{name:36s}" + "".join(f"{s.loc[b, 'p_top']:7.2f}" for b in budgets))
    for name in BUDGET_STRATEGIES:
        b = bs.budget_to_half(summary, name)
        lines.append(f"  half the seeds find a top config: {name:36s} "
                     + (f"{b:6.1f} epochs" if np.isfinite(b) else "not reached"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--tables", nargs="+", default=list(TABLES), help="lab tables (default: the three labs)")
    p.add_argument("--seeds", type=int, default=50, help="seeds per lab (default: %(default)s)")
    p.add_argument("--population", type=float, default=2 / 3,
                   help="rung-0 population as a fraction of the lab (default: %(default).2f)")
    p.add_argument("--probe", type=int, default=10, help="random candidates whose 50-step loss comes first "
                                                          "(default: %(default)s)")
    p.add_argument("--prior", choices=("loo", "shipped"), default="loo",
                   help="loo: the rung-0 set chosen without the lab (default); shipped: BUDGET_INIT_FEATURES")
    p.add_argument("--budgets", default=",".join(map(str, bs.BUDGETS)),
                   help="epoch-equivalent budgets of the budget replay (default: %(default)s)")
    p.add_argument("--no-budget", action="store_true", help="skip the budget replay")
    p.add_argument("--csv", default=None, help="write the per-seed tau rows here")
    args = p.parse_args(argv)
    if args.seeds < 1 or not 0 < args.population <= 1 or args.probe < 2:
        p.error("need --seeds >= 1, 0 < --population <= 1 and --probe >= 2")
    try:
        budgets = [float(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        p.error(f"--budgets must be comma-separated numbers, got {args.budgets!r}")
    missing = [t for t in args.tables if not Path(t).is_file()]
    if missing:
        p.error(f"no table at {', '.join(missing)}")
    if args.prior == "loo" and len(args.tables) < 2:
        p.error("--prior loo needs at least two tables")
    labs = [load_lab(t) for t in args.tables]
    chosen = priors(labs, args.prior)
    print(f"prior: {'chosen without the lab (leave one lab out)' if args.prior == 'loo' else 'shipped'}; "
          f"population {args.population:.2f} of each lab; probe {args.probe}; {args.seeds} seeds")
    for lab in labs:
        print(f"  {lab.name}: rung 0 " + " + ".join(f"{f.key}:{f.direction[:3]}*{f.weight:g}" for f in chosen[lab.name][0]))
    res = pd.concat([tau_replay(lab, chosen[lab.name][0], args.seeds, args.population, args.probe) for lab in labs])
    print(format_taus(res))
    if args.csv:
        res.to_csv(args.csv, index=False)
    if not args.no_budget:
        for lab in labs:
            t = lab.phases["init"]
            if "early" not in lab.phases or "val_acc_curve" not in t.columns or "config" not in t.columns:
                print(f"\n{lab.name}: no budget replay (no early losses or epoch curves)")
                continue
            if any("batch_size" not in json.loads(c) for c in t["config"]):
                continue
            init, early = chosen[lab.name]
            runs = budget_replay(lab, init, early, args.seeds, budgets, args.probe)
            print("\n" + format_budget(runs, lab.name, 0.05))
    return 0


if __name__ == "__main__":
    sys.exit(main())
