"""The numbers of the report, shared with the benchmarks: rank correlations, orientation, top-k, mean rank.

Conventions (every caller relies on them):

* **Pairs with both values finite.** :func:`correlate` keeps the pairs where both values are finite
  numbers (booleans count as 0/1) and says *undefined* (None, with a note) when fewer than
  :data:`MIN_N` remain or either column is constant over them — never 0. Kendall's tau-b and Spearman's
  rho come from ``scipy.stats`` (two-sided p-values; Kendall's p is exact for small n without ties,
  Spearman's t-based p is unreliable below n ≈ 10, so significance is judged by Kendall's p against
  :data:`ALPHA`).
* **Orientation.** A key's better direction (``"minimize"`` / ``"maximize"``, :func:`key_direction`)
  gives :func:`direction_sign` -1 / +1; an oriented correlation (:func:`oriented_correlate`) is the
  correlation times that sign, so a positive value always means "the items the key prefers are the ones
  with large targets" (accurate nets).
* **Non-finite ranked worst.** Where every item must keep a rank (NAS-Bench-201 tables, search orders),
  :func:`oriented` turns values so that larger is better and every non-finite value into ``-inf``, and
  :func:`rank_corr` ranks those tied at the bottom.
* **Table cells.** :func:`parse_number`, :func:`is_true` and :func:`is_blank` read the cells of a CSV
  written by pandas (``"True"``, ``""``, NaN); :func:`finite_or_none` keeps only finite numbers.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import optuna

from objectives import registry

from ..search.keys import EARLY_SUFFIX
from ..study import metric_of

__all__ = [
    "ACCURACY", "ALPHA", "COLUMNS", "CONVERGED", "DERIVED_DIRECTIONS", "MIN_N", "constant_keys", "correlate", "duplicate_keys",
    "correlation_table", "count_nonfinite", "direction_sign", "finite_or_none", "is_blank", "is_true", "key_direction", "mean_rank",
    "metric_keys", "noise_ceiling", "oriented", "oriented_correlate", "parse_number", "phase", "rank_corr",
    "topk_hits",
]

#: Target columns: the validated best test accuracy and the convergence flag (0/1).
ACCURACY = "val_best_acc"
CONVERGED = "val_converged"
#: Derived values correlated besides the registered metrics, with their better direction.
DERIVED_DIRECTIONS = {
    "loss_init": "minimize", "loss_early": "minimize", "loss_drop": "maximize", "train_loss_first": "minimize",
    "train_loss_last": "minimize", "train_kappa_w": "minimize",
}
_DERIVED_ORDER = ("loss_init", "loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w",
                  "params", "flops")
#: Significance level of Kendall's p.
ALPHA = 0.05
#: Fewest pairs a correlation is computed from.
MIN_N = 3


# ------------------------------------------------------------------------------------ numbers and cells
def finite_or_none(v: Any) -> float | None:
    """``float(v)`` for a finite int/float (a bool as 0/1), else None (None, NaN, ±inf, strings, ...)."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def parse_number(v: Any) -> float:
    """A table cell as a float: ``"true"``/``"false"`` as 1/0, numeric strings parsed, anything else NaN.

    Infinite values stay infinite (``"-inf"`` -> ``-inf``); None and unparsable values give NaN.
    """
    if isinstance(v, str):
        if v.strip().lower() in ("true", "false"):
            return 1.0 if v.strip().lower() == "true" else 0.0
        try:
            v = float(v)
        except ValueError:
            return math.nan
    if v is None:
        return math.nan
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def is_true(v: Any) -> bool:
    """Whether a table cell is true: ``"true"``/``"1"``/``"1.0"`` (any case) or a truthy non-NaN value."""
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "1.0")
    try:
        return bool(v) and not (isinstance(v, float) and math.isnan(v))
    except (TypeError, ValueError):
        return False


def is_blank(v: Any) -> bool:
    """Whether a table cell is empty: None, NaN or a blank string."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def direction_sign(direction: str) -> float:
    """-1.0 for ``"minimize"``, +1.0 otherwise: multiplying by it makes larger mean better."""
    return -1.0 if direction == "minimize" else 1.0


# ------------------------------------------------------------------------------------ correlations
def correlate(x: Sequence[Any], y: Sequence[Any]) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho of the pairs where both values are finite numbers.

    ``scipy.stats.kendalltau`` and ``scipy.stats.spearmanr`` (two-sided p-values) over the pairs kept by
    :func:`finite_or_none`.

    Returns:
        ``{"n", "kendall_tau", "kendall_p", "spearman_rho", "spearman_p", "note"}``; the four numbers are
        None (and ``note`` says why) when n < 3 or either column is constant over those pairs.
    """
    from scipy import stats

    pairs = [(a, b) for a, b in ((finite_or_none(u), finite_or_none(v)) for u, v in zip(x, y))
             if a is not None and b is not None]
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


def oriented_correlate(x: Sequence[Any], y: Sequence[Any], direction: str) -> dict[str, Any]:
    """:func:`correlate` with tau and rho multiplied by :func:`direction_sign` of ``direction``.

    A positive oriented value means that the items ``x`` prefers (small values when ``direction`` is
    ``"minimize"``) have large ``y``. p-values, n and the note are unchanged; ``-0.0`` becomes ``+0.0``.
    """
    c = correlate(x, y)
    sign = direction_sign(direction)
    for key in ("kendall_tau", "spearman_rho"):
        if c[key] is not None:
            c[key] = sign * c[key] + 0.0
    return c


def oriented(values: Sequence[Any], direction: str = "maximize") -> np.ndarray:
    """Values turned so that larger is better; every non-finite value becomes ``-inf`` (worst, tied).

    Args:
        values: Numbers (anything ``numpy.asarray(..., dtype=float)`` accepts; NaN for missing).
        direction: ``"minimize"`` negates the values; anything else keeps them.

    Returns:
        A float array of the same length.
    """
    v = np.asarray(values, dtype=float)
    if direction == "minimize":
        v = -v
    return np.where(np.isfinite(v), v, -np.inf)


def rank_corr(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(Spearman rho, Kendall tau-b) of two oriented arrays, ``-inf`` ranked worst and tied; NaN if undefined.

    Both arrays are replaced by their ranks (``scipy.stats.rankdata``: ``-inf`` lowest, ties share the
    average rank), so every item keeps a rank, then correlated with :func:`correlate`. Undefined (NaN,
    NaN) when fewer than :data:`MIN_N` items or either array is constant.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < MIN_N:
        return math.nan, math.nan
    c = correlate(stats.rankdata(a).tolist(), stats.rankdata(b).tolist())
    if c["kendall_tau"] is None:
        return math.nan, math.nan
    return c["spearman_rho"], c["kendall_tau"]


def count_nonfinite(values: Sequence[float]) -> str:
    """``"0"`` or e.g. ``"3 -inf, 1 nan"``: how many values are ``-inf``, ``+inf`` and NaN."""
    v = np.asarray(values, dtype=float)
    parts = [f"{int(n)} {name}" for name, n in
             (("-inf", np.sum(v == -np.inf)), ("+inf", np.sum(v == np.inf)), ("nan", np.sum(np.isnan(v)))) if n]
    return ", ".join(parts) if parts else "0"


def mean_rank(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Mean over columns of each row's rank in the column's better direction (1 = best, average ties).

    Ranked (``scipy.stats.rankdata``) among the rows where every column is finite; the other rows get NaN.

    Args:
        values: ``n x k`` numbers, one column per criterion.
        directions: ``"minimize"`` / ``"maximize"`` of each column.

    Returns:
        A float array of length n.
    """
    from scipy import stats

    vals = np.asarray(values, dtype=float)
    out = np.full(len(vals), np.nan)
    if len(vals) == 0:
        return out
    ok = np.isfinite(vals).all(axis=1)
    if not ok.any():
        return out
    signed = np.column_stack([vals[ok, j] if d == "minimize" else -vals[ok, j] for j, d in enumerate(directions)])
    ranks = np.column_stack([stats.rankdata(signed[:, j]) for j in range(len(directions))])
    out[ok] = ranks.mean(axis=1)
    return out


def noise_ceiling(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Agreement of two repeated measurements of the same items (e.g. the accuracy of two trainings).

    How well one run ranks the items for another: no proxy of the measurement can be expected to beat it.

    Returns:
        :func:`correlate` ``(a, b)`` plus ``mean_abs_diff``: the mean ``|a_i - b_i|`` over the pairs with
        both values finite (None when there is none).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    c = correlate(a.tolist(), b.tolist())
    both = np.isfinite(a) & np.isfinite(b)
    c["mean_abs_diff"] = float(np.mean(np.abs(a[both] - b[both]))) if both.any() else None
    return c


def topk_hits(
    values: Sequence[Any], accuracy: Sequence[Any], numbers: Sequence[int], direction: str, k: int | None = None
) -> dict[str, Any]:
    """How many of the metric's top k (better direction) are among the k most accurate trials.

    Only trials with both values finite count (n of them); ``k`` defaults to ``max(1, n // 4)``; ties are
    broken by trial number. Returns ``{"topk_k", "topk_hits", "topk_rate", "topk_chance"}`` (None when
    n < 2 or the metric is constant); ``topk_chance = k / n`` is the rate expected of a random ranking.
    """
    rows = [(v, a, t) for v, a, t in
            ((finite_or_none(v), finite_or_none(a), t) for v, a, t in zip(values, accuracy, numbers))
            if v is not None and a is not None]
    n = len(rows)
    kk = min(n, k if k is not None else max(1, n // 4))
    none = {"topk_k": kk if n else None, "topk_hits": None, "topk_rate": None, "topk_chance": None}
    if n < 2 or kk < 1 or min(r[0] for r in rows) == max(r[0] for r in rows):
        return none
    sign = -direction_sign(direction)
    by_metric = {t for _, _, t in sorted(rows, key=lambda r: (sign * r[0], r[2]))[:kk]}
    by_acc = {t for _, _, t in sorted(rows, key=lambda r: (-r[1], r[2]))[:kk]}
    hits = len(by_metric & by_acc)
    return {"topk_k": kk, "topk_hits": hits, "topk_rate": hits / kk, "topk_chance": kk / n}


# ------------------------------------------------------------------------------------ keys and the table
def key_direction(key: str) -> str:
    """Better direction of a key: the registry's for ``<m>`` / ``<m>@early``, else :data:`DERIVED_DIRECTIONS`."""
    m = metric_of(key)
    if m is not None:
        return registry.get(m).direction
    return DERIVED_DIRECTIONS.get(key, "maximize")


def metric_keys(trials: Sequence[optuna.trial.FrozenTrial], include: Sequence[str] = ()) -> list[str]:
    """Every metric key with a numeric value on at least one of ``trials``: each registered metric at init
    then after the early steps (registry order), then the derived values, then the keys of ``include``
    (the study's objectives and constrained keys, e.g. ``relative_step``) not listed yet."""
    present = {k for t in trials for k, v in t.user_attrs.items()
               if finite_or_none(v) is not None and not isinstance(v, bool)}
    keys = []
    for m in registry.names():
        keys += [k for k in (m, f"{m}{EARLY_SUFFIX}") if k in present]
    keys += [k for k in _DERIVED_ORDER if k in present and k not in keys]
    return keys + [k for k in dict.fromkeys(include) if k in present and k not in keys]


def constant_keys(trials: Sequence[optuna.trial.FrozenTrial], keys: Sequence[str]) -> dict[str, float]:
    """The keys whose finite values are all equal over ``trials`` (at least one value), with that value:
    they carry no information to rank by (e.g. ``loss_drop`` = 0 on every trial when no early steps ran)."""
    out = {}
    for key in keys:
        values = {v for v in (finite_or_none(t.user_attrs.get(key)) for t in trials) if v is not None}
        if len(values) == 1:
            out[key] = values.pop()
    return out


def duplicate_keys(trials: Sequence[optuna.trial.FrozenTrial], keys: Sequence[str]) -> dict[str, str]:
    """The keys whose values equal an earlier key's on every trial (both missing counts as equal), mapped to
    that key: they add nothing to rank by (e.g. ``loss_early`` = ``loss_init`` when the early rung was skipped)."""
    out: dict[str, str] = {}
    columns = {key: [finite_or_none(t.user_attrs.get(key)) for t in trials] for key in keys}
    for i, key in enumerate(keys):
        if not any(v is not None for v in columns[key]):
            continue
        for earlier in keys[:i]:
            if earlier not in out and columns[earlier] == columns[key]:
                out[key] = earlier
                break
    return out


def phase(key: str) -> str:
    """``"early"`` for ``<m>@early``, ``"init"`` for a registered metric, ``"derived"`` otherwise."""
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
        base = {"metric": key, "phase": phase(key), "direction": direction, "optimized": key in objectives,
                "constrained": key in constraints, "subset": subset}
        for target, y in ((ACCURACY, acc), (CONVERGED, conv)):
            c = correlate(x, y)
            row = {**base, "target": target, **c}
            # significance by Kendall's p: exact for small n without ties, where Spearman's t-based p
            # is unreliable (n = 3 with rho = 1 gives p = 0)
            row["significant"] = None if c["kendall_p"] is None else bool(c["kendall_p"] <= ALPHA)
            row["agrees_with_direction"] = (None if c["kendall_tau"] is None
                                           else bool(c["kendall_tau"] * direction_sign(direction) > 0))
            if target == ACCURACY:
                row.update(topk_hits(x, y, numbers, direction, k))
            else:
                row.update({"topk_k": None, "topk_hits": None, "topk_rate": None, "topk_chance": None})
            rows.append(row)
    return rows


#: Columns of ``correlations.csv``, in order.
COLUMNS = ["metric", "phase", "direction", "optimized", "constrained", "subset", "target", "n", "kendall_tau",
           "kendall_p", "spearman_rho", "spearman_p", "significant", "agrees_with_direction", "topk_k",
           "topk_hits", "topk_rate", "topk_chance", "note"]
