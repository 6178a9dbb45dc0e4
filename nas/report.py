"""The validation report: how well each stored metric predicted full-training results.

``python -m nas report --study NAME`` writes, under ``runs/NAME/``:

* ``correlations.csv``: one row per (metric key, target, subset) with Kendall's tau-b and Spearman's
  rho (``scipy.stats.kendalltau`` / ``spearmanr``: value, two-sided p-value, n) of every numeric
  value stored on the trials — each registered metric at initialization (``<m>``) and after the early
  steps (``<m>@early``), and the derived values ``loss_init``, ``loss_early``, ``loss_drop``,
  ``train_loss_first``, ``train_loss_last``, ``train_kappa_w``, ``params``, ``flops`` — against the
  validated accuracy (``val_best_acc``) and against the convergence flag (``val_converged`` as 0/1;
  see :mod:`nas.validate` for the rule); plus the top-k hit rate against accuracy;
* ``plots/*.png`` (matplotlib, Agg): ``pareto.png`` (the optimized objectives, pairwise for more than
  two, the front highlighted, validated trials coloured by accuracy), ``scatter_<key>.png`` for each
  optimized objective against accuracy, ``convergence_<key>.png`` for each constrained key (its value
  against accuracy, coloured converged / not / diverged, with the constraint line), ``scatter_all.png``
  (every metric against accuracy) and ``curves.png`` (per-epoch test accuracy and train loss);
* ``report.html``: everything above in one self-contained file (the PNGs embedded as base64 data),
  viewable offline.

Rules:

* n: the validated trials with a finite value of both columns. A correlation is **undefined** (empty
  cells, a note saying why) when n < 3, or when either column is constant over those trials — never 0.
  Correlations whose Kendall p > 0.05 are marked ``ns`` (Kendall's p is exact for small n without
  ties; Spearman's t-based p, kept in the CSV, is unreliable below n ≈ 10); with small n most are.
* top-k hit rate: ``k = max(1, n // 4)`` (or ``--k``); the metric's top k are the k best trials by the
  metric in its better direction (the registry's direction; ``loss_*``/``train_loss_*``/
  ``train_kappa_w`` lower is better, ``loss_drop`` higher is better), the true top k are the k most
  accurate (ties broken by trial number); the rate is hits / k, to compare with k / n expected by
  chance.
* Subsets: ``all`` validated trials (front and random together), and ``random`` (the randomly chosen
  ones only, an unbiased sample of the study) when at least 3 of them and other validated trials exist.
* Validations made with another number of epochs than the report's are left out and counted. Failed
  trials, trials never validated, failed validations and diverged trainings are counted (diverged
  trainings stay in the correlations with the accuracy their diverged weights reach).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import html
import math
import re
from pathlib import Path
from typing import Any, Sequence

import optuna

from objectives import registry

from .evaluate import EARLY_SUFFIX
from .study import StudyError, metric_of, parse_constraint, pareto_front
from .validate import study_settings, validation_results, with_validation

__all__ = [
    "ReportError", "ReportResult", "DERIVED_DIRECTIONS", "ACCURACY", "CONVERGED", "correlate", "topk_hits",
    "metric_keys", "key_direction", "correlation_table", "write_report",
]

ACCURACY = "val_best_acc"
CONVERGED = "val_converged"
#: Derived values correlated besides the registered metrics, with their better direction.
DERIVED_DIRECTIONS = {
    "loss_init": "minimize", "loss_early": "minimize", "loss_drop": "maximize", "train_loss_first": "minimize",
    "train_loss_last": "minimize", "train_kappa_w": "minimize",
}
_DERIVED_ORDER = ("loss_init", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w",
                  "params", "flops")
ALPHA = 0.05
MIN_N = 3


class ReportError(ValueError):
    """Bad report options; one line."""


@dataclasses.dataclass
class ReportResult:
    """What :func:`write_report` wrote and what it says."""

    html: Path
    csv: Path
    plots_dir: Path
    plots: list[Path]
    table: Any  # pandas.DataFrame of correlations.csv
    counts: dict[str, Any]
    text: str


# ------------------------------------------------------------------------------------ numbers
def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def correlate(x: Sequence[Any], y: Sequence[Any]) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho of the pairs where both values are finite numbers.

    Returns:
        ``{"n", "kendall_tau", "kendall_p", "spearman_rho", "spearman_p", "note"}``; the four numbers are
        None (and ``note`` says why) when n < 3 or either column is constant over those pairs.
    """
    from scipy import stats

    pairs = [(a, b) for a, b in ((_num(u), _num(v)) for u, v in zip(x, y)) if a is not None and b is not None]
    out: dict[str, Any] = {"n": len(pairs), "kendall_tau": None, "kendall_p": None, "spearman_rho": None,
                           "spearman_p": None, "note": ""}
    if len(pairs) < MIN_N:
        out["note"] = f"undefined: n < {MIN_N}"
        return out
    xs, ys = [a for a, _ in pairs], [b for _, b in pairs]
    if min(xs) == max(xs):
        out["note"] = "undefined: metric constant"
        return out
    if min(ys) == max(ys):
        out["note"] = "undefined: target constant"
        return out
    tau = stats.kendalltau(xs, ys)
    rho = stats.spearmanr(xs, ys)
    values = [float(tau.statistic), float(tau.pvalue), float(rho.statistic), float(rho.pvalue)]
    if not all(math.isfinite(v) for v in values):
        out["note"] = "undefined: scipy returned NaN"
        return out
    out.update(kendall_tau=values[0], kendall_p=values[1], spearman_rho=values[2], spearman_p=values[3])
    return out


def topk_hits(
    values: Sequence[Any], accuracy: Sequence[Any], numbers: Sequence[int], direction: str, k: int | None = None
) -> dict[str, Any]:
    """How many of the metric's top k (better direction) are among the k most accurate trials.

    Only trials with both values finite count (n of them); ``k`` defaults to ``max(1, n // 4)``.
    Returns ``{"topk_k", "topk_hits", "topk_rate", "topk_chance"}`` (None when n < 2 or the metric is
    constant).
    """
    rows = [(v, a, t) for v, a, t in ((_num(v), _num(a), t) for v, a, t in zip(values, accuracy, numbers))
            if v is not None and a is not None]
    n = len(rows)
    kk = min(n, k if k is not None else max(1, n // 4))
    none = {"topk_k": kk if n else None, "topk_hits": None, "topk_rate": None, "topk_chance": None}
    if n < 2 or kk < 1 or min(r[0] for r in rows) == max(r[0] for r in rows):
        return none
    sign = 1.0 if direction == "minimize" else -1.0
    by_metric = {t for _, _, t in sorted(rows, key=lambda r: (sign * r[0], r[2]))[:kk]}
    by_acc = {t for _, _, t in sorted(rows, key=lambda r: (-r[1], r[2]))[:kk]}
    hits = len(by_metric & by_acc)
    return {"topk_k": kk, "topk_hits": hits, "topk_rate": hits / kk, "topk_chance": kk / n}


def key_direction(key: str) -> str:
    """Better direction of a key: the registry's for ``<m>`` / ``<m>@early``, else :data:`DERIVED_DIRECTIONS`."""
    m = metric_of(key)
    if m is not None:
        return registry.get(m).direction
    return DERIVED_DIRECTIONS.get(key, "maximize")


def metric_keys(trials: Sequence[optuna.trial.FrozenTrial]) -> list[str]:
    """Every metric key with a numeric value on at least one of ``trials``: each registered metric at init
    then after the early steps (registry order), then the derived values."""
    present = {k for t in trials for k, v in t.user_attrs.items() if _num(v) is not None and not isinstance(v, bool)}
    keys = []
    for m in registry.names():
        keys += [k for k in (m, f"{m}{EARLY_SUFFIX}") if k in present]
    return keys + [k for k in _DERIVED_ORDER if k in present and k not in keys]


def _phase(key: str) -> str:
    if key.endswith(EARLY_SUFFIX):
        return "early"
    return "init" if metric_of(key) else "derived"


def correlation_table(
    trials: Sequence[optuna.trial.FrozenTrial],
    keys: Sequence[str],
    objectives: Sequence[str] = (),
    constraints: Sequence[str] = (),
    k: int | None = None,
    subset: str = "all",
) -> list[dict[str, Any]]:
    """Rows of ``correlations.csv`` for ``trials`` (their ``user_attrs`` hold metrics and ``val_*``)."""
    acc = [t.user_attrs.get(ACCURACY) for t in trials]
    conv = [t.user_attrs.get(CONVERGED) for t in trials]
    numbers = [t.number for t in trials]
    rows = []
    for key in keys:
        x = [t.user_attrs.get(key) for t in trials]
        direction = key_direction(key)
        base = {"metric": key, "phase": _phase(key), "direction": direction, "optimized": key in objectives,
                "constrained": key in constraints, "subset": subset}
        for target, y in ((ACCURACY, acc), (CONVERGED, conv)):
            c = correlate(x, y)
            row = {**base, "target": target, **c}
            # significance by Kendall's p: exact for small n without ties, where Spearman's t-based p
            # is unreliable (n = 3 with rho = 1 gives p = 0)
            row["significant"] = None if c["kendall_p"] is None else bool(c["kendall_p"] <= ALPHA)
            expected = -1.0 if direction == "minimize" else 1.0
            row["agrees_with_direction"] = (None if c["kendall_tau"] is None
                                           else bool(c["kendall_tau"] * expected > 0))
            if target == ACCURACY:
                row.update(topk_hits(x, y, numbers, direction, k))
            else:
                row.update({"topk_k": None, "topk_hits": None, "topk_rate": None, "topk_chance": None})
            rows.append(row)
    return rows


_COLUMNS = ["metric", "phase", "direction", "optimized", "constrained", "subset", "target", "n", "kendall_tau",
            "kendall_p", "spearman_rho", "spearman_p", "significant", "agrees_with_direction", "topk_k",
            "topk_hits", "topk_rate", "topk_chance", "note"]


# ------------------------------------------------------------------------------------ gathering
@dataclasses.dataclass
class _Data:
    study: optuna.Study
    trials: list[optuna.trial.FrozenTrial]  # all, with val_* merged
    complete: list[optuna.trial.FrozenTrial]
    validated: list[optuna.trial.FrozenTrial]  # used: validated with `epochs`
    epochs: int | None
    objectives: list[str]
    constraints: list[Any]  # nas.study.Constraint
    front: set[int]
    front_note: str
    counts: dict[str, Any]
    fail_reasons: list[tuple[str, int]]


def _gather(study: optuna.Study, epochs: int | None) -> _Data:
    results = validation_results(study)
    trials = with_validation(study, results)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    ok = {n: r for n, r in results.items() if "val_error" not in r and r.get("val_epochs") is not None}
    if epochs is None and ok:
        tally = collections.Counter(r["val_epochs"] for r in ok.values())
        epochs = max(tally, key=lambda e: (tally[e], e))
    used = [t for t in complete if t.number in ok and ok[t.number]["val_epochs"] == epochs]
    settings = study.user_attrs
    objectives = [s.split(":")[0] for s in settings.get("objectives") or []] or list(study.metric_names or [])
    constraints = []
    for text in settings.get("constraints") or []:
        try:
            constraints.append(parse_constraint(text))
        except StudyError:
            continue
    front = {t.number for t in study.best_trials} if complete else set()
    note = "feasible trials"
    if complete and not front:
        front = {t.number for t in pareto_front(complete, study.directions)}
        note = "no trial is feasible: unconstrained front"
    states = collections.Counter(t.state.name for t in trials)
    counts: dict[str, Any] = {"trials": len(trials)}
    for s in ("COMPLETE", "FAIL", "RUNNING", "WAITING", "PRUNED"):
        counts[f"state {s}"] = states.get(s, 0)
    counts["complete, never validated"] = sum(1 for t in complete if t.number not in results)
    counts[f"validated with {epochs} epoch(s) (used)"] = len(used)
    counts["validated with other epochs (left out)"] = sum(
        1 for t in complete if t.number in ok and ok[t.number]["val_epochs"] != epochs)
    counts["failed validations (errors)"] = sum(1 for r in results.values() if "val_error" in r)
    counts["used: diverged"] = sum(1 for t in used if t.user_attrs.get("val_diverged"))
    counts["used: converged"] = sum(1 for t in used if t.user_attrs.get(CONVERGED))
    counts["used: not converged"] = len(used) - counts["used: converged"]
    for why in ("pareto", "top", "random"):
        counts[f"used: selected by {why}"] = sum(1 for t in used if t.user_attrs.get("val_selected_by") == why)
    reasons = collections.Counter(
        " ".join(str(t.user_attrs.get("fail_reason", "no reason recorded")).split())[:100]
        for t in trials if t.state == optuna.trial.TrialState.FAIL)
    return _Data(study, trials, complete, used, epochs, objectives, constraints, front, note, counts,
                 reasons.most_common())


# ------------------------------------------------------------------------------------ plots
def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key.replace(EARLY_SUFFIX, "_early"))


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _signed3(v: float) -> str:
    """``+0.123``; never ``-0.000``."""
    text = f"{v:+.3f}"
    return "+0.000" if text == "-0.000" else text


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
    xs = [_num(t.user_attrs.get(key)) for t in trials]
    ys = [_num(t.user_attrs.get(ACCURACY)) for t in trials]
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


def _plots(data: _Data, plots_dir: Path) -> list[Path]:
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
        acc = {t.number: _num(t.user_attrs.get(ACCURACY)) for t in data.validated}
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
        save(fig, f"scatter_{_safe_name(key)}.png")
    # convergence boundary of each constrained key
    for con in data.constraints:
        fig, ax = plt.subplots(figsize=(7.0, 4.0))
        _scatter_vs_acc(ax, used, con.key, line=con)
        ax.set_title(f"convergence boundary {con}\n{_boundary_summary(used, con)}", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        save(fig, f"convergence_{_safe_name(con.key)}.png")
    # every metric against accuracy
    keys = [k for k in metric_keys(used) if sum(_num(t.user_attrs.get(k)) is not None for t in used) >= 1]
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
        thr = _num(used[0].user_attrs.get("val_converged_threshold"))
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

    vals = [(t, _num(t.user_attrs.get(con.key))) for t in trials]
    inside = [t for t, v in vals if v is not None and (v <= con.bound if con.op == "<=" else v >= con.bound)]
    outside = [t for t, v in vals if v is not None and t not in inside]
    return f"converged: {frac(inside)} satisfying, {frac(outside)} violating"


# ------------------------------------------------------------------------------------ text and HTML
def _terminal_table(rows: list[dict[str, Any]], k_note: str) -> str:
    by_key: dict[str, dict[str, dict[str, Any]]] = collections.OrderedDict()
    for r in rows:
        if r["subset"] == "all":
            by_key.setdefault(r["metric"], {})[r["target"]] = r

    def corr(r: dict[str, Any], stat: str) -> str:
        if r[stat] is None:
            return "undefined"
        return _signed3(r[stat]) + (" ns" if r["kendall_p"] > ALPHA else "")

    header = ["metric", "role", "dir", "n", "tau(acc)", "p", "rho(acc)", "tau(conv)", "p", f"top-k {k_note}"]
    lines = []
    for key, d in by_key.items():
        a, c = d[ACCURACY], d[CONVERGED]
        role = "objective" if a["optimized"] else ("constraint" if a["constrained"] else "")
        topk = "undefined" if a["topk_hits"] is None else f"{a['topk_hits']}/{a['topk_k']}"
        lines.append([key, role, "min" if a["direction"] == "minimize" else "max", str(a["n"]),
                      corr(a, "kendall_tau"), _fmt(a["kendall_p"], 2), corr(a, "spearman_rho"),
                      corr(c, "kendall_tau"), _fmt(c["kendall_p"], 2), topk])
    cells = [header] + lines
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
.ns{color:#999} .undef{color:#b36b00;font-style:italic} .opt{font-weight:bold}
img{max-width:100%;border:1px solid #ddd;margin:0.4em 0}
.note{background:#f7f7f2;border-left:4px solid #c9c28f;padding:0.5em 1em;font-size:0.9em}
"""


def _cell(r: dict[str, Any], stat: str, p: str) -> str:
    if r[stat] is None:
        return f'<td class="undef">undefined</td><td class="undef">{html.escape(r["note"].replace("undefined: ", ""))}</td>'
    ns = r["kendall_p"] > ALPHA  # significance judged by Kendall's p (exact for small n without ties)
    cls = ' class="ns"' if ns else ""
    return f"<td{cls}>{_signed3(r[stat])}{' ns' if ns else ''}</td><td{cls}>{r[p]:.2g}</td>"


def _html_table(rows: list[dict[str, Any]], subset: str) -> str:
    pick = collections.OrderedDict()
    for r in rows:
        if r["subset"] == subset:
            pick.setdefault(r["metric"], {})[r["target"]] = r
    out = ['<table><tr><th class="l">metric</th><th>phase</th><th>better</th><th>n</th>'
           "<th>τ vs acc</th><th>p</th><th>ρ vs acc</th><th>p</th><th>τ vs converged</th><th>p</th>"
           "<th>ρ vs converged</th><th>p</th><th>top-k hits</th><th>chance k/n</th></tr>"]
    for key, d in pick.items():
        a, c = d[ACCURACY], d[CONVERGED]
        cls = ' class="l opt"' if a["optimized"] else ' class="l"'
        tag = " (objective)" if a["optimized"] else (" (constraint)" if a["constrained"] else "")
        topk = ('<td class="undef">undefined</td><td>–</td>' if a["topk_hits"] is None else
                f"<td>{a['topk_hits']}/{a['topk_k']}</td><td>{a['topk_chance']:.2f}</td>")
        out.append(
            f"<tr><td{cls}>{html.escape(key + tag)}</td><td>{a['phase']}</td><td>{a['direction'][:3]}</td>"
            f"<td>{a['n']}</td>{_cell(a, 'kendall_tau', 'kendall_p')}{_cell(a, 'spearman_rho', 'spearman_p')}"
            f"{_cell(c, 'kendall_tau', 'kendall_p')}{_cell(c, 'spearman_rho', 'spearman_p')}{topk}</tr>")
    out.append("</table>")
    return "\n".join(out)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{html.escape(path.name)}</figcaption></figure>'


def _html(data: _Data, rows, plots: list[Path], k_note: str) -> str:
    s = data.study
    settings = {k: s.user_attrs.get(k) for k in ("space", "bounds", "dataset", "objectives", "constraints", "seed",
                                                 "early_steps", "probe_size")}
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>gradnas report: {esc(s.study_name)}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Validation report: {esc(s.study_name)}</h1>",
             "<table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">{esc(str(v))}</td></tr>'
                                 for k, v in settings.items()) + "</table>",
             "<h2>Trials</h2><table>" + "".join(f'<tr><th class="l">{esc(k)}</th><td>{v}</td></tr>'
                                                for k, v in data.counts.items()) + "</table>"]
    if data.fail_reasons:
        parts.append("<h3>Failed trials by reason</h3><table><tr><th>count</th><th class='l'>reason</th></tr>" +
                     "".join(f"<tr><td>{n}</td><td class='l'>{esc(r)}</td></tr>" for r, n in data.fail_reasons) +
                     "</table>")
    n_used = len(data.validated)
    parts.append(
        "<div class='note'><p><b>How to read this.</b> n = validated trials with a finite value of both columns "
        f"(here at most {n_used}; validation: {data.epochs} epoch(s)). τ = Kendall tau-b, ρ = Spearman rho, "
        "two-sided p-values from scipy.stats; <span class='ns'>grey 'ns'</span>: Kendall's p &gt; 0.05 (not "
        "significant; Kendall's p is exact for small samples, Spearman's is a t approximation that is "
        "unreliable below n ≈ 10 — e.g. 0 for a perfect rank order of 3 trials). "
        "<span class='undef'>undefined</span>: n &lt; 3 or a column constant over the trials (reported as such, "
        "never as 0). Accuracy = best test accuracy over the epochs (val_best_acc). "
        "<b>Converged</b> = not diverged and final-epoch train loss &lt; 0.5·ln(number of classes). "
        f"<b>Top-k</b>: k = {esc(k_note)}; hits = how many of the k best trials by the metric (in its better "
        "direction) are among the k most accurate; 'chance' = k/n, the expected rate of a random ranking. "
        "Diverged trainings stay in the correlations with the accuracy of their diverged weights. "
        "The front and top trials are not a random sample: see the 'random' table, when present, for an "
        "unbiased estimate.</p></div>")
    parts.append("<h2>Correlations with full-training results (all validated trials)</h2>")
    parts.append(_html_table(rows, "all"))
    if any(r["subset"] == "random" for r in rows):
        parts.append("<h2>Randomly chosen trials only</h2>")
        parts.append(_html_table(rows, "random"))
    parts.append("<h2>Figures</h2>")
    for p in plots:
        parts.append(_img(p, p.stem))
    # validated trials
    names = data.objectives
    parts.append("<h2>Validated trials</h2><table><tr><th>trial</th><th>selected by</th>" +
                 "".join(f"<th>{esc(n)}</th>" for n in names) +
                 "<th>best acc</th><th>final acc</th><th>final train loss</th><th>epochs to 90%</th>"
                 "<th>converged</th><th>diverged</th><th class='l'>config</th></tr>")
    for t in sorted(data.validated, key=lambda t: -(_num(t.user_attrs.get(ACCURACY)) or -1)):
        a = t.user_attrs
        cfg = a.get("config") or {}
        brief = ", ".join(f"{k}={_fmt(v)}" for k, v in cfg.items() if k in t.params)
        parts.append(
            f"<tr><td>{t.number}</td><td>{esc(str(a.get('val_selected_by')))}</td>" +
            "".join(f"<td>{_fmt(v)}</td>" for v in (t.values or [])) +
            f"<td>{_fmt(a.get(ACCURACY))}</td><td>{_fmt(a.get('val_final_acc'))}</td>"
            f"<td>{_fmt(a.get('val_final_train_loss'))}</td><td>{_fmt(a.get('val_epochs_to_90'))}</td>"
            f"<td>{_fmt(a.get(CONVERGED))}</td><td>{_fmt(a.get('val_diverged'))}</td>"
            f"<td class='l'>{esc(brief)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ entry point
def write_report(study: optuna.Study, out_dir: str | Path, epochs: int | None = None,
                 k: int | None = None) -> ReportResult:
    """Compute the correlations and write ``report.html``, ``correlations.csv`` and ``plots/*.png``.

    Args:
        study: a study made by ``python -m nas search`` (validated or not).
        out_dir: ``runs/<study>``.
        epochs: use validations made with this many epochs (default: the most common).
        k: k of the top-k hit rate (default ``max(1, n // 4)``).

    Raises:
        ReportError: ``k`` < 1. (:class:`nas.validate.ValidationError` for a study without search settings.)
    """
    import pandas as pd

    if k is not None and k < 1:
        raise ReportError(f"--k must be >= 1, got {k}")
    study_settings(study)  # raises for a study the search did not make
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _gather(study, epochs)
    used = data.validated
    keys = metric_keys(used if used else data.complete)
    con_keys = [c.key for c in data.constraints]
    rows = correlation_table(used, keys, data.objectives, con_keys, k, "all")
    randoms = [t for t in used if t.user_attrs.get("val_selected_by") == "random"]
    if len(randoms) >= MIN_N and len(randoms) < len(used):
        rows += correlation_table(randoms, keys, data.objectives, con_keys, k, "random")
    table = pd.DataFrame(rows, columns=_COLUMNS)
    for col in ("n", "topk_k", "topk_hits"):
        table[col] = table[col].astype("Int64")
    csv = out_dir / "correlations.csv"
    tmp = csv.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(csv)
    k_note = f"{k}" if k is not None else "max(1, n//4)"
    plots = _plots(data, out_dir / "plots")
    page = out_dir / "report.html"
    tmp = page.with_suffix(".html.tmp")
    tmp.write_text(_html(data, rows, plots, k_note), encoding="utf-8")
    tmp.replace(page)
    counts = "\n".join(f"  {name}: {value}" for name, value in data.counts.items())
    text = (f"study {study.study_name!r}: {len(data.trials)} trial(s)\n{counts}\n"
            + ("".join(f"  FAIL x{n}: {r}\n" for r, n in data.fail_reasons))
            + f"\nCorrelation with validated accuracy ({ACCURACY}) and convergence over n validated trials "
              f"(ns: Kendall p > {ALPHA}; undefined: n < {MIN_N} or a constant column):\n"
            + _terminal_table(rows, k_note))
    return ReportResult(html=page, csv=csv, plots_dir=out_dir / "plots", plots=plots, table=table,
                        counts=data.counts, text=text)
