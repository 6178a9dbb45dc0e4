"""One combined gradnas score: rank aggregation of complementary signals with measured directions.

A single metric is a weak ranker (DESIGN §8): the thesis metrics at initialization see how a network
propagates gradients but not the learning rate it will be trained with; the loss after a few steps sees
the learning rate but is noisy. :func:`combined_score` ranks the candidates of a table by each *feature*
in its better direction and sums the ranks on a log scale (the non-linear rank aggregation of AZ-NAS,
Lee & Ham, CVPR 2024: a candidate that is poor on one feature is pulled down more than averaging would),
weighted per feature. Higher = predicted more accurate.

A feature is a column of the table (a metric key as the search stores it: ``kappa_w``, ``kappa_w@early``,
``loss_early``, ``params``, ...) or a derived quantity computed from columns (:data:`DERIVED`: e.g. the
relative weight change of one SGD step, ``lr * grad_weight_ratio``, which lets an init-only score see
the learning rate). Which features, directions and weights: measured on the proxy lab
(``benchmarks/proxy_lab.py``), chosen on random halves and reported on the other halves; the chosen
sets are :data:`INIT_FEATURES` and :data:`EARLY_FEATURES`. A value that is missing or not finite (a
metric undefined for a dead network) ranks last in every direction.

Example::

    import pandas as pd
    from objectives.combine import combined_score

    table = pd.DataFrame({"kappa_w": [..], "grad_weight_ratio": [..], "lr": [..], ...})
    table["gradnas"] = combined_score(table, phase="init")
    best = table.sort_values("gradnas", ascending=False).head(5)
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Feature", "DERIVED", "smoothed_loss_min", "derived_values",
           "DERIVED_INPUTS", "feature_inputs", "CONFIG_COLUMNS", "AZ_NAS_FEATURES", "INIT_FEATURES", "EARLY_FEATURES", "BUDGET_INIT_FEATURES", "BUDGET_EARLY_FEATURES", "PHASES", "feature_values",
           "rank_aggregate", "combined_score"]

PHASES = ("init", "early")


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input of the combined score.

    Attributes:
        key: a table column, or a name in :data:`DERIVED`.
        direction: ``"maximize"`` or ``"minimize"``: which way predicts a more accurate network.
        weight: its weight in the sum of log-ranks (> 0).
    """

    key: str
    direction: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight must be a positive number, got {self.weight!r}")


def _col(table: pd.DataFrame, key: str) -> np.ndarray:
    if key not in table.columns:
        raise KeyError(f"the table has no column {key!r} (columns: {', '.join(map(str, table.columns))})")
    return pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)


def _curves(table: pd.DataFrame, key: str) -> list[np.ndarray | None]:
    """Per-row loss curves of a column holding lists or their JSON text (None where absent or broken)."""
    if key not in table.columns:
        raise KeyError(f"the table has no column {key!r} (columns: {', '.join(map(str, table.columns))})")
    out: list[np.ndarray | None] = []
    for v in table[key]:
        if isinstance(v, str):
            try:
                v = json.loads(v)
            except ValueError:
                v = None
        try:
            c = np.asarray(v, dtype=float) if v is not None else None
        except (TypeError, ValueError):
            c = None
        out.append(c if c is not None and c.ndim == 1 and c.size else None)
    return out


def smoothed_loss_min(curve: np.ndarray | None, decay: float = 0.9) -> float:
    """The lowest value of the exponential moving average (``m <- decay * m + (1 - decay) * loss``, started at
    the first loss) of a training-loss curve: the best loss the run has reached, with the minibatch noise
    averaged out. NaN for a missing curve or one with a non-finite loss (a diverged run)."""
    if curve is None or not np.isfinite(curve).all():
        return math.nan
    m, best = float(curve[0]), math.inf
    for v in curve:
        m = decay * m + (1.0 - decay) * float(v)
        best = min(best, m)
    return best


#: Columns of the candidate's config that derived features may read at every phase.
CONFIG_COLUMNS = ("lr", "batch_size", "momentum", "weight_decay")

#: Derived features: name -> function of the table (one value per row). A derived key may carry a phase
#: suffix (``train_loss_smooth_min@50``): it is then computed from the columns with that suffix.
DERIVED: dict[str, Callable[[pd.DataFrame], np.ndarray]] = {
    # best smoothed training loss of the early steps (from the per-step curve the search stores)
    "train_loss_smooth_min": lambda t: np.array([smoothed_loss_min(c) for c in _curves(t, "loss_curve")]),
    # relative weight change of one SGD step at the config's learning rate: lr * ||g|| / ||w||
    "relative_step": lambda t: _col(t, "lr") * _col(t, "grad_weight_ratio"),
    # ... the relative gradient change that step causes, predicted by step-consistency
    "relative_gradient_change": lambda t: _col(t, "kappa_w") * _col(t, "lr") * _col(t, "grad_weight_ratio"),
    "log_lr": lambda t: np.log(_col(t, "lr")),
}

#: AZ-NAS's four components (Lee & Ham, CVPR 2024), complexity = FLOPs, all maximized.
AZ_NAS_FEATURES: tuple[Feature, ...] = (
    Feature("az_expressivity", "maximize"), Feature("az_progressivity", "maximize"),
    Feature("az_trainability", "maximize"), Feature("flops", "maximize"),
)
#: Features of the init-only score (no training step taken), chosen on the resnet_cifar/mnist5k proxy lab
#: (150 configs, ``benchmarks/proxy_lab.py --choose``: greedy forward selection of summed log-ranks on the
#: whole table; grasp left out of the candidates for its cost, which changed no held-out figure). Held-out
#: Kendall tau of this procedure (20 random halves): 0.44 +- 0.06, against 0.24 for the best single init
#: metric and 0.29 for AZ-NAS. Thesis metrics enter in their *measured* directions (kappa_x maximized).
INIT_FEATURES: tuple[Feature, ...] = (
    Feature("az_expressivity", "maximize"),
    Feature("kappa_x", "maximize"),
    Feature("batch_size", "minimize"),  # more steps per epoch in a fixed number of epochs
    Feature("relative_gradient_change", "maximize"),  # kappa_w * lr * ||g|| / ||w||: sees the learning rate
    Feature("sgn_berry_esseen", "minimize"),
)
#: Features of the score after the early steps: the mean training loss of the last early steps (weight 8)
#: plus the init set, which needs no second scoring. On the lab (50 early steps) its held-out tau is about
#: that of the loss alone (README, "Which metrics rank networks"): the loss after the early steps carries
#: most of what any proxy measured here predicts.
EARLY_LOSS_WEIGHT = 8.0
EARLY_FEATURES: tuple[Feature, ...] = (Feature("train_loss_last", "minimize", EARLY_LOSS_WEIGHT), *INIT_FEATURES)

#: The init set of a budgeted search's rung 0, where every candidate is scored and the cost per candidate
#: decides how many are seen: the same greedy selection with candidates and set capped at 2 training steps
#: of the same network (``benchmarks/proxy_lab.py --max-cost 2``, costs from ``benchmarks/metric_cost.py``:
#: az_expressivity 0.50, grad_weight_ratio 1.44 steps on a CPU ResNet-20). Held-out tau (20 random halves,
#: selection capped the same way): 0.37 +- 0.08 (0.366), against 0.44 for :data:`INIT_FEATURES` at 9.7 steps.
BUDGET_INIT_FEATURES: tuple[Feature, ...] = (
    Feature("az_expressivity", "maximize"),
    Feature("batch_size", "minimize"),
    Feature("relative_step", "maximize"),  # lr * ||g|| / ||w||
)
#: Rung 1 of a budgeted search: the early steps' loss (weight 8) plus the rung-0 set.
BUDGET_EARLY_FEATURES: tuple[Feature, ...] = (Feature("train_loss_last", "minimize", EARLY_LOSS_WEIGHT),
                                              *BUDGET_INIT_FEATURES)


#: The columns each derived feature reads (config values and metrics).
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "train_loss_smooth_min": ("loss_curve",),
    "relative_step": ("lr", "grad_weight_ratio"),
    "relative_gradient_change": ("kappa_w", "lr", "grad_weight_ratio"),
    "log_lr": ("lr",),
}


def feature_inputs(features: Sequence[Feature]) -> list[str]:
    """The columns a feature set reads, without phase suffix (derived features expanded to their inputs):
    the metrics a search must score so that the combined score can rank its trials."""
    out: list[str] = []
    for f in features:
        base = f.key.split("@")[0]
        out += list(DERIVED_INPUTS.get(base, (base,)))
    return list(dict.fromkeys(out))


def feature_values(table: pd.DataFrame, key: str) -> np.ndarray:
    """The values of one feature for every row (a column, or a :data:`DERIVED` quantity)."""
    if key in table.columns:
        return _col(table, key)
    base, at, suffix = key.partition("@")
    if base in DERIVED:
        if at:  # the same quantity from the columns measured at that phase, and the config
            tail = f"@{suffix}"
            renamed = {c: c[: -len(tail)] for c in table.columns if str(c).endswith(tail)}
            if not renamed:
                raise KeyError(f"the table has no column measured at {tail!r} for the derived feature {key!r}")
            table = table[[*renamed, *(c for c in CONFIG_COLUMNS if c in table.columns)]].rename(columns=renamed)
        return np.asarray(DERIVED[base](table), dtype=float)
    return _col(table, key)


def derived_values(values: dict, suffixes: Sequence[str] = ("", "@early")) -> dict[str, float]:
    """Every :data:`DERIVED` feature (plain and with each phase suffix) that can be computed from one
    candidate's ``values`` (metric values, the config's ``lr``, ``loss_curve``), as ``{key: value}``.
    Features whose inputs are missing are left out; undefined inputs give NaN."""
    row = pd.DataFrame([{k: (json.dumps(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()
                         if isinstance(v, (int, float, str, list, tuple)) and not isinstance(v, bool)}])
    out: dict[str, float] = {}
    for name in DERIVED:
        for suffix in suffixes:
            key = f"{name}{suffix}"
            if key in values:
                continue
            try:
                out[key] = float(feature_values(row, key)[0])
            except (KeyError, TypeError, ValueError):
                continue
    return out


def rank_aggregate(table: pd.DataFrame, features: Sequence[Feature]) -> np.ndarray:
    """Sum over features of ``weight * log(rank / n)``, ranks in each feature's better direction.

    The best row of a feature gets rank n (log 0), the worst rank 1; ties share their average rank;
    rows whose value is missing or not finite get rank 1 (below every finite value, ties among them
    averaged). Returns one score per row, higher = better (at most 0).

    Raises:
        ValueError: no features or an empty table; KeyError: a missing column.
    """
    if not features:
        raise ValueError("rank_aggregate needs at least one feature")
    n = len(table)
    if n == 0:
        raise ValueError("rank_aggregate needs a table with at least one row")
    total = np.zeros(n)
    for f in features:
        v = feature_values(table, f.key)
        oriented = v if f.direction == "maximize" else -v
        finite = np.isfinite(oriented)
        ranks = np.empty(n)
        k = int((~finite).sum())
        ranks[~finite] = (k + 1) / 2.0  # the k undefined rows share ranks 1..k
        if finite.any():
            ranks[finite] = k + stats.rankdata(oriented[finite], method="average")
        total += f.weight * np.log(ranks / n)
    return total


def combined_score(
    table: pd.DataFrame,
    phase: str = "init",
    features: Sequence[Feature] | None = None,
) -> pd.Series:
    """The gradnas score of each candidate (row): higher = predicted more accurate after training.

    Args:
        table: one row per candidate; metric columns as the search stores them (``kappa_w``,
            ``kappa_w@early``, ``loss_early``, ...) and the config's ``lr`` where a derived feature
            needs it.
        phase: ``"init"`` (only values measured at initialization: :data:`INIT_FEATURES`) or
            ``"early"`` (also those after the early training steps: :data:`EARLY_FEATURES`).
        features: override the phase's feature set (e.g. to evaluate another choice).

    Returns:
        A float Series aligned with ``table.index``, named ``"gradnas_<phase>"``.

    Raises:
        ValueError: an unknown phase, an empty feature set; KeyError: a column the features need.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if features is None:
        features = INIT_FEATURES if phase == "init" else EARLY_FEATURES
    chosen = tuple(features)
    if not chosen:
        raise ValueError(f"no features for phase {phase!r}")
    return pd.Series(rank_aggregate(table, chosen), index=table.index, name=f"gradnas_{phase}")
