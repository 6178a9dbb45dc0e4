"""Choosing the combined score on a ground-truth table: measured directions, costs, greedy forward selection.

Every choice here is made on the rows it is given (DESIGN §8): :mod:`nas.lab.judge` calls it on one random
half of a table and reports on the other; :mod:`nas.lab.data` calls it on the whole table for the sets
``objectives`` ships. A value that is missing or not finite (a metric undefined for a dead net, a config
whose early steps diverged) ranks last, as in the search (:func:`objectives.combine.rank_aggregate`).

The ``*_over`` functions choose on several tables at once (:mod:`nas.lab.loo`: every lab but one): a set is
judged by its *pooled* tau, the mean (or the minimum, ``pool="min"``) over the tables of its tau within each
table; a feature a table lacks (no column, no inputs of a derived key) is left out of the score there, as a
column without a finite value would be (it ties every row). On one table they are the single-table functions.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from objectives import registry
from objectives.combine import CONFIG_COLUMNS, DERIVED, DERIVED_INPUTS, Feature, feature_values, rank_aggregate
from objectives.evidence import COST_STEPS

from .tables import NB201_TARGETS, from_steps

__all__ = ["LOSS_KEYS", "EXCLUDED", "EARLY_LOSS", "RAW_LOSS", "LOSS_WEIGHTS", "POOLS", "candidate_features", "tau", "has_feature",
           "score", "pooled_tau", "oriented_tau", "measured_direction", "pooled_direction", "cost_steps", "select",
           "select_over", "CONSENSUS_TOP", "CONSENSUS_THRESHOLD", "measured_in", "consensus_over", "structured",
           "select_structured", "select_structured_over"]

#: Loss-like values: lower is better; their direction is never learned.
LOSS_KEYS = ("loss_init", "loss_early", "train_loss_first", "train_loss_last")
#: Metrics left out of the candidates for their cost (grasp: 5-15 s a NB201 cell, the most expensive peer;
#: leaving it out changed no held-out figure on the resnet lab).
EXCLUDED = ("grasp",)
#: The early-loss feature of the structured early score and the weights tried for it: the lowest exponential
#: moving average of the early steps' training loss (``train_loss_smooth_min``,
#: :func:`objectives.combine.smoothed_loss_min` of the per-step curve), not the last steps' loss
#: (:data:`RAW_LOSS`), whose minibatch noise it smooths: alone it ranks every population lab better
#: (tau +0.023 resnet, +0.006 MLPs, +0.039 VGG; docs/results/proxy-lab.md).
EARLY_LOSS = "train_loss_smooth_min"
#: The training loss of the early steps' last batches as measured: the "loss alone" every early score is
#: compared with.
RAW_LOSS = "train_loss_last"
LOSS_WEIGHTS = (2.0, 4.0, 8.0, 16.0)
#: How the taus of one set on several tables are pooled into the one figure selection maximizes.
POOLS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": lambda taus: float(sum(taus) / len(taus)),
    "min": lambda taus: float(min(taus)),
}


def candidate_features(df: pd.DataFrame, phase: str) -> list[str]:
    """Feature keys available at a phase: metrics (and derived values) measured up to that point."""
    if df.attrs.get("nb201"):  # every metric column (one per metric and input), all at init
        skip = ("index", "arch", "settings", "lr", "batch_size", "acc", *NB201_TARGETS)
        return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])]
    metrics = [m for m in registry.names() if m not in EXCLUDED]
    keys = [m for m in metrics if m in df.columns] + [k for k in ("loss_init",) if k in df.columns]
    keys += [k for k in ("lr", "batch_size") if k in df.columns]
    # a value derived from the early steps' curve (train_loss_smooth_min) is no init feature, even where the
    # table stores it as a column
    keys += [d for d in DERIVED if (phase != "init" or not from_steps(d)) and _derivable(df, d)]
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
    """Kendall tau-b of a score against accuracy; 0 where undefined (a constant score)."""
    t = stats.kendalltau(score, acc).statistic
    return float(t) if t == t else 0.0


def has_feature(table: pd.DataFrame, key: str) -> bool:
    """Whether the table has the feature (its column, or the inputs of a derived key)."""
    try:
        feature_values(table, key)
    except KeyError:
        return False
    return True


def score(table: pd.DataFrame, features: Sequence[Feature]) -> np.ndarray:
    """Summed log-ranks (:func:`objectives.combine.rank_aggregate`) of the ``features`` the table has; a
    feature it lacks is left out (as a column without a finite value: it ties every row); zeros when it has
    none of them."""
    try:
        return rank_aggregate(table, features)
    except KeyError:
        present = [f for f in features if has_feature(table, f.key)]
        return rank_aggregate(table, present) if present else np.zeros(len(table))


def pooled_tau(tables: Sequence[pd.DataFrame], features: Sequence[Feature], pool: str = "mean") -> float:
    """The :data:`POOLS` ``pool`` over ``tables`` of each table's tau of :func:`score` against its ``acc``."""
    return POOLS[pool]([tau(score(t, features), t["acc"].to_numpy()) for t in tables])


def oriented_tau(df: pd.DataFrame, key: str, direction: str) -> float:
    return tau(rank_aggregate(df, [Feature(key, direction)]), df["acc"].to_numpy())


def measured_direction(df: pd.DataFrame, key: str) -> tuple[str, float]:
    """The better direction of a feature on these rows and its oriented tau (loss-like keys: minimize)."""
    return pooled_direction([df], key)


def pooled_direction(tables: Sequence[pd.DataFrame], key: str, pool: str = "mean") -> tuple[str, float]:
    """The direction of a feature with the higher :func:`pooled_tau` over ``tables``, and that tau
    (loss-like keys: minimize)."""
    if key in LOSS_KEYS or key.split("@")[0] in LOSS_KEYS:
        return "minimize", pooled_tau(tables, [Feature(key, "minimize")], pool)
    up = pooled_tau(tables, [Feature(key, "maximize")], pool)
    down = pooled_tau(tables, [Feature(key, "minimize")], pool)
    return ("maximize", up) if up >= down else ("minimize", down)


def cost_steps(keys: Sequence[str]) -> float:
    """Training steps to score the metrics ``keys`` read at init (derived keys expanded, shared inputs once;
    config values free; a metric without a measured cost, :data:`objectives.evidence.COST_STEPS`, is inf)."""
    metrics: set[str] = set()
    for k in keys:
        metrics |= set(DERIVED_INPUTS.get(k, (k,)))
    return float(sum(COST_STEPS.get(m, math.inf) for m in metrics if m not in CONFIG_COLUMNS))


def select(df: pd.DataFrame, keys: Sequence[str], max_features: int = 6,
           min_gain: float = 0.005, max_cost: float | None = None) -> tuple[tuple[Feature, ...], Feature]:
    """(combined features by greedy forward selection, best single feature), chosen on ``df``; with
    ``max_cost`` only keys and sets that cost at most that many training steps (:func:`cost_steps`).

    Each key enters in its :func:`measured_direction`; the set starts from the best single key and adds,
    while the summed log-ranks' tau gains at least ``min_gain``, the key that raises it most."""
    return select_over([df], keys, max_features, min_gain, max_cost)


def select_over(tables: Sequence[pd.DataFrame], keys: Sequence[str], max_features: int = 6,
                min_gain: float = 0.005, max_cost: float | None = None,
                pool: str = "mean") -> tuple[tuple[Feature, ...], Feature]:
    """:func:`select` on several tables at once: directions by :func:`pooled_direction`, sets judged by
    their :func:`pooled_tau`; ``keys`` may hold keys that some tables lack."""
    if max_cost is not None:
        keys = [k for k in keys if cost_steps([k]) <= max_cost]
    scored = {k: pooled_direction(tables, k, pool) for k in keys}
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
            trial[k] = pooled_tau(tables, chosen + [Feature(k, scored[k][0])], pool)
        if not trial:
            break
        k = max(trial, key=trial.get)
        if trial[k] < best + min_gain:
            break
        chosen.append(Feature(k, scored[k][0]))
        best = trial[k]
    return tuple(chosen), best_single


#: The consensus rule's defaults (:func:`consensus_over`), fixed before its leave-one-lab-out figures were seen.
CONSENSUS_TOP = 4
CONSENSUS_THRESHOLD = 0.05


def measured_in(table: pd.DataFrame, key: str) -> bool:
    """Whether the table measured the feature: it has it, with at least two distinct finite values (a
    constant column, NB201's one ``lr``, says nothing about the key there)."""
    try:
        v = feature_values(table, key)
    except KeyError:
        return False
    return len(np.unique(v[np.isfinite(v)])) >= 2


def consensus_over(tables: Sequence[pd.DataFrame], keys: Sequence[str], top: int = CONSENSUS_TOP,
                   threshold: float = CONSENSUS_THRESHOLD, max_cost: float | None = None,
                   min_tables: int = 2) -> tuple[tuple[Feature, ...], dict[str, tuple[str, float]]]:
    """The consensus rule: (equal-weight set, agreeing key -> (direction, smallest oriented tau)).

    A key is kept when every table that measured it (:func:`measured_in`; at least ``min(min_tables,
    len(tables))`` of them) ranks accuracy in the same direction with oriented tau >= ``threshold``
    (loss-like keys: minimized, never learned). The kept keys are ranked by their smallest tau over those
    tables (worst case first, ties by key); the set takes them in that order, skipping one that would lift
    the set's :func:`cost_steps` above ``max_cost``, until it has ``top`` keys."""
    need = min(min_tables, len(tables))
    agreed: dict[str, tuple[str, float]] = {}
    for k in keys:
        where = [t for t in tables if measured_in(t, k)]
        if len(where) < need or (max_cost is not None and cost_steps([k]) > max_cost):
            continue
        if k in LOSS_KEYS or k.split("@")[0] in LOSS_KEYS:
            options = ("minimize",)
        else:
            options = ("maximize", "minimize")
        for d in options:
            taus = [oriented_tau(t, k, d) for t in where]
            if min(taus) >= threshold:
                agreed[k] = (d, min(taus))
                break
    chosen: list[Feature] = []
    for k in sorted(agreed, key=lambda k: (-agreed[k][1], k)):
        if len(chosen) == top:
            break
        if max_cost is not None and cost_steps([f.key for f in chosen] + [k]) > max_cost:
            continue
        chosen.append(Feature(k, agreed[k][0]))
    return tuple(chosen), agreed


def structured(init: Sequence[Feature], weight: float) -> tuple[Feature, ...]:
    """The structured early score: :data:`EARLY_LOSS` (minimized) with ``weight``, plus the init set."""
    return (Feature(EARLY_LOSS, "minimize", weight), *init)


def select_structured(view: pd.DataFrame, init: Sequence[Feature]) -> tuple[Feature, ...]:
    """The structured early score (:func:`structured`) with the weight from :data:`LOSS_WEIGHTS` that ranks
    ``view`` best; ``init``: the init set chosen at init on the same rows. ``view``: the table after the
    early steps (:func:`nas.lab.tables.steps_view`)."""
    return select_structured_over([view], init)


def select_structured_over(views: Sequence[pd.DataFrame], init: Sequence[Feature],
                           pool: str = "mean") -> tuple[Feature, ...]:
    """:func:`select_structured` on several tables: the weight with the best :func:`pooled_tau`."""
    best = max(LOSS_WEIGHTS, key=lambda w: pooled_tau(views, structured(init, w), pool))
    return structured(init, best)
