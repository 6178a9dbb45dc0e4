"""Judging rankings on a ground-truth table: held-out selection against fixed baselines (DESIGN §8).

On each of ``splits`` random halves of a table, the directions, the best single feature per phase and the
combined score's features (:func:`nas.lab.selection.select`) are chosen on one half and Kendall tau is
reported on the other half; mean and sd over the splits. Baselines: the loss after 20 / 50 steps, params,
FLOPs, AZ-NAS and MeCo where the table has them, the combined score ``objectives`` ships, and the old
default objectives of the search (mean rank of confusion, diversity and kappa_w at init, all minimized,
with ``rank_input <= 0.15``). :func:`report` is the text ``benchmarks/proxy_lab.py`` prints.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from objectives.combine import Feature, combined_score, rank_aggregate

from .selection import (EARLY_LOSS, candidate_features, cost_steps, measured_direction, select,
                        select_structured, tau)
from .tables import SEARCH_EARLY_STEPS, TRAINS, data_kinds, phase_table, phases, seed_ceiling, steps_view, with_data

__all__ = ["old_defaults", "baselines", "halves", "held_out", "report", "capped_report"]


def old_defaults(df: pd.DataFrame) -> np.ndarray:
    """The old search defaults: mean rank of confusion, diversity, kappa_w at init (all minimized), rows
    with rank_input > 0.15 (infeasible) last."""
    s = rank_aggregate(df, [Feature("confusion", "minimize"), Feature("diversity", "minimize"),
                            Feature("kappa_w", "minimize")])
    infeasible = ~(pd.to_numeric(df["rank_input"], errors="coerce") <= 0.15).to_numpy()
    return np.where(infeasible, s.min() - 1.0, s)


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
        label = ("gradnas combined_score, init (shipped; chosen on the resnet lab)"
                 + (f" on {data} inputs" if data else ""))
        try:
            out[label] = combined_score(with_data(df, data) if data else df, "init").to_numpy()
        except KeyError:
            pass
    if not df.attrs.get("nb201"):
        try:
            label = f"gradnas combined_score, early (shipped; chosen on the resnet lab; {SEARCH_EARLY_STEPS} steps)"
            out[label] = combined_score(steps_view(df, str(SEARCH_EARLY_STEPS)), "early").to_numpy()
        except KeyError:
            pass
    if {"confusion", "diversity", "kappa_w", "rank_input"} <= set(df.columns):
        out["old defaults (confusion, diversity, kappa_w: min; rank_input <= 0.15)"] = old_defaults(df)
    return out


def halves(n: int, splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``splits`` random halves of ``n`` rows, (chosen-on, reported-on) positions, from one seeded generator."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(splits):
        perm = rng.permutation(n)
        out.append((perm[: n // 2], perm[n // 2:]))
    return out


def held_out(df: pd.DataFrame, splits: int, seed: int, first: int | None = None) -> pd.DataFrame:
    """Choose on one part, report on the other: ``splits`` random halves, or with ``first`` one split that
    chooses on the configs with ``index < first`` and reports on the later ones."""
    rows = []
    if first is not None:
        early = (pd.to_numeric(df["index"]) < first).to_numpy()
        parts = [(np.flatnonzero(early), np.flatnonzero(~early))]
    else:
        parts = halves(len(df), splits, seed)
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


def _feature_text(features) -> str:
    return ", ".join(f'Feature("{f.key}", "{f.direction}"' + (f", {f.weight:g})" if f.weight != 1 else ")")
                     for f in features)


def report(df: pd.DataFrame, splits: int, seed: int, choose: bool, directions: bool,
           first: int | None = None) -> str:
    """The lab's report: the table and its seed-to-seed ceiling, measured directions (``directions``), the
    held-out taus, and with ``choose`` the features chosen on the whole table."""
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
                lines.append(f"  {name}_FEATURES = ({_feature_text(feats_)},)   # {how}; in-sample tau "
                             f"{tau(rank_aggregate(table, feats_), df['acc'].to_numpy()):+.3f}")
    return "\n".join(lines)


def capped_report(df: pd.DataFrame, max_cost: float, splits: int, seed: int) -> str:
    """Held-out tau of the init selection capped at ``max_cost`` steps, side by side with the uncapped
    selection on the same halves (the paired difference: mean, sd, share of halves where the capped set is
    at least as good), and the capped choice on the whole table."""
    taus, free = [], []
    for ia, ib in halves(len(df), splits, seed):
        a, b = df.iloc[ia].reset_index(drop=True), df.iloc[ib].reset_index(drop=True)
        (ta, kind), (tb, _) = phase_table(a, "init"), phase_table(b, "init")
        keys = candidate_features(ta, kind)
        acc = b["acc"].to_numpy()
        taus.append(tau(rank_aggregate(tb, select(ta, keys, max_cost=max_cost)[0]), acc))
        free.append(tau(rank_aggregate(tb, select(ta, keys)[0]), acc))
    d = np.asarray(taus) - np.asarray(free)
    t, kind = phase_table(df, "init")
    combo, _ = select(t, candidate_features(t, kind), max_cost=max_cost)
    return (f"init set capped at {max_cost:g} training steps: held-out tau {np.mean(taus):.3f} +- {np.std(taus):.3f} "
            f"({splits} halves); uncapped on the same halves {np.mean(free):.3f} +- {np.std(free):.3f}; "
            f"capped - uncapped {d.mean():+.3f} +- {d.std():.3f}, capped >= uncapped in {np.mean(d >= 0):.0%} of halves; "
            "chosen on the whole table: "
            + " + ".join(f"{f.key}:{f.direction[:3]}" for f in combo)
            + f" ({cost_steps([f.key for f in combo]):.2f} steps)")
