"""The proxy lab: judge rankings on ground-truth tables, choose the combined score on held-out halves.

Reads a ground-truth table of ``benchmarks/proxy_vs_training.py`` (one row per config: every metric at
initialization ``<m>``, after 20 steps ``<m>@early`` and after 50 steps ``<m>@50``, the loss baselines,
and the best test accuracy of two trainings with different seeds) and reports, side by side:

1. the table: configs, failures, the seed-to-seed Kendall tau (the ceiling no proxy can beat) over all
   configs, the ones that train (mean accuracy above :data:`TRAINS`) and the top quarter;
2. the measured direction of every metric per phase: Kendall tau of the metric against the mean
   accuracy of the two seeds, with n and p (``--directions`` prints them as the registry's evidence);
3. **held-out selection** (DESIGN §8): on each of ``--splits`` random halves, the directions, the best
   single feature per phase and the combined score's features (greedy forward selection of summed
   log-ranks, :func:`objectives.combine.rank_aggregate`) are chosen on one half and Kendall tau is
   reported on the other half; mean and sd over the splits. Baselines: the loss after 20 / 50 steps,
   params, FLOPs, AZ-NAS and MeCo where the table has them, and the old default objectives of the search
   (mean rank of confusion, diversity and kappa_w at init, all minimized, with ``rank_input <= 0.15``).
4. the features chosen on the whole table (``--choose``): the sets ``objectives.combine`` ships.

Phases: ``init`` (values at initialization), ``early`` (also the values after 20 steps) and ``50`` (also
the values after 50 steps, named as a search with ``--early-steps 50`` stores them: ``<m>@50`` ->
``<m>@early``, ``train_loss_last@50`` -> ``train_loss_last``, :func:`steps_view`). The shipped early set
is chosen on phase ``50``: the search's default early steps (:data:`SEARCH_EARLY_STEPS`).

NB201 lab tables (``benchmarks/nb201_lab.py``: one row per cell, data-free and per-input metric columns,
the 200-epoch accuracies) have one phase, ``init``, and ``--target`` picks the accuracy to rank.

A value that is missing or not finite (a metric undefined for a dead net, a config whose early steps
diverged) ranks last, as in the search.

Usage::

    python benchmarks/proxy_lab.py --table benchmarks/tables/resnet_mnist5k.csv.gz --splits 20 --choose
"""

from __future__ import annotations

import argparse
import math
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

try:
    import objectives  # noqa: F401
except ImportError:  # run from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from objectives import registry
from objectives.combine import CONFIG_COLUMNS, DERIVED, DERIVED_INPUTS, Feature, combined_score, feature_values, rank_aggregate

#: Mean best accuracy above which a config counts as "trains" (10 classes: chance is 0.1).
TRAINS = 0.5
PHASES = ("init", "early", "50")
#: Loss-like values: lower is better; their direction is never learned.
LOSS_KEYS = ("loss_init", "loss_early", "train_loss_first", "train_loss_last")


#: Accuracy columns of an NB201 lab table (``benchmarks/nb201_lab.py``): 200-epoch test accuracy.
NB201_TARGETS = ("C10", "C100", "IN16")


def is_nb201(df: pd.DataFrame) -> bool:
    return "config" not in df.columns and set(NB201_TARGETS) <= set(df.columns)


#: The search's default number of early steps (``python -m nas search --early-steps``): the shipped early
#: feature set is chosen and judged on the table's values after this many steps.
SEARCH_EARLY_STEPS = 50
#: Values of the early steps that the search stores without the ``@early`` suffix.
STEP_VALUES = ("loss_early", "loss_drop", "train_loss_last", "train_kappa_w", "loss_curve")


def steps_view(df: pd.DataFrame, tag: str = "50") -> pd.DataFrame:
    """The table as a search with ``tag`` early steps stores it: ``<m>@50`` -> ``<m>@early``,
    ``train_loss_last@50`` -> ``train_loss_last`` (likewise the other :data:`STEP_VALUES`)."""
    tail = f"@{tag}"
    renamed = {}
    for c in df.columns:
        if str(c).endswith(tail):
            base = c[: -len(tail)]
            renamed[c] = base if base in STEP_VALUES else f"{base}@early"
    out = df.drop(columns=[v for v in renamed.values() if v in df.columns]).rename(columns=renamed)
    out.attrs.update(df.attrs)
    return out


def phase_table(df: pd.DataFrame, phase: str) -> tuple[pd.DataFrame, str]:
    """(table, phase of its keys): phase ``"50"`` is the ``"early"`` phase of :func:`steps_view`."""
    return (steps_view(df), "early") if phase == "50" else (df, phase)


def phases(df: pd.DataFrame) -> tuple[str, ...]:
    """The phases a table has: NB201 cells are scored at initialization only."""
    return ("init",) if df.attrs.get("nb201") else PHASES


def data_kinds(df: pd.DataFrame) -> list[str]:
    """The inputs of an NB201 lab's data-dependent columns (``kappa_w[mnist5k]`` -> ``mnist5k``)."""
    return sorted({c[c.index("[") + 1:-1] for c in df.columns if c.endswith("]") and "[" in c})


def with_data(df: pd.DataFrame, data: str) -> pd.DataFrame:
    """``df`` plus plain metric columns taken from ``<metric>[data]`` (the names combine's features use)."""
    extra = {c[: c.index("[")]: df[c] for c in df.columns if c.endswith(f"[{data}]")}
    return pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)


def with_config(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus the config's keys as columns (``lr``, ``batch_size``, ...), as a study's trials table has."""
    if "config" not in df.columns:
        return df
    configs = pd.DataFrame([json.loads(c) if isinstance(c, str) else {} for c in df["config"]], index=df.index)
    return pd.concat([df, configs[[k for k in configs.columns if k not in df.columns]]], axis=1)


def load(path: str | Path, target: str = "C10") -> pd.DataFrame:
    """The table with ``acc``: for a proxy_vs_training table the config expanded into columns and the mean
    best accuracy of the seeds; for an NB201 lab table the ``target`` accuracy (C10, C100 or IN16, %)."""
    df = pd.read_csv(path)
    if is_nb201(df):
        df["acc"] = pd.to_numeric(df[target], errors="coerce") / 100.0
        df.attrs.update(nb201=True, target=target)
        return df[df["acc"].notna()].reset_index(drop=True)
    df = with_config(df).copy()
    val = pd.to_numeric(df.get("val_best_acc"), errors="coerce")
    rep = pd.to_numeric(df.get("rep_best_acc"), errors="coerce") if "rep_best_acc" in df else val * np.nan
    df["acc"] = pd.concat([val, rep], axis=1).mean(axis=1, skipna=True)
    return df[df["acc"].notna()].reset_index(drop=True)


#: Metrics left out of the candidates for their cost (grasp: 5-15 s a NB201 cell, the most expensive peer;
#: leaving it out changed no held-out figure on the resnet lab).
EXCLUDED = ("grasp",)


def candidate_features(df: pd.DataFrame, phase: str) -> list[str]:
    """Feature keys available at a phase: metrics (and derived values) measured up to that point."""
    if df.attrs.get("nb201"):  # every metric column (one per metric and input), all at init
        skip = ("index", "arch", "settings", "lr", "batch_size", "acc", *NB201_TARGETS)
        return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    metrics = [m for m in registry.names() if m not in EXCLUDED]
    keys = [m for m in metrics if m in df.columns] + [k for k in ("loss_init",) if k in df.columns]
    keys += [k for k in ("lr", "batch_size") if k in df.columns]
    keys += [d for d in DERIVED if _derivable(df, d)]
    for suffix in {"early": ("@early",)}.get(phase, ()):
        keys += [f"{d}{suffix}" for d in DERIVED if d != "log_lr" and _derivable(df, f"{d}{suffix}")]
    if phase in ("early", "50"):
        keys += [f"{m}@early" for m in metrics if f"{m}@early" in df.columns and m not in ("params", "flops")]
        keys += [k for k in ("loss_early", "loss_drop", "train_loss_last", "train_kappa_w") if k in df.columns]
    return keys


def _derivable(df: pd.DataFrame, key: str) -> bool:
    try:
        v = feature_values(df, key)
    except KeyError:
        return False
    return bool(np.isfinite(v).any())


def tau(score: np.ndarray, acc: np.ndarray) -> float:
    t = stats.kendalltau(score, acc).statistic
    return float(t) if t == t else 0.0


def oriented_tau(df: pd.DataFrame, key: str, direction: str) -> float:
    return tau(rank_aggregate(df, [Feature(key, direction)]), df["acc"].to_numpy())


def measured_direction(df: pd.DataFrame, key: str) -> tuple[str, float]:
    """The better direction of a feature on these rows and its oriented tau (loss-like keys: minimize)."""
    if key in LOSS_KEYS or key.split("@")[0] in LOSS_KEYS:
        return "minimize", oriented_tau(df, key, "minimize")
    up = oriented_tau(df, key, "maximize")
    down = oriented_tau(df, key, "minimize")
    return ("maximize", up) if up >= down else ("minimize", down)


#: Cost of each metric at init in training steps of the same network (``benchmarks/metric_cost.py --threads 1``,
#: CPU ResNet-20, batch 64, 2026-12-01); config values are free. Used by ``--max-cost`` (a budgeted search's
#: rung 0). A metric missing here counts as too expensive.
COST_STEPS = {
    "az_expressivity": 0.50, "az_progressivity": 0.48, "az_trainability": 0.97, "coherence": 2.31,
    "confusion": 1.90, "diversity": 1.95, "fisher": 0.77, "flops": 0.36, "grad_depth_trend": 1.45,
    "grad_norm": 1.03, "grad_norm_cv": 1.80, "grad_weight_ratio": 1.44, "grasp": 3.14, "jacob_cov": 0.86,
    "kappa_w": 2.97, "kappa_x": 3.00, "meco": 0.36, "min_cosine": 3.57, "naswot": 0.90, "params": 0.0,
    "rank_input": 1.91, "rank_weight": 2.77, "sgn_berry_esseen": 3.19, "sgn_gaussianity": 2.68, "snip": 1.22,
    "spectrum_ks": 3.72, "spectrum_s": 3.24, "synflow": 0.09, "weight_coherence": 3.27, "weight_diversity": 4.55,
    "zico": 1.05, "loss_init": 0.3,
}


def cost_steps(keys: Sequence[str]) -> float:
    """Training steps to score the metrics ``keys`` read at init (derived keys expanded, shared inputs once)."""
    metrics: set[str] = set()
    for k in keys:
        metrics |= set(DERIVED_INPUTS.get(k, (k,)))
    return float(sum(COST_STEPS.get(m, math.inf) for m in metrics if m not in CONFIG_COLUMNS))


def select(df: pd.DataFrame, keys: Sequence[str], max_features: int = 6,
           min_gain: float = 0.005, max_cost: float | None = None) -> tuple[tuple[Feature, ...], Feature]:
    """(combined features by greedy forward selection, best single feature), chosen on ``df``; with
    ``max_cost`` only keys and sets that cost at most that many training steps (:func:`cost_steps`)."""
    acc = df["acc"].to_numpy()
    if max_cost is not None:
        keys = [k for k in keys if cost_steps([k]) <= max_cost]
    scored = {k: measured_direction(df, k) for k in keys}
    single_key = max(scored, key=lambda k: scored[k][1])
    best_single = Feature(single_key, scored[single_key][0])
    chosen = [best_single]
    best = scored[single_key][1]
    while len(chosen) < max_features:
        trial = {}
        for k in keys:
            if any(f.key == k for f in chosen):
                continue
            if max_cost is not None and cost_steps([f.key for f in chosen] + [k]) > max_cost:
                continue
            feats = chosen + [Feature(k, scored[k][0])]
            trial[k] = tau(rank_aggregate(df, feats), acc)
        if not trial:
            break
        k = max(trial, key=trial.get)
        if trial[k] < best + min_gain:
            break
        chosen.append(Feature(k, scored[k][0]))
        best = trial[k]
    return tuple(chosen), best_single


#: The early-loss feature of the structured early score and the weights tried for it.
EARLY_LOSS = "train_loss_last"
LOSS_WEIGHTS = (2.0, 4.0, 8.0, 16.0)


def select_structured(view: pd.DataFrame, init: Sequence[Feature]) -> tuple[Feature, ...]:
    """The structured early score: the mean training loss of the last early steps (:data:`EARLY_LOSS`,
    minimized) with the weight from :data:`LOSS_WEIGHTS` that ranks ``view`` best, plus the init set
    ``init`` (chosen at init on the same rows) with its weights. ``view``: the table after the early steps
    (:func:`steps_view`)."""
    acc = view["acc"].to_numpy()
    best = max(LOSS_WEIGHTS, key=lambda w: tau(rank_aggregate(view, [Feature(EARLY_LOSS, "minimize", w), *init]), acc))
    return (Feature(EARLY_LOSS, "minimize", best), *init)


def old_defaults(df: pd.DataFrame) -> np.ndarray:
    """The old search defaults: mean rank of confusion, diversity, kappa_w at init (all minimized), rows
    with rank_input > 0.15 (infeasible) last."""
    s = rank_aggregate(df, [Feature("confusion", "minimize"), Feature("diversity", "minimize"),
                            Feature("kappa_w", "minimize")])
    infeasible = ~(pd.to_numeric(df["rank_input"], errors="coerce") <= 0.15).to_numpy()
    return np.where(infeasible, s.min() - 1.0, s)


def seed_ceiling(df: pd.DataFrame) -> dict[str, tuple[float, int]]:
    if "rep_best_acc" not in df.columns:
        return {}
    both = df[pd.to_numeric(df["rep_best_acc"], errors="coerce").notna()
              & pd.to_numeric(df["val_best_acc"], errors="coerce").notna()]
    out = {}
    for label, rows in (("all", both), ("trains", both[both["acc"] > TRAINS]),
                        ("top quarter", both[both["acc"] >= both["acc"].quantile(0.75)])):
        if len(rows) >= 3:
            out[label] = (float(stats.kendalltau(rows["val_best_acc"], rows["rep_best_acc"]).statistic), len(rows))
        else:
            out[label] = (float("nan"), len(rows))
    return out


def baselines(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Fixed (untuned) rankers: higher = predicted better."""
    out: dict[str, np.ndarray] = {}
    for label, key, d in (("loss after 20 steps", "train_loss_last", "minimize"),
                          ("loss after 50 steps", "train_loss_last@50", "minimize"),
                          ("params", "params", "maximize"), ("flops", "flops", "maximize"),
                          ("meco", "meco", "maximize")):
        if key in df.columns:
            out[label] = rank_aggregate(df, [Feature(key, d)])
    az = [k for k in ("az_expressivity", "az_progressivity", "az_trainability") if k in df.columns]
    if len(az) == 3 and "flops" in df.columns:
        out["AZ-NAS (4 components, summed log-ranks)"] = rank_aggregate(
            df, [Feature(k, "maximize") for k in az] + [Feature("flops", "maximize")])
    # the combined score objectives.combine ships (fixed, not tuned here); its early set is meant for the
    # search's default of SEARCH_EARLY_STEPS early steps: judged on the table's values after as many steps
    for data in data_kinds(df) or [None]:
        label = "gradnas combined_score, init (shipped; chosen on the resnet lab)" + (f" on {data} inputs" if data else "")
        try:
            out[label] = combined_score(with_data(df, data) if data else df, "init").to_numpy()
        except KeyError:
            pass
    if not df.attrs.get("nb201"):
        try:
            out[f"gradnas combined_score, early (shipped; chosen on the resnet lab; {SEARCH_EARLY_STEPS} steps)"] = combined_score(
                steps_view(df, str(SEARCH_EARLY_STEPS)), "early").to_numpy()
        except KeyError:
            pass
    if {"confusion", "diversity", "kappa_w", "rank_input"} <= set(df.columns):
        out["old defaults (confusion, diversity, kappa_w: min; rank_input <= 0.15)"] = old_defaults(df)
    return out


def held_out(df: pd.DataFrame, splits: int, seed: int, first: int | None = None) -> pd.DataFrame:
    """Choose on one part, report on the other: ``splits`` random halves, or with ``first`` one split that
    chooses on the configs with ``index < first`` and reports on the later ones."""
    rng = np.random.default_rng(seed)
    rows = []
    n = len(df)
    if first is not None:
        early = (pd.to_numeric(df["index"]) < first).to_numpy()
        parts = [(np.flatnonzero(early), np.flatnonzero(~early))]
    else:
        parts = []
        for _ in range(splits):
            perm = rng.permutation(n)
            parts.append((perm[: n // 2], perm[n // 2:]))
    for s, (ia, ib) in enumerate(parts):
        a, b = df.iloc[ia].reset_index(drop=True), df.iloc[ib].reset_index(drop=True)
        acc_b = b["acc"].to_numpy()
        rec = {"split": s}
        chosen = {}
        for phase in phases(df):
            (ta, kind), (tb, _) = phase_table(a, phase), phase_table(b, phase)
            combo, single = select(ta, candidate_features(ta, kind))
            chosen[phase] = combo
            rec[f"combined {phase}"] = tau(rank_aggregate(tb, combo), acc_b)
            rec[f"best single {phase}"] = tau(rank_aggregate(tb, [single]), acc_b)
            rec[f"combined {phase} features"] = " + ".join(f"{f.key}:{f.direction[:3]}" for f in combo)
            rec[f"best single {phase} feature"] = f"{single.key}:{single.direction[:3]}"
            if phase == "50" and EARLY_LOSS in candidate_features(ta, kind):
                combo = select_structured(ta, chosen["init"])
                rec["combined 50 (early loss + init set)"] = tau(rank_aggregate(tb, combo), acc_b)
                rec["combined 50 (early loss + init set) weight"] = combo[0].weight
        for label, score in baselines(b).items():
            rec[label] = tau(score, acc_b)
        rows.append(rec)
    return pd.DataFrame(rows)


def report(df: pd.DataFrame, splits: int, seed: int, choose: bool, directions: bool,
           first: int | None = None) -> str:
    if df.attrs.get("nb201"):
        lines = [f"table: {len(df)} NAS-Bench-201 cells; target {df.attrs['target']} (200-epoch test accuracy); "
                 f"inputs of the data metrics: {', '.join(data_kinds(df)) or 'none'}"]
    else:
        lines = [f"table: {len(df)} configs with a finished training; "
                 f"{int((df['acc'] > TRAINS).sum())} train (mean best accuracy > {TRAINS})"]
    if "eval_status" in df.columns:
        lines.append("scoring: " + ", ".join(f"{k} {v}" for k, v in df["eval_status"].value_counts().items()))
    for label, (t, n) in seed_ceiling(df).items():
        lines.append(f"seed-to-seed tau ({label}): {t:+.3f} (n {n})")
    if directions:
        lines.append("\nmeasured direction per key (whole table; tau oriented, p two-sided):")
        init_keys = set(candidate_features(df, "init"))
        for phase in phases(df):
            table, kind = phase_table(df, phase)
            for key in candidate_features(table, kind):
                if phase != "init" and key in init_keys:
                    continue
                d, t = measured_direction(table, key)
                lines.append(f"  {phase:5s} {key:32s} {d:8s} tau {t:+.3f}")
    res = held_out(df, splits, seed, first)
    if first is not None:
        n_a = int((pd.to_numeric(df["index"]) < first).sum())
        lines.append(f"\nheld-out Kendall tau vs mean accuracy (chosen on the {n_a} configs with index < {first}, "
                     f"reported on the {len(df) - n_a} later ones):")
    else:
        lines.append(f"\nheld-out Kendall tau vs mean accuracy ({splits} random halves, chosen on one half, "
                     f"reported on the other; mean +- sd):")
    num = [c for c in res.columns if c != "split" and not c.endswith(" weight")
           and pd.api.types.is_numeric_dtype(res[c])]
    for c in sorted(num, key=lambda c: -res[c].mean()):
        lines.append(f"  {c:75s} {res[c].mean():+.3f} +- {res[c].std():.3f}")
    lines.append("  (the shipped rows are judged on rows they were chosen on when this table is the resnet lab: "
                 "in-sample, not held-out; the 'combined' rows are the held-out figures of the procedure)")
    for c in [c for c in res.columns if c.endswith(" weight")]:
        lines.append(f"  {c} chosen: " + ", ".join(f"{w:g} ({k}x)" for w, k in res[c].value_counts().items()))
    for phase in phases(df):
        common = res[f"combined {phase} features"].value_counts().head(3)
        lines.append(f"  most chosen {phase} sets: " + "; ".join(f"{k} ({v}x)" for k, v in common.items()))
    if choose:
        lines.append("\nchosen on the whole table (what objectives.combine ships):")
        for name, phase in (("INIT", "init"), ("EARLY", str(SEARCH_EARLY_STEPS))):
            if phase not in phases(df):
                continue
            table, kind = phase_table(df, phase)
            combo, single = select(table, candidate_features(table, kind))
            if name == "INIT":
                init = combo
            options = [("greedy", combo)]
            if name == "EARLY" and EARLY_LOSS in candidate_features(table, kind):
                options.append(("early loss + init set", select_structured(table, init)))
            for how, feats_ in options:
                feats = ", ".join(f'Feature("{f.key}", "{f.direction}"' + (f", {f.weight:g})" if f.weight != 1 else ")")
                                  for f in feats_)
                lines.append(f"  {name}_FEATURES = ({feats},)   # {how}; in-sample tau "
                             f"{tau(rank_aggregate(table, feats_), df['acc'].to_numpy()):+.3f}")
    return "\n".join(lines)


def other_lab_direction(other: pd.DataFrame, metric: str) -> str | None:
    """A metric's measured direction at init on a second lab (an NB201 lab: the data-free column, else the
    mnist5k-input column, else any input's), or None when that lab lacks it."""
    candidates = [metric, f"{metric}[mnist5k]", *[f"{metric}[{d}]" for d in data_kinds(other)]]
    for key in candidates:
        if key in other.columns and np.isfinite(pd.to_numeric(other[key], errors="coerce")).any():
            return measured_direction(other, key)[0]
    return None


def evidence(df: pd.DataFrame, lab: str, other: pd.DataFrame | None = None,
             ) -> dict[str, dict[str, tuple[str, float, int, str, bool | None]]]:
    """Every registered metric's measured direction at init (``m``) and after the search's default early
    steps (``m@early``; the table's ``m@50`` columns, :data:`SEARCH_EARLY_STEPS`) on the whole table:
    (direction, oriented tau, n, lab, stable). ``stable`` (init only): whether ``other`` (a second lab)
    measures the same direction at init; None without a second lab or where it lacks the metric."""
    out: dict[str, dict[str, tuple[str, float, int, str, bool | None]]] = {}
    view = steps_view(df, str(SEARCH_EARLY_STEPS))
    for m in registry.names():
        for phase, key, table in (("init", m, df), ("early", f"{m}@early", view)):
            if key not in table.columns or not np.isfinite(pd.to_numeric(table[key], errors="coerce")).any():
                continue
            d, t = measured_direction(table, key)
            stable = None
            if other is not None and phase == "init":
                d2 = other_lab_direction(other, m)
                stable = None if d2 is None else d2 == d
            out.setdefault(m, {})[phase] = (d, round(t, 3), len(df), lab, stable)
    return out


def write_evidence(path: str | Path, measured: dict, command: str) -> None:
    text = Path(path).read_text()
    head = text[: text.index("MEASURED:")]
    lines = [f"# {command}", "MEASURED: dict[str, dict[str, tuple[str, float, int, str, bool | None]]] = {"]
    for m in sorted(measured):
        lines.append(f"    {m!r}: {{")
        for phase, e in measured[m].items():
            lines.append(f"        {phase!r}: {e!r},")
        lines.append("    },")
    lines.append("}")
    Path(path).write_text(head + "\n".join(lines) + "\n")


def capped_report(df: pd.DataFrame, max_cost: float, splits: int, seed: int) -> str:
    """Held-out tau of the init selection capped at ``max_cost`` steps, and its choice on the whole table."""
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(splits):
        perm = rng.permutation(len(df))
        a, b = df.iloc[perm[: len(df) // 2]].reset_index(drop=True), df.iloc[perm[len(df) // 2:]].reset_index(drop=True)
        (ta, kind), (tb, _) = phase_table(a, "init"), phase_table(b, "init")
        combo, _ = select(ta, candidate_features(ta, kind), max_cost=max_cost)
        taus.append(tau(rank_aggregate(tb, combo), b["acc"].to_numpy()))
    t, kind = phase_table(df, "init")
    combo, _ = select(t, candidate_features(t, kind), max_cost=max_cost)
    return (f"init set capped at {max_cost:g} training steps: held-out tau {np.mean(taus):.3f} +- {np.std(taus):.3f} "
            f"({splits} halves); chosen on the whole table: "
            + " + ".join(f"{f.key}:{f.direction[:3]}" for f in combo) + f" ({cost_steps([f.key for f in combo]):.2f} steps)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", required=True, help="ground-truth table of proxy_vs_training.py (CSV, .csv.gz)")
    p.add_argument("--target", choices=NB201_TARGETS, default="C10",
                   help="NB201 lab tables: the accuracy to rank (default: %(default)s)")
    p.add_argument("--splits", type=int, default=20, help="random halves (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits (default: %(default)s)")
    p.add_argument("--first", type=int, default=None, metavar="N",
                   help="instead of random halves: choose on the configs with index < N, report on the later "
                        "ones (e.g. the configs added after the procedure was designed)")
    p.add_argument("--choose", action="store_true", help="also print the features chosen on the whole table")
    p.add_argument("--directions", action="store_true", help="also print every key's measured direction")
    p.add_argument("--write-evidence", metavar="PATH", default=None,
                   help="write every metric's measured direction per phase (whole table) into PATH "
                        "(objectives/evidence.py)")
    p.add_argument("--other-lab", metavar="TABLE", default=None,
                   help="with --write-evidence: a second lab table (an NB201 lab) whose directions at init mark "
                        "each metric's sign stable or unstable")
    p.add_argument("--max-cost", type=float, default=None, metavar="STEPS",
                   help="also choose an init set whose metrics cost at most STEPS training steps (COST_STEPS; a "
                        "budgeted search's rung 0) and report its held-out tau")
    p.add_argument("--lab", default=None, help="the lab's name in the evidence (default: the table's file name)")
    args = p.parse_args(argv)
    if args.splits < 1:
        p.error("--splits must be >= 1")
    if not Path(args.table).is_file():
        p.error(f"no table at {args.table}")
    df = load(args.table, args.target)
    if len(df) < 8:
        p.error(f"{args.table} has {len(df)} finished configs: at least 8 are needed for halves of 4")
    print(report(df, args.splits, args.seed, args.choose, args.directions, args.first))
    if args.max_cost is not None and not df.attrs.get("nb201"):
        print("\n" + capped_report(df, args.max_cost, args.splits, args.seed))
    if args.write_evidence:
        lab = args.lab or Path(args.table).name.split(".")[0]
        other = load(args.other_lab, args.target) if args.other_lab else None
        write_evidence(args.write_evidence, evidence(df, lab, other),
                       "python benchmarks/proxy_lab.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        print(f"\nmeasured directions written to {args.write_evidence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
