"""The report's figures (matplotlib, Agg): Pareto front, metric-vs-accuracy scatters, convergence
boundaries, learning curves. Each scatter's title gives its Kendall tau / Spearman rho (:func:`correlate`).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Sequence

import optuna

from ..search.keys import EARLY_SUFFIX
from .gather import ReportData
from .stats import ACCURACY, ALPHA, CONVERGED, correlate, finite_or_none, metric_keys

__all__ = ["safe_name", "write_plots"]


def safe_name(key: str) -> str:
    """A key as part of a file name: ``kappa_w@early`` -> ``kappa_w_early``, other unsafe characters -> ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key.replace(EARLY_SUFFIX, "_early"))


def _log_axis(values: Sequence[float]) -> bool:
    vals = [v for v in values if v is not None]
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 100


def _corr_title(key: str, c: dict[str, Any]) -> str:
    if c["kendall_tau"] is None:
        return f"{key}: {c['note']} (n={c['n']})"
    ns = " ns" if c["kendall_p"] > ALPHA else ""
    return f"{key}: τ={c['kendall_tau']:.2f}{ns} (p={c['kendall_p']:.2g}), ρ={c['spearman_rho']:.2f}, n={c['n']}"


def _outcome_style(t: optuna.trial.FrozenTrial) -> tuple[str, str, str]:
    """(label, colour, marker) by training outcome."""
    if t.user_attrs.get("val_diverged"):
        return "diverged", "tab:red", "x"
    if t.user_attrs.get(CONVERGED):
        return "converged", "tab:green", "o"
    return "not converged", "tab:orange", "s"


def _scatter_vs_acc(ax, trials, key: str, line: Any = None) -> dict[str, Any]:
    xs = [finite_or_none(t.user_attrs.get(key)) for t in trials]
    ys = [finite_or_none(t.user_attrs.get(ACCURACY)) for t in trials]
    groups: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for t, x, y in zip(trials, xs, ys):
        if x is not None and y is not None:
            groups.setdefault(_outcome_style(t), []).append((x, y))
    for (label, colour, marker), pts in groups.items():
        ax.scatter([a for a, _ in pts], [b for _, b in pts], c=colour, marker=marker, s=36, alpha=0.85, label=label)
    if _log_axis(xs):
        ax.set_xscale("log")
    if line is not None:
        ax.axvline(line.bound, color="black", ls="--", lw=1, label=f"constraint {line}")
        lo, hi = ax.get_xlim()
        if line.op == "<=":
            ax.axvspan(line.bound, max(hi, line.bound), color="grey", alpha=0.12, label="infeasible")
        else:
            ax.axvspan(min(lo, line.bound), line.bound, color="grey", alpha=0.12, label="infeasible")
        ax.set_xlim(lo, hi)
    ax.set_xlabel(key)
    ax.set_ylabel("validated accuracy (best)")
    c = correlate(xs, ys)
    ax.set_title(_corr_title(key, c), fontsize=8)
    return c


def write_plots(data: ReportData, plots_dir: Path) -> list[Path]:
    """Writes the report's PNGs (matplotlib, Agg) into ``plots_dir``, replacing the old ones.

    ``pareto.png`` (the optimized objectives, pairwise for more than two, the front highlighted,
    validated trials coloured by accuracy), ``scatter_<key>.png`` for each optimized objective against
    accuracy, ``convergence_<key>.png`` for each constrained key (its value against accuracy, coloured
    converged / not / diverged, with the constraint line), ``scatter_all.png`` (every metric against
    accuracy) and ``curves.png`` (per-epoch test accuracy and train loss).

    Returns:
        The paths written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    for old in plots_dir.glob("*.png"):
        old.unlink()
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = plots_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    # Pareto front of the optimized objectives
    complete = data.complete
    names = data.objectives or [f"objective {i}" for i in range(len(data.study.directions))]
    if complete and complete[0].values:
        acc = {t.number: finite_or_none(t.user_attrs.get(ACCURACY)) for t in data.validated}
        accs = [a for a in acc.values() if a is not None]
        vmin, vmax = (min(accs), max(accs)) if accs else (0.0, 1.0)
        nobj = len(complete[0].values)
        pairs = [(i, j) for i in range(nobj) for j in range(i + 1, nobj)] or [(None, 0)]
        cols = min(3, len(pairs))
        rows = math.ceil(len(pairs) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols, 4.2 * rows + 0.6), squeeze=False,
                                 layout="constrained")
        mappable = None
        for ax, (i, j) in zip(axes.flat, pairs):
            def coord(t, idx):
                return t.number if idx is None else t.values[idx]

            feas = [t for t in complete if t.user_attrs.get("feasible", True)]
            infeas = [t for t in complete if not t.user_attrs.get("feasible", True)]
            if feas:
                ax.scatter([coord(t, i) for t in feas], [coord(t, j) for t in feas], c="lightgrey", s=14,
                           label="feasible")
            if infeas:
                ax.scatter([coord(t, i) for t in infeas], [coord(t, j) for t in infeas], c="lightgrey", s=14,
                           marker="x", label="infeasible")
            val = [t for t in complete if acc.get(t.number) is not None]
            if val:
                mappable = ax.scatter([coord(t, i) for t in val], [coord(t, j) for t in val],
                                      c=[acc[t.number] for t in val], cmap="viridis", vmin=vmin, vmax=vmax, s=30,
                                      label="validated (colour: accuracy)")
            fr = [t for t in complete if t.number in data.front]
            ax.scatter([coord(t, i) for t in fr], [coord(t, j) for t in fr], facecolors="none", edgecolors="red",
                       s=90, linewidths=1.4, label=f"Pareto front ({data.front_note})")
            ax.set_xlabel("trial" if i is None else names[i])
            ax.set_ylabel(names[j])
            for setter, idx in ((ax.set_xscale, i), (ax.set_yscale, j)):
                if idx is not None and _log_axis([t.values[idx] for t in complete]):
                    setter("log")
        for ax in list(axes.flat)[len(pairs):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), fontsize=8,
                   frameon=False)
        if mappable is not None:
            fig.colorbar(mappable, ax=list(axes.flat), shrink=0.8, label="validated accuracy")
        none = "" if mappable is not None else " (none validated)"
        fig.suptitle(f"Objectives of {len(complete)} complete trials{none}", fontsize=10)
        fig.savefig(plots_dir / "pareto.png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(plots_dir / "pareto.png")

    used = data.validated
    # each optimized objective against accuracy
    for key in data.objectives:
        fig, ax = plt.subplots(figsize=(6.6, 4.0))
        _scatter_vs_acc(ax, used, key)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, f"scatter_{safe_name(key)}.png")
    # convergence boundary of each constrained key
    for con in data.constraints:
        fig, ax = plt.subplots(figsize=(7.0, 4.0))
        _scatter_vs_acc(ax, used, con.key, line=con)
        ax.set_title(f"convergence boundary {con}\n{_boundary_summary(used, con)}", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, f"convergence_{safe_name(con.key)}.png")
    # every metric against accuracy
    keys = [k for k in metric_keys(used) if sum(finite_or_none(t.user_attrs.get(k)) is not None for t in used) >= 1]
    if keys and used:
        cols = 5
        rows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            _scatter_vs_acc(ax, used, key)
            ax.xaxis.label.set_size(7)
            ax.yaxis.label.set_visible(False)
            ax.tick_params(labelsize=6)
            ax.title.set_size(6.5)
            if ax.get_xscale() == "linear":
                ax.locator_params(axis="x", nbins=4)
            ax.locator_params(axis="y", nbins=4)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        # a fixed layout: tight_layout over dozens of panels costs seconds
        fig.subplots_adjust(left=0.04, right=0.99, bottom=0.5 / rows / 2.6 + 0.01, top=1 - 0.35 / rows / 2.6,
                            wspace=0.25, hspace=0.75)
        fig.savefig(plots_dir / "scatter_all.png", dpi=72)
        plt.close(fig)
        written.append(plots_dir / "scatter_all.png")
    # learning curves
    if used:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
        for t in used:
            _, colour, _ = _outcome_style(t)
            accs = t.user_attrs.get("val_acc_curve") or []
            losses = [v for v in (t.user_attrs.get("val_loss_curve") or [])]
            a1.plot(range(1, len(accs) + 1), accs, color=colour, alpha=0.6, marker=".")
            a2.plot(range(1, len(losses) + 1), losses, color=colour, alpha=0.6, marker=".")
        thr = finite_or_none(used[0].user_attrs.get("val_converged_threshold"))
        if thr is not None:
            a2.axhline(thr, color="black", ls="--", lw=1, label="convergence threshold 0.5·ln(C)")
            a2.legend(fontsize=7)
        if all(v > 0 for t in used for v in (t.user_attrs.get("val_loss_curve") or []) if v is not None):
            a2.set_yscale("log")  # a diverging net's loss reaches 1e20 and more
        for ax in (a1, a2):
            ax.xaxis.get_major_locator().set_params(integer=True)
        a1.set_xlabel("epoch")
        a1.set_ylabel("test accuracy")
        a2.set_xlabel("epoch")
        a2.set_ylabel("train loss (epoch mean)")
        a1.set_title("green: converged, orange: not, red: diverged", fontsize=8)
        save(fig, "curves.png")
    return written


def _boundary_summary(trials, con) -> str:
    def frac(group):
        conv = sum(1 for t in group if t.user_attrs.get(CONVERGED))
        return f"{conv}/{len(group)}"

    vals = [(t, finite_or_none(t.user_attrs.get(con.key))) for t in trials]
    inside = [t for t, v in vals if v is not None and (v <= con.bound if con.op == "<=" else v >= con.bound)]
    outside = [t for t, v in vals if v is not None and t not in inside]
    return f"converged: {frac(inside)} satisfying, {frac(outside)} violating"
