"""A population table's report: outcome counts, each proxy key's correlation with accuracy, the noise ceiling.

Over the first N rows whose training finished: for each key, Kendall's tau-b and Spearman's rho with
two-sided p-values and n from ``nas.report.stats.correlate`` (pairs with both values finite; *undefined*
when n < 3 or a column is constant — never 0). Every key is **oriented** by its better direction
(:func:`nas.lab.keys.direction`): tau and rho are multiplied by -1 for minimized keys, so a positive value
always means "the nets the key prefers are the accurate ones". ``ns``: Kendall p > 0.05. Rows are sorted
by oriented tau.

**Combined multi-metric rank** (:data:`~nas.lab.keys.COMBINED`, minimized): the mean, over the objectives
a default search optimizes (``nas.study.DEFAULT_OBJECTIVES``), of each config's rank by that objective
(1 = best in its direction, ties share the average rank), among the configs where all of them are finite.

**Noise ceiling**: Kendall's tau between ``val_best_acc`` and ``rep_best_acc`` over the repeated configs:
how well one training run ranks the configs for another; no proxy can be expected to beat it.
"""

from __future__ import annotations

import collections
import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from nas.report import stats as report_stats
from nas.report.stats import ALPHA, is_blank, is_true, oriented_correlate, parse_number
from nas.study import DEFAULT_OBJECTIVES, Objective, parse_objectives

from .build import finished
from .keys import ACC, COMBINED, REP_ACC, direction, kind_of, proxy_keys

__all__ = ["default_objectives", "mean_rank", "correlation_rows", "noise_ceiling", "format_correlations",
           "counts_text", "report"]


def default_objectives() -> list[Objective]:
    return parse_objectives(DEFAULT_OBJECTIVES)


def mean_rank(df: pd.DataFrame, objs: Sequence[Objective] | None = None) -> np.ndarray:
    """The combined multi-metric rank: mean over ``objs`` (default: the default search's objectives) of each
    row's rank in the objective's better direction (1 = best, average ties), over the rows where every
    objective is finite; NaN for the others."""
    objs = list(objs or default_objectives())
    if len(df) == 0 or any(o.key not in df.columns for o in objs):
        return np.full(len(df), np.nan)
    vals = np.column_stack([df[o.key].map(parse_number).to_numpy(dtype=float) for o in objs])
    return report_stats.mean_rank(vals, [o.direction for o in objs])


def correlation_rows(df: pd.DataFrame, objs: Sequence[Objective] | None = None) -> list[dict[str, Any]]:
    """One row per proxy key (and the combined rank): oriented tau/rho vs ``val_best_acc``, p-values, n."""
    df = df.copy()
    df[COMBINED] = mean_rank(df, objs)
    acc = df[ACC].map(parse_number).tolist() if ACC in df.columns else [math.nan] * len(df)
    rows = []
    for key in proxy_keys(df.columns) + [COMBINED]:
        d = direction(key)
        c = oriented_correlate(df[key].map(parse_number).tolist(), acc, d)
        rows.append({
            "key": key, "kind": kind_of(key), "direction": d, "n": c["n"],
            "tau": c["kendall_tau"], "tau_p": c["kendall_p"], "rho": c["spearman_rho"], "rho_p": c["spearman_p"],
            "ns": None if c["kendall_p"] is None else bool(c["kendall_p"] > ALPHA),
            "note": c["note"],
        })
    rows.sort(key=lambda r: (r["tau"] is None, -(r["tau"] if r["tau"] is not None else 0.0), r["key"]))
    return rows


def noise_ceiling(df: pd.DataFrame) -> dict[str, Any]:
    """Seed-to-seed agreement of best accuracy over the repeated configs (``nas.report.stats.noise_ceiling``)."""
    if REP_ACC not in df.columns or ACC not in df.columns:
        return report_stats.noise_ceiling([], [])
    return report_stats.noise_ceiling(df[ACC].map(parse_number).to_numpy(float),
                                      df[REP_ACC].map(parse_number).to_numpy(float))


def _f(v: Any, fmt: str = "+.3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    text = format(v, fmt)
    return text.replace("-0.000", "+0.000")


def format_correlations(rows: Sequence[dict[str, Any]]) -> str:
    header = f"{'key':26s} {'kind':8s} {'dir':3s} {'n':>3s} {'tau':>7s} {'p(tau)':>8s} {'rho':>7s} {'p(rho)':>8s}"
    lines = [header, "-" * len(header)]
    for r in rows:
        if r["tau"] is None:
            lines.append(f"{r['key']:26s} {r['kind']:8s} {r['direction'][:3]:3s} {r['n']:3d} {r['note']}")
            continue
        lines.append(
            f"{r['key']:26s} {r['kind']:8s} {r['direction'][:3]:3s} {r['n']:3d} {_f(r['tau']):>7s} "
            f"{_f(r['tau_p'], '.2g'):>8s} {_f(r['rho']):>7s} {_f(r['rho_p'], '.2g'):>8s}"
            + ("  ns" if r["ns"] else ""))
    return "\n".join(lines)


def _reasons(values: Sequence[Any], top: int = 5) -> str:
    tally = collections.Counter(" ".join(str(v).split())[:90] for v in values if not is_blank(v))
    return "; ".join(f"{n}x {r}" for r, n in tally.most_common(top))


def counts_text(df: pd.DataFrame, n_sampled: int, n_repeat: int) -> str:
    """Outcome counts of the first ``n_sampled`` configs, with the most common failure reasons."""
    lines = []
    done = finished(df, n_sampled)
    lines.append(f"configs: {n_sampled} sampled, {len(done)} finished")
    if done.empty:
        return "\n".join(lines)
    status = collections.Counter(done["eval_status"].fillna("?"))
    lines.append("scoring: " + ", ".join(f"{status.get(s, 0)} {s}" for s in ("ok", "partial", "failed")))
    if status.get("failed"):
        lines.append(f"  failed configs: {_reasons(done['eval_error'])}")
    if status.get("partial"):
        per_metric: collections.Counter = collections.Counter()
        for text in done["metric_errors"]:
            if not is_blank(text):
                per_metric.update(json.loads(text).keys())
        lines.append("  failed metrics (configs): " + ", ".join(f"{m} {k}" for m, k in per_metric.most_common()))
    long_err = done["long_error"] if "long_error" in done else pd.Series(dtype=object)
    if long_err.map(lambda v: not is_blank(v)).any():
        lines.append(f"long run failed: {int(long_err.map(lambda v: not is_blank(v)).sum())} ({_reasons(long_err)})")
    acc = done[ACC].map(parse_number) if ACC in done else pd.Series([math.nan] * len(done))
    trained = int(np.isfinite(acc.to_numpy(float)).sum())
    diverged = int(done["val_diverged"].map(is_true).sum()) if "val_diverged" in done else 0
    converged = int(done["val_converged"].map(is_true).sum()) if "val_converged" in done else 0
    lines.append(f"training: {trained} trained ({converged} converged, {trained - converged} not converged, "
                 f"{diverged} diverged), {len(done) - trained} errors")
    if len(done) - trained and "train_error" in done:
        lines.append(f"  training errors: {_reasons(done['train_error'])}")
    if trained:
        a = acc.to_numpy(float)
        a = a[np.isfinite(a)]
        lines.append(f"best test accuracy: min {a.min():.3f}, median {np.median(a):.3f}, max {a.max():.3f}")
    reps = df[(df["index"].astype(int) < n_repeat)] if "rep_done" in df else df.iloc[0:0]
    reps = reps[reps["rep_done"].map(is_true)] if not reps.empty else reps
    if n_repeat:
        errs = int(reps["rep_error"].map(lambda v: not is_blank(v)).sum()) if not reps.empty else 0
        lines.append(f"repeats: {len(reps)} of {n_repeat} trained a second time ({errs} errors)")
    times = []
    first = df[df["index"].astype(int) < n_sampled]
    for col, name in (("time_eval", "scoring"), ("time_long", "long run"), ("time_train", "training"),
                      ("time_repeat", "repeat training")):
        if col in first:
            t = first[col].map(parse_number).to_numpy(float)
            t = t[np.isfinite(t)]
            if len(t):
                times.append(f"{name} {t.mean():.1f} s (max {t.max():.1f})")
    if times:
        lines.append("mean time per config: " + ", ".join(times))
    return "\n".join(lines)


def report(df: pd.DataFrame, n: int, n_repeat: int, epochs: int | None = None) -> str:
    """The printed report: counts, the oriented correlation table, the noise ceiling."""
    done = finished(df, n)
    parts = [counts_text(df, n, n_repeat), ""]
    objs = default_objectives()
    parts.append(
        f"Oriented Kendall tau / Spearman rho vs best test accuracy ({ACC}"
        + (f", {epochs} epoch(s)" if epochs else "") + f") over the {len(done)} finished configs. "
        "+ = the nets the key prefers are the accurate ones; ns: Kendall p > 0.05; n: configs with both "
        "values finite; undefined: n < 3 or a constant column.\n"
        f"{COMBINED}: mean rank of the default objectives ({', '.join(str(o) for o in objs)}).")
    parts.append(format_correlations(correlation_rows(done, objs)))
    c = noise_ceiling(finished(df, n_repeat))
    parts.append("")
    if c["kendall_tau"] is None:
        parts.append(f"noise ceiling (seed-to-seed tau of best accuracy): {c['note'] or 'no repeats'} (n={c['n']})")
    else:
        ns = " ns" if c["kendall_p"] > ALPHA else ""
        parts.append(
            f"noise ceiling (seed-to-seed Kendall tau of best accuracy, n={c['n']}): {_f(c['kendall_tau'])}{ns} "
            f"(p={c['kendall_p']:.2g}); Spearman rho {_f(c['spearman_rho'])}; mean |acc difference| "
            f"{c['mean_abs_diff']:.3f}")
    return "\n".join(parts)
