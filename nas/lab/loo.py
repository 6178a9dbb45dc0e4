"""Leave-one-lab-out: choose the combined score on every lab but one, report it on the one left out.

A lab is a ground-truth table (:mod:`nas.lab.tables`) seen as phase tables with plain metric names and the
accuracy to rank, ``acc``:

* a **population table** (``resnet_mnist5k``, ``mlp_mnist5k``): phase ``init`` is the table (the config's
  ``lr`` and ``batch_size`` as columns), phase ``early`` the table after the search's default early steps
  (its ``<m>@50`` columns, :func:`nas.lab.tables.steps_view`), where the table has them;
* an **NB201 lab table**: phase ``init`` only; the per-input columns ``<m>[mnist5k]`` become ``<m>`` (the
  inputs the population labs were scored on; ``nb201_input="gaussian"`` takes ``<m>[gaussian]``), the other
  input's columns are dropped; the data-free columns (``params``, ``flops``, ``synflow``, ``az_*`` on
  Gaussian batches, ``meco``) keep their names. NB201 trained every cell with one ``lr`` (0.1) and one
  ``batch_size`` (256): constant columns, which tie every cell (they carry nothing there), while a derived
  feature such as ``relative_step`` (``lr * grad_weight_ratio``) ranks as ``grad_weight_ratio`` does.

**The choice on several labs** is a selection procedure (:mod:`nas.lab.procedures`; ``greedy`` chose the
shipped sets before this comparison) run on all training labs at once. A set's **pooled tau** is the mean
over the training labs of its Kendall tau within each lab (``pool="min"``: the minimum), so that every lab
counts the same whatever its size. A feature a lab lacks (no column, no inputs of a derived key; NB201 has no
early values) is left out of the score in that lab, as a column without a finite value would be: its tau
there is that of the rest of the set (0 for a set of it alone). So a metric one training lab never measured
(NB201 has no fisher, jacob_cov, zico) is judged on the labs that did; on the lab left out it is left out of
the score, as a search whose trials lack it would have to.

Reported per lab left out and phase (:func:`leave_one_out`), for every procedure: Kendall tau on all its
rows of the sets chosen without it, beside the shipped sets (``objectives.combine``; in-sample on the labs
they were chosen on), AZ-NAS, MeCo, params, the loss after the early steps (raw and smoothed), and the
**in-lab** score, the greedy procedure chosen on random halves of that lab and reported on the other halves
(mean over ``splits``, as :mod:`nas.lab.judge`). :func:`report` is the text ``benchmarks/proxy_lab.py --loo`` prints,
with :func:`decide`'s verdict and the targets of issue 24.

**The decision rule** (:func:`decide`, stated before the procedures' figures were compared, with pool
``mean``): per procedure, the mean of its leave-one-lab-out taus at init over the labs left out, its init
set's and its rung-0 set's (six figures on three labs); the highest mean wins, a difference under
:data:`TIE` is a tie broken by the higher minimum of those figures. The early sets: among the procedures
whose init sets are the winner's (same init rule and cap), the mean over the labs with an early phase of the
early set's and the rung-0 early set's taus (four figures on two labs), ties likewise. The shipped defaults
follow the winner only when it beats :data:`nas.lab.procedures.CURRENT` by that rule. With three labs the
procedure is itself chosen on the same three folds that judge it: the winner's figures are not an unbiased
estimate for a fourth family.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from objectives.combine import (AZ_NAS_FEATURES, BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, EARLY_FEATURES,
                                INIT_FEATURES, Feature)
from objectives.evidence import read as read_package_data

from .judge import halves
from .procedures import BUDGET_MAX_COST, CURRENT, PROCEDURES, SETS, candidates, choose, set_cost
from .selection import EARLY_LOSS, RAW_LOSS, has_feature, pooled_tau, score, tau
from .tables import SEARCH_EARLY_STEPS, load, seed_ceiling, steps_view, with_data

__all__ = ["PHASES", "NB201_INPUT", "CHOSEN", "TIE", "FIXED_ROWS", "Lab", "lab_view", "load_lab", "candidates",
           "choose", "evaluate", "shipped_labs", "fixed_scores", "in_lab", "leave_one_out", "decide", "targets",
           "report"]

#: Phases of a lab: ``early`` = after :data:`~nas.lab.tables.SEARCH_EARLY_STEPS` steps.
PHASES = ("init", "early")
#: The inputs of an NB201 lab's data metrics taken as the plain metric names.
NB201_INPUT = "mnist5k"
#: The sets a procedure chooses: name -> phase it ranks at (:data:`nas.lab.procedures.SETS`).
CHOSEN = SETS
#: Two procedures' mean taus closer than this are a tie (:func:`decide`).
TIE = 0.005
SHIPPED, SHIPPED_BUDGET, INSIDE, INSIDE_BUDGET = ("shipped", "shipped budget rung 0", "in-lab (held-out halves)",
                                                  "in-lab budget (held-out halves)")
LOSS = f"loss after {SEARCH_EARLY_STEPS} steps"
SMOOTH_LOSS = f"smoothed loss of {SEARCH_EARLY_STEPS} steps"
#: Row labels of the report after the procedures' rows, in order.
FIXED_ROWS = (INSIDE, INSIDE_BUDGET, SHIPPED, SHIPPED_BUDGET, "AZ-NAS", "MeCo", "params", LOSS, SMOOTH_LOSS,
              "seed-to-seed (ceiling)")


def _budget(procedure: str) -> str:
    return f"{procedure} budget (<= {BUDGET_MAX_COST:g} steps)"


@dataclasses.dataclass(frozen=True)
class Lab:
    """A lab: its name and its phase tables (plain metric names, ``acc``; phases it lacks are absent)."""

    name: str
    phases: dict[str, pd.DataFrame]
    ceiling: float = float("nan")

    @property
    def n(self) -> int:
        return len(self.phases["init"])


def lab_view(df: pd.DataFrame, nb201_input: str = NB201_INPUT) -> pd.DataFrame:
    """A loaded table (:func:`nas.lab.tables.load`) with plain metric names: an NB201 lab's
    ``<m>[nb201_input]`` columns as ``<m>``, its other per-input columns dropped; a population table as is."""
    if not df.attrs.get("nb201"):
        return df
    out = with_data(df, nb201_input)
    out = out[[c for c in out.columns if not str(c).endswith("]")]].copy()
    out.attrs = {"nb201_input": nb201_input}  # no longer an NB201 table: candidates by the registry's names
    return out


def load_lab(path: str | Path, name: str | None = None, nb201_input: str = NB201_INPUT,
             target: str = "C10", scored_only: bool = True) -> Lab:
    """The lab of a table file (name: the file name up to its first dot).

    ``scored_only``: leave out the configs the table never scored (``eval_status`` failed: the early steps
    diverged, so the table has none of their values, not even the init ones). Kept, they rank last in every
    score, which gives every feature the same head start, the whole of it to a feature that is constant on
    the scored configs (MeCo on the MLP lab: 0 on every scored config, Kendall tau 0.50 from the 40 unscored
    ones alone); a search ranks the candidates it scored."""
    df = load(path, target)
    if scored_only and "eval_status" in df.columns:
        df = df[df["eval_status"].astype(str) != "failed"].reset_index(drop=True)
    init = lab_view(df, nb201_input)
    phases = {"init": init}
    if not df.attrs.get("nb201") and f"{RAW_LOSS}@{SEARCH_EARLY_STEPS}" in df.columns:
        phases["early"] = steps_view(init, str(SEARCH_EARLY_STEPS))
    ceiling = seed_ceiling(df).get("all", (float("nan"), 0))[0]
    return Lab(name or Path(path).name.split(".")[0], phases, ceiling)


def evaluate(table: pd.DataFrame, features: Sequence[Feature]) -> tuple[float, float]:
    """(Kendall tau of the set's score against ``acc``, its two-sided p); NaN when the table has none of
    the features (not measured there)."""
    if not any(has_feature(table, f.key) for f in features):
        return float("nan"), float("nan")
    s, acc = score(table, features), table["acc"].to_numpy()
    p = stats.kendalltau(s, acc).pvalue
    return tau(s, acc), float(p) if p == p else 1.0


def shipped_labs() -> tuple[str, ...]:
    """The labs the shipped sets were chosen on (``feature_sets.json``'s ``labs``; the resnet lab before it
    recorded them)."""
    return tuple(read_package_data("feature_sets.json").get("labs", ["resnet_mnist5k"]))


def fixed_scores(phase: str) -> dict[str, tuple[Feature, ...]]:
    """The untuned rankers of a phase: the shipped sets, AZ-NAS, MeCo, params, and after the early steps
    the early loss alone, raw and smoothed (the early sets' loss, :data:`~nas.lab.selection.EARLY_LOSS`)."""
    early = phase == "early"
    out = {SHIPPED: EARLY_FEATURES if early else INIT_FEATURES,
           SHIPPED_BUDGET: BUDGET_EARLY_FEATURES if early else BUDGET_INIT_FEATURES,
           "AZ-NAS": AZ_NAS_FEATURES, "MeCo": (Feature("meco", "maximize"),),
           "params": (Feature("params", "maximize"),)}
    if early:
        out[LOSS] = (Feature(RAW_LOSS, "minimize"),)
        out[SMOOTH_LOSS] = (Feature(EARLY_LOSS, "minimize"),)
    return out


def in_lab(lab: Lab, splits: int = 20, seed: int = 0, pool: str = "mean") -> dict[str, float]:
    """The in-lab score: the greedy procedure (:data:`nas.lab.procedures.CURRENT`) on one random half of
    the lab, tau on the other half; mean over ``splits`` halves, per set of :data:`CHOSEN`."""
    taus: dict[str, list[float]] = {}
    for ia, ib in halves(lab.n, splits, seed):
        part = {ph: t.iloc[ia].reset_index(drop=True) for ph, t in lab.phases.items()}
        rest = {ph: t.iloc[ib].reset_index(drop=True) for ph, t in lab.phases.items()}
        for name, feats in choose({ph: [t] for ph, t in part.items()}, pool).items():
            taus.setdefault(name, []).append(evaluate(rest[CHOSEN[name]], feats)[0])
    return {name: float(np.mean(v)) for name, v in taus.items()}


def _text(features: Sequence[Feature]) -> str:
    return " + ".join(f"{f.key}:{f.direction[:3]}" + (f"*{f.weight:g}" if f.weight != 1 else "") for f in features)


def leave_one_out(labs: Sequence[Lab], splits: int = 20, seed: int = 0, pool: str = "mean",
                  procedures: Sequence[str] = tuple(PROCEDURES)) -> pd.DataFrame:
    """One row per (lab left out, phase, ranker): ``tau`` and ``p`` on all the left-out lab's rows, ``n``;
    for a procedure's rows also ``procedure``, ``set``, ``features``, ``cost`` (init scoring, steps),
    ``train_tau`` (pooled tau on the training labs) and ``missing`` (features the left-out lab lacks)."""
    if len(labs) < 2:
        raise ValueError("leave-one-lab-out needs at least two labs")
    rows = []
    for out in labs:
        train = [lab for lab in labs if lab is not out]
        tables = {ph: [lab.phases[ph] for lab in train if ph in lab.phases] for ph in PHASES}
        chosen = {p: choose(tables, pool, p) for p in procedures}
        inside = in_lab(out, splits, seed, pool)
        for phase, table in out.phases.items():
            base = {"left_out": out.name, "phase": phase, "n": len(table)}
            for proc, sets in chosen.items():
                for label, name in ((proc, phase), (_budget(proc), f"budget_{phase}")):
                    if name not in sets:
                        continue
                    t, p = evaluate(table, sets[name])
                    rows.append({**base, "ranker": label, "tau": t, "p": p, "procedure": proc, "set": name,
                                 "features": _text(sets[name]), "cost": set_cost(sets[name]),
                                 "train_tau": pooled_tau(tables[phase], sets[name], pool),
                                 "missing": ", ".join(f.key for f in sets[name] if not has_feature(table, f.key))})
            for label, name in ((INSIDE, phase), (INSIDE_BUDGET, f"budget_{phase}")):
                if name in inside:
                    rows.append({**base, "ranker": label, "tau": inside[name], "n": len(table) - len(table) // 2})
            for label, feats in fixed_scores(phase).items():
                t, p = evaluate(table, feats)
                if t == t:
                    rows.append({**base, "ranker": label, "tau": t, "p": p,
                                 "missing": ", ".join(f.key for f in feats if not has_feature(table, f.key))})
            if out.ceiling == out.ceiling:
                rows.append({**base, "ranker": FIXED_ROWS[-1], "tau": out.ceiling})
    return pd.DataFrame(rows)


def _get(res: pd.DataFrame, lab: str, phase: str, ranker: str) -> float:
    v = res[(res["left_out"] == lab) & (res["phase"] == phase) & (res["ranker"] == ranker)]["tau"]
    return float(v.iloc[0]) if len(v) else float("nan")


def _figures(res: pd.DataFrame, procedure: str, phase: str) -> np.ndarray:
    """A procedure's taus at a phase over the labs left out, its full set's and its rung-0 set's (NaN: 0)."""
    rows = res[(res.get("procedure") == procedure) & (res["phase"] == phase)] if "procedure" in res else res[:0]
    return np.nan_to_num(rows["tau"].to_numpy(float), nan=0.0)


def _best(res: pd.DataFrame, names: Sequence[str], phase: str) -> str:
    """The procedure of ``names`` with the highest mean of :func:`_figures`, ties (< :data:`TIE`) broken by
    the higher minimum, then by the order of ``names``."""
    best = names[0]
    for name in names[1:]:
        a, b = _figures(res, best, phase), _figures(res, name, phase)
        if b.mean() > a.mean() + TIE or (abs(b.mean() - a.mean()) <= TIE and b.min() > a.min()):
            best = name
    return best


def decide(res: pd.DataFrame, current: str = CURRENT) -> tuple[str, str, bool, list[str]]:
    """The decision rule (module docstring) on :func:`leave_one_out`'s rows: (init winner, early winner,
    whether the defaults follow them: the init winner beats ``current``, text lines)."""
    procs = list(dict.fromkeys(res["procedure"].dropna())) if "procedure" in res else []
    if not procs:
        raise ValueError("no procedure rows to decide on")
    lines = []
    for p in procs:
        i, e = _figures(res, p, "init"), _figures(res, p, "early")
        lines.append(f"  {p:18s} init (init + rung-0 sets): mean {i.mean():+.3f} min {i.min():+.3f}"
                     + (f"; early: mean {e.mean():+.3f} min {e.min():+.3f}" if len(e) else ""))
    init = _best(res, procs, "init")
    same = [p for p in procs if (PROCEDURES[p].init_rule, PROCEDURES[p].init_cap)
            == (PROCEDURES[init].init_rule, PROCEDURES[init].init_cap)]
    early = _best(res, same, "early") if len(_figures(res, init, "early")) else init
    cur, win = _figures(res, current, "init"), _figures(res, init, "init")
    follow = init != current and current in procs and (win.mean() > cur.mean() + TIE or (
        abs(win.mean() - cur.mean()) <= TIE and win.min() > cur.min()))
    lines.append(f"  init winner: {init}; early winner (same init sets): {early}; defaults follow: "
                 + ("yes" if follow else f"no (the winner does not beat {current})"))
    return init, early, follow, lines


def targets(res: pd.DataFrame, default: str = CURRENT, p_max: float = 0.01) -> list[str]:
    """Issue 24's targets checked on :func:`leave_one_out`'s rows for the procedure ``default``, one line
    each (met / MISSED); the shipped sets are judged on a lab only where they were not chosen on it."""
    lines = []
    budget, az, seen = _budget(default), "AZ-NAS", shipped_labs()

    def mark(ok: bool) -> str:
        return "met   " if ok else "MISSED"

    for (lab, phase), g in res.groupby(["left_out", "phase"], sort=False):
        t, a, c = _get(res, lab, phase, default), _get(res, lab, phase, az), _get(res, lab, phase, INSIDE)
        lines.append(f"{mark(t >= a and t >= 0.9 * c)} {lab} {phase}: {default} {t:+.3f} >= AZ-NAS {a:+.3f} "
                     f"and >= 0.9 x in-lab {0.9 * c:+.3f}")
        if phase == "init":
            for ranker in (default, budget, SHIPPED_BUDGET, SHIPPED):
                row = g[g["ranker"] == ranker]
                if not len(row) or (ranker.startswith("shipped") and lab in seen):
                    continue  # the shipped sets were chosen on this lab: not an unseen family
                tr, pr = float(row["tau"].iloc[0]), float(row["p"].iloc[0])
                lines.append(f"{mark(pr < p_max and tr > a)} {lab} init, unseen family: {ranker} {tr:+.3f} "
                             f"(p {pr:.1g} < {p_max:g}) > AZ-NAS {a:+.3f}")
        else:
            for ranker in (default, SHIPPED):
                if ranker == SHIPPED and lab in seen:
                    continue
                e, lo, sm = (_get(res, lab, phase, r) for r in (ranker, LOSS, SMOOTH_LOSS))
                lines.append(f"{mark(e - lo >= 0.05)} {lab} early: {ranker} {e:+.3f} - loss alone {lo:+.3f} "
                             f"= {e - lo:+.3f} >= 0.05 (- the smoothed loss alone {sm:+.3f} = {e - sm:+.3f})")
    return lines


def report(labs: Sequence[Lab], splits: int = 20, seed: int = 0, pool: str = "mean",
           procedures: Sequence[str] = tuple(PROCEDURES)) -> str:
    """The leave-one-lab-out table (ranker x lab left out and phase -> tau), the sets chosen and their costs,
    the decision (:func:`decide`), the sets the winner chooses on all labs, the targets."""
    res = leave_one_out(labs, splits, seed, pool, procedures)
    cols = list(dict.fromkeys(zip(res["left_out"], res["phase"])))
    heads = [f"{lab} {phase}" for lab, phase in cols]
    ns = [f"n {res[(res['left_out'] == lab) & (res['phase'] == ph)]['n'].max()}" for lab, ph in cols]
    width = max(14, *map(len, heads))
    lines = [f"Kendall tau against trained accuracy on the lab left out (choices: {pool} over the other labs of "
             f"the within-lab tau; in-lab: greedy on {splits} random halves of that lab, reported on the other half)",
             f"{'ranker':36s}" + "".join(f"{h:>{width + 2}s}" for h in heads),
             f"{'':36s}" + "".join(f"{h:>{width + 2}s}" for h in ns)]
    for label in [r for p in procedures for r in (p, _budget(p))] + list(FIXED_ROWS):
        vals = [_get(res, lab, ph, label) for lab, ph in cols]
        if all(v != v for v in vals):
            continue
        lines.append(f"{label:36s}" + "".join(f"{v:>+{width + 2}.3f}" if v == v else f"{'-':>{width + 2}s}"
                                              for v in vals))
    lines.append(f"(shipped rows are in-sample on {', '.join(shipped_labs())}; the chance sd of tau is about "
                 + ", ".join(f"{np.sqrt(2 * (2 * lab.n + 5) / (9 * lab.n * (lab.n - 1))):.3f} on {lab.name}"
                             for lab in labs) + ")")
    lines.append("\nchosen on the other labs (init scoring cost in steps, the sum of the metrics' costs alone; "
                 "pooled tau there; features the left-out lab lacks):")
    for _, r in res[res["features"].notna()].iterrows():
        lines.append(f"  {r['ranker']} without {r['left_out']} ({r['phase']}): {r['features']}  [{r['cost']:.2f} "
                     f"steps; {r['train_tau']:+.3f}" + (f"; lacks {r['missing']}]" if r["missing"] else "]"))
    lines.append("\ndecision (rule in nas.lab.loo; the procedures are compared on the same three folds that "
                 "judge them):")
    init, early, follow, text = decide(res)
    lines += text
    tables = {ph: [lab.phases[ph] for lab in labs if ph in lab.phases] for ph in PHASES}
    lines.append(f"\nchosen on all the labs by {init} (early: {early}; no lab is left to judge it; pooled tau, "
                 "cost in steps):")
    sets = choose(tables, pool, init)
    if "early" in sets:
        sets = {**sets, "early": choose(tables, pool, early)["early"]}
    for name, feats in sets.items():
        lines.append(f"  {name}: {_text(feats)}  [{pooled_tau(tables[CHOSEN[name]], feats, pool):+.3f}; "
                     f"{set_cost(feats):.2f} steps]")
    lines.append(f"\ntargets (issue 24), for {init} (early: {early}):")
    lines += ["  " + t for t in targets(res, init)]
    if early != init:
        lines += ["  " + t for t in targets(res, early) if " early" in t]
    return "\n".join(lines)
