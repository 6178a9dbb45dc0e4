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

**The choice on several labs** (:func:`choose`) is the procedure that chose the shipped sets
(:mod:`nas.lab.data`), run on all training labs at once: a feature's direction is the one with the higher
pooled tau, and greedy forward selection grows the set while the pooled tau gains (:func:`nas.lab.selection.
select_over`). The **pooled tau** of a set is the mean over the training labs of its Kendall tau within each
lab (``pool="min"``: the minimum), so that every lab counts the same whatever its size and a feature must
rank within every lab, not just separate one lab's good configs from another's. A feature a lab lacks (no
column, no inputs of a derived key; NB201 has no early values) is left out of the score in that lab, as a
column without a finite value would be: its tau there is that of the rest of the set (0 for a set of it
alone). So a metric one training lab never measured (NB201 has no fisher, jacob_cov, zico) is judged on the
labs that did, and neither helps nor hurts in the one that did not; on the lab left out it is left out of
the score, as a search whose trials lack it would have to. The early score is the shipped structure, the early loss (``train_loss_last``, minimized) with the
weight from :data:`~nas.lab.selection.LOSS_WEIGHTS` of the best pooled tau over the training labs that have
an early phase, plus the init set chosen on all of them; the budget sets cap the same selection at
:data:`nas.lab.data.BUDGET_MAX_COST` steps.

Reported per lab left out and phase (:func:`leave_one_out`): Kendall tau on all its rows of the
leave-one-out choice, the shipped sets (``objectives.combine``; chosen on the resnet lab: in-sample there),
AZ-NAS, MeCo, params, the loss after the early steps, and the **in-lab** score, the same procedure chosen on
random halves of that lab and reported on the other halves (mean over ``splits``, as :mod:`nas.lab.judge`).
:func:`report` is the text ``benchmarks/proxy_lab.py --loo`` prints, with the targets of issue 24.
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

from .data import BUDGET_MAX_COST
from .judge import halves
from .selection import (EARLY_LOSS, candidate_features, has_feature, pooled_tau, score, select_over,
                        select_structured_over, tau)
from .tables import SEARCH_EARLY_STEPS, load, seed_ceiling, steps_view, with_data

__all__ = ["PHASES", "NB201_INPUT", "CHOSEN", "ROWS", "Lab", "lab_view", "load_lab", "candidates", "choose", "evaluate",
           "fixed_scores", "in_lab", "leave_one_out", "targets", "report"]

#: Phases of a lab: ``early`` = after :data:`~nas.lab.tables.SEARCH_EARLY_STEPS` steps.
PHASES = ("init", "early")
#: The inputs of an NB201 lab's data metrics taken as the plain metric names.
NB201_INPUT = "mnist5k"
#: The sets :func:`choose` returns: name -> phase it ranks at.
CHOSEN = {"init": "init", "budget_init": "init", "early": "early", "budget_early": "early"}
#: Row labels of the report, in order: (label, chosen set or None).
ROWS = (("leave-one-out choice", "init|early"), ("leave-one-out budget (<= 2 steps)", "budget_init|budget_early"),
        ("in-lab (held-out halves)", None), ("in-lab budget (held-out halves)", None),
        ("shipped (chosen on resnet lab)", None), ("shipped budget rung 0", None), ("AZ-NAS", None),
        ("MeCo", None), ("params", None), (f"loss after {SEARCH_EARLY_STEPS} steps", None),
        ("seed-to-seed (ceiling)", None))


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
             target: str = "C10") -> Lab:
    """The lab of a table file (name: the file name up to its first dot)."""
    df = load(path, target)
    init = lab_view(df, nb201_input)
    phases = {"init": init}
    if not df.attrs.get("nb201") and f"{EARLY_LOSS}@{SEARCH_EARLY_STEPS}" in df.columns:
        phases["early"] = steps_view(init, str(SEARCH_EARLY_STEPS))
    ceiling = seed_ceiling(df).get("all", (float("nan"), 0))[0]
    return Lab(name or Path(path).name.split(".")[0], phases, ceiling)


def candidates(tables: Sequence[pd.DataFrame], phase: str) -> list[str]:
    """The keys a choice may use: every key a training table has at that phase (union, first seen first)."""
    return list(dict.fromkeys(k for t in tables for k in candidate_features(t, phase)))


def choose(tables: dict[str, Sequence[pd.DataFrame]], pool: str = "mean") -> dict[str, tuple[Feature, ...]]:
    """The sets of :data:`CHOSEN` chosen on ``tables`` (phase -> the training labs' tables at that phase);
    no early sets when no table has an early phase."""
    init_tables = list(tables["init"])
    keys = candidates(init_tables, "init")
    init, _ = select_over(init_tables, keys, pool=pool)
    budget, _ = select_over(init_tables, keys, max_cost=BUDGET_MAX_COST, pool=pool)
    out = {"init": init, "budget_init": budget}
    early_tables = list(tables.get("early", ()))
    if early_tables:
        out["early"] = select_structured_over(early_tables, init, pool)
        out["budget_early"] = select_structured_over(early_tables, budget, pool)
    return out


def evaluate(table: pd.DataFrame, features: Sequence[Feature]) -> tuple[float, float]:
    """(Kendall tau of the set's score against ``acc``, its two-sided p); NaN when the table has none of
    the features (not measured there)."""
    if not any(has_feature(table, f.key) for f in features):
        return float("nan"), float("nan")
    s, acc = score(table, features), table["acc"].to_numpy()
    p = stats.kendalltau(s, acc).pvalue
    return tau(s, acc), float(p) if p == p else 1.0


def fixed_scores(phase: str) -> dict[str, tuple[Feature, ...]]:
    """The untuned rankers of a phase: the shipped sets, AZ-NAS, MeCo, params, and after the early steps
    the early loss alone."""
    early = phase == "early"
    out = {"shipped (chosen on resnet lab)": EARLY_FEATURES if early else INIT_FEATURES,
           "shipped budget rung 0": BUDGET_EARLY_FEATURES if early else BUDGET_INIT_FEATURES,
           "AZ-NAS": AZ_NAS_FEATURES, "MeCo": (Feature("meco", "maximize"),),
           "params": (Feature("params", "maximize"),)}
    if early:
        out[f"loss after {SEARCH_EARLY_STEPS} steps"] = (Feature(EARLY_LOSS, "minimize"),)
    return out


def in_lab(lab: Lab, splits: int = 20, seed: int = 0, pool: str = "mean") -> dict[str, float]:
    """The in-lab score: :func:`choose` on one random half of the lab, tau on the other half; mean over
    ``splits`` halves, per set of :data:`CHOSEN`."""
    taus: dict[str, list[float]] = {}
    for ia, ib in halves(lab.n, splits, seed):
        part = {ph: t.iloc[ia].reset_index(drop=True) for ph, t in lab.phases.items()}
        rest = {ph: t.iloc[ib].reset_index(drop=True) for ph, t in lab.phases.items()}
        for name, feats in choose({ph: [t] for ph, t in part.items()}, pool).items():
            taus.setdefault(name, []).append(evaluate(rest[CHOSEN[name]], feats)[0])
    return {name: float(np.mean(v)) for name, v in taus.items()}


def _text(features: Sequence[Feature]) -> str:
    return " + ".join(f"{f.key}:{f.direction[:3]}" + (f"*{f.weight:g}" if f.weight != 1 else "") for f in features)


def leave_one_out(labs: Sequence[Lab], splits: int = 20, seed: int = 0, pool: str = "mean") -> pd.DataFrame:
    """One row per (lab left out, phase, ranker): ``tau`` and ``p`` on all the left-out lab's rows, ``n``,
    the features (chosen sets), ``train_tau`` (a chosen set's pooled tau on the training labs) and
    ``missing`` (its features the left-out lab lacks)."""
    if len(labs) < 2:
        raise ValueError("leave-one-lab-out needs at least two labs")
    rows = []
    for out in labs:
        train = [lab for lab in labs if lab is not out]
        tables = {ph: [lab.phases[ph] for lab in train if ph in lab.phases] for ph in PHASES}
        chosen = choose(tables, pool)
        inside = in_lab(out, splits, seed, pool)
        for phase, table in out.phases.items():
            base = {"left_out": out.name, "phase": phase, "n": len(table)}
            for label, names in ROWS[:2]:
                name = names.split("|")[PHASES.index(phase)]
                if name not in chosen:
                    continue
                t, p = evaluate(table, chosen[name])
                rows.append({**base, "ranker": label, "tau": t, "p": p, "features": _text(chosen[name]),
                             "train_tau": pooled_tau(tables[phase], chosen[name], pool),
                             "missing": ", ".join(f.key for f in chosen[name] if not has_feature(table, f.key))})
            for label, name in ((ROWS[2][0], phase), (ROWS[3][0], f"budget_{phase}")):
                if name in inside:
                    rows.append({**base, "ranker": label, "tau": inside[name], "n": len(table) - len(table) // 2})
            for label, feats in fixed_scores(phase).items():
                t, p = evaluate(table, feats)
                if t == t:
                    rows.append({**base, "ranker": label, "tau": t, "p": p,
                                 "missing": ", ".join(f.key for f in feats if not has_feature(table, f.key))})
            if out.ceiling == out.ceiling:
                rows.append({**base, "ranker": ROWS[-1][0], "tau": out.ceiling})
    return pd.DataFrame(rows)


def _get(res: pd.DataFrame, lab: str, phase: str, ranker: str) -> float:
    v = res[(res["left_out"] == lab) & (res["phase"] == phase) & (res["ranker"] == ranker)]["tau"]
    return float(v.iloc[0]) if len(v) else float("nan")


def targets(res: pd.DataFrame, p_max: float = 0.01, shipped_lab: str = "resnet_mnist5k") -> list[str]:
    """Issue 24's targets checked on :func:`leave_one_out`'s rows, one line each (met / MISSED)."""
    lines = []
    loo, budget, inside, az = ROWS[0][0], ROWS[1][0], ROWS[2][0], "AZ-NAS"
    loss = f"loss after {SEARCH_EARLY_STEPS} steps"

    def mark(ok: bool) -> str:
        return "met   " if ok else "MISSED"

    for (lab, phase), g in res.groupby(["left_out", "phase"], sort=False):
        t, a, c = _get(res, lab, phase, loo), _get(res, lab, phase, az), _get(res, lab, phase, inside)
        lines.append(f"{mark(t >= a and t >= 0.9 * c)} {lab} {phase}: leave-one-out {t:+.3f} >= AZ-NAS {a:+.3f} "
                     f"and >= 0.9 x in-lab {0.9 * c:+.3f}")
        if phase == "init":
            for ranker in (loo, budget, "shipped budget rung 0", "shipped (chosen on resnet lab)"):
                if ranker.startswith("shipped") and lab == shipped_lab:
                    continue  # chosen on this lab: not an unseen family
                row = g[g["ranker"] == ranker]
                if not len(row):
                    continue
                tr, pr = float(row["tau"].iloc[0]), float(row["p"].iloc[0])
                lines.append(f"{mark(pr < p_max and tr > a)} {lab} init, unseen family: {ranker} {tr:+.3f} "
                             f"(p {pr:.1g} < {p_max:g}) > AZ-NAS {a:+.3f}")
        else:
            for ranker in (loo, "shipped (chosen on resnet lab)"):
                e, lo = _get(res, lab, phase, ranker), _get(res, lab, phase, loss)
                lines.append(f"{mark(e - lo >= 0.05)} {lab} early: {ranker} {e:+.3f} - loss alone {lo:+.3f} "
                             f"= {e - lo:+.3f} >= 0.05")
    return lines


def report(labs: Sequence[Lab], splits: int = 20, seed: int = 0, pool: str = "mean") -> str:
    """The leave-one-lab-out table (ranker x lab left out and phase -> tau), the sets chosen, the targets."""
    res = leave_one_out(labs, splits, seed, pool)
    cols = list(dict.fromkeys(zip(res["left_out"], res["phase"])))
    heads = [f"{lab} {phase}" for lab, phase in cols]
    ns = [f"n {res[(res['left_out'] == lab) & (res['phase'] == ph)]['n'].max()}" for lab, ph in cols]
    width = max(14, *map(len, heads))
    lines = [f"Kendall tau against trained accuracy on the lab left out (choices: {pool} over the other labs of "
             f"the within-lab tau; in-lab: {splits} random halves of that lab, reported on the other half)",
             f"{'ranker':36s}" + "".join(f"{h:>{width + 2}s}" for h in heads),
             f"{'':36s}" + "".join(f"{h:>{width + 2}s}" for h in ns)]
    for label, _ in ROWS:
        vals = [_get(res, lab, ph, label) for lab, ph in cols]
        if all(v != v for v in vals):
            continue
        lines.append(f"{label:36s}" + "".join(f"{v:>+{width + 2}.3f}" if v == v else f"{'-':>{width + 2}s}"
                                              for v in vals))
    lines.append("(shipped rows on resnet_mnist5k are in-sample; the chance sd of tau is about "
                 + ", ".join(f"{np.sqrt(2 * (2 * lab.n + 5) / (9 * lab.n * (lab.n - 1))):.3f} on {lab.name}"
                             for lab in labs) + ")")
    lines.append("\nchosen on the other labs (pooled tau there; features the left-out lab lacks):")
    chosen = res[res["features"].notna()] if "features" in res.columns else res.iloc[:0]
    for _, r in chosen.iterrows():
        lines.append(f"  without {r['left_out']} ({r['phase']}, {r['ranker']}): {r['features']}  "
                     f"[{r['train_tau']:+.3f}" + (f"; lacks {r['missing']}]" if r["missing"] else "]"))
    tables = {ph: [lab.phases[ph] for lab in labs if ph in lab.phases] for ph in PHASES}
    lines.append("\nchosen on all the labs (what the defaults would be if they followed this procedure; no lab is "
                 "left to judge it; pooled tau):")
    for name, feats in choose(tables, pool).items():
        lines.append(f"  {name}: {_text(feats)}  [{pooled_tau(tables[CHOSEN[name]], feats, pool):+.3f}]")
    lines.append("\ntargets (issue 24):")
    lines += ["  " + t for t in targets(res)]
    return "\n".join(lines)
