"""In-study calibration of the rung-0 score: refit its feature weights and directions on the study's own labels.

The rung-0 score (:func:`objectives.combine.rank_aggregate`) sums, over its features ``f``, ``w_f *
log(rank_f / n)`` with each feature ranked over the cohort in its direction. Chosen on other spaces, it may
weigh or orient a feature wrongly for the space at hand (``docs/results/proxy-lab.md``, leave one lab out). A
search produces labels as it runs (the early rung's training loss, the short rung's accuracy); this module
refits the weights on them with a strong prior towards the shipped ones, and returns a feature set of the
same form, so a refit score is ranked exactly as the shipped one is (:func:`objectives.combine.rank_aggregate`,
:func:`nas.search.ranking.cohort_scores`).

**The model.** Each feature enters in both directions: columns ``z+ = log(rank_max / n)`` and ``z- =
log(rank_min / n)``, ranked over the whole cohort (labelled and not; a missing value ranks last both ways, as
in the search). The score is ``sum_f (a_f z+_f + b_f z-_f)`` with ``a, b >= 0``: a feature set of
:class:`~objectives.combine.Feature` (a key may appear once per direction). The labels of one kind (a
:class:`LabelSet`: e.g. the 50-step loss, minimized) are turned into standardized ranks within that kind
(better = higher; a non-finite label ranks worst), each kind with its own mean. The weights minimize::

    sum_labels (y_i - x_i . w)^2 + penalty * ||w - c * w_prior||^2,    w >= 0

(``scipy.optimize.lsq_linear``): a ridge regression on ranks centred on the prior, the prior's weights
``w_prior`` (its features in their directions; the other direction and extra features 0) scaled by ``c`` so
that the prior score's standard deviation over the cohort is :data:`PRIOR_CORRELATION` (the correlation with
the standardized label ranks a prior of that quality would have: the coefficient scale of the labels' units).
``penalty`` counts as that many labels: with ``m`` labels the fit moves from the prior by about ``m / (m +
penalty)`` of the way to the least-squares fit, so the prior's pull decreases as labels come in.
``penalty="loo"`` chooses it from :data:`PENALTIES` by leave-one-label-out squared error. Besides the prior's
features the fit may weigh, from a prior weight of 0, the **rung-0 pool** (:data:`POOL_METRICS`) and the free
config values (:data:`FREE_FEATURES`) the cohort has (:func:`extra_features`).

With no label (or no kind with two labels) the refit is the prior: :func:`calibrate` returns exactly
``rank_aggregate(table, prior)``. A direction is **flipped** when a feature's weight in the other direction
exceeds the weight in its prior direction. :attr:`Calibration.description` is a small JSON-able dict (the
learned features, the flips, the number of labels per kind, the penalty) that a study can store;
:func:`features_from` reads the feature set back from it.

Pure: numpy, pandas, scipy; no I/O.

Example::

    from objectives.combine import BUDGET_INIT_FEATURES
    from nas.lab.calibration import LabelSet, calibrate

    loss = LabelSet("train_loss_last", "minimize", {0: 1.9, 4: 0.7, 9: 1.2, 11: 2.3, 17: 0.8})
    cal = calibrate(cohort_table, BUDGET_INIT_FEATURES, [loss])
    promote_by = cal.scores                 # one per row of cohort_table, higher = better
    study.set_user_attr("calibration", cal.description)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

from objectives.combine import Feature, feature_values, rank_aggregate

__all__ = ["PRIOR_CORRELATION", "DEFAULT_PENALTY", "PENALTIES", "POOL_METRICS", "FREE_FEATURES", "MIN_LABELS",
           "LabelSet", "Calibration", "extra_features", "calibrate", "features_from", "label_count"]

#: The correlation with the standardized label ranks assumed of the prior score: sets the scale of the prior
#: weights in the labels' units (the shipped scores' held-out Kendall tau of 0.37-0.44 on their own lab is a
#: rank correlation of about 0.5-0.6; a prior carried to another space is weaker).
PRIOR_CORRELATION = 0.5
#: The default ridge penalty: the prior counts as this many labels.
DEFAULT_PENALTY = 20.0
#: The penalties ``penalty="loo"`` chooses from.
PENALTIES = (2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0)
#: The rung-0 pool: metrics a budgeted search with calibration scores at rung 0 beside its prior's, so that the
#: refit may weigh what the prior leaves out (the shipped prior reads two metrics, and which metrics rank depends
#: on the space: docs/results/proxy-lab.md). Chosen by cost before any replay, not by how they rank: every
#: metric that costs at most about one training step alone (``objectives/data/metric_costs.json``) and reads at
#: most the batch gradient (no hooks, per-example passes or extra batches), plus AZ-NAS's expressivity and
#: progressivity, which share one forward pass. ``nas.search`` adds them to a calibrated search's metrics.
POOL_METRICS = ("az_expressivity", "az_progressivity", "grad_weight_ratio", "meco", "synflow", "flops", "snip",
                "grad_norm")
#: Features every candidate has for free at rung 0 (its config, its parameter count): candidates for a
#: weight the prior does not give them.
FREE_FEATURES = ("params", "lr", "batch_size")
#: The fewest finite labels (all kinds together) a search refits on (:func:`nas.search.rung0.rung0_scores`);
#: with fewer it ranks by the prior, exactly. Set from the probe replay of ``benchmarks/calibration_replay.py``
#: (paired gain about 0 at 5 labels on every lab, first positive on the MLPs at 10 and on resnet at 20), before
#: the async replay of ``benchmarks/calibration_climb.py`` that reports the gain.
MIN_LABELS = 10
#: Weights (in the prior's units) below this are dropped from the learned feature set.
_MIN_WEIGHT = 1e-6
_DIRECTIONS = ("maximize", "minimize")


@dataclasses.dataclass(frozen=True)
class LabelSet:
    """Labels of one kind, comparable among themselves: ``values`` maps a row position of the cohort table
    (0..n-1) to the label; ``direction`` says which way is better (``"minimize"`` for a loss)."""

    key: str
    direction: str
    values: Mapping[int, float]

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise TypeError(f"a label set's key must be a non-empty string, got {self.key!r}")
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'maximize' or 'minimize', got {self.direction!r}")
        if not isinstance(self.values, Mapping):
            raise TypeError(f"values must map row positions to labels, got {type(self.values).__name__}")
        for row, v in self.values.items():
            if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
                raise TypeError(f"label rows must be integer positions, got {row!r} in {self.key!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"labels must be numbers, got {v!r} for row {row} of {self.key!r}")


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` learned: ``scores`` (one per row, higher = better: ``rank_aggregate(table,
    features)``), the learned ``features`` and the JSON-able ``description``."""

    scores: np.ndarray
    features: tuple[Feature, ...]
    description: dict[str, Any]


def extra_features(table: pd.DataFrame, prior: Sequence[Feature]) -> list[str]:
    """The :data:`POOL_METRICS` and :data:`FREE_FEATURES` the table has with at least two distinct finite
    values, the prior's keys left out: the extra features :func:`calibrate` may give a weight by default."""
    have = {f.key for f in prior}
    out = []
    for key in (*POOL_METRICS, *FREE_FEATURES):
        if key in have or key not in table.columns:
            continue
        v = pd.to_numeric(table[key], errors="coerce").to_numpy(dtype=float)
        if len(np.unique(v[np.isfinite(v)])) > 1:
            out.append(key)
    return out


def label_count(labels: Sequence[LabelSet]) -> int:
    """The finite labels of ``labels``, all kinds together (what :data:`MIN_LABELS` counts)."""
    return sum(1 for s in labels for v in s.values.values() if math.isfinite(float(v)))


def _log_ranks(table: pd.DataFrame, key: str, direction: str) -> np.ndarray:
    return rank_aggregate(table, [Feature(key, direction)])


def _targets(values: Mapping[int, float], direction: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, standardized ranks of the labels, better = higher, a non-finite label worst)."""
    rows = np.array(sorted(values), dtype=int)
    v = np.array([float(values[r]) for r in rows])
    oriented = v if direction == "maximize" else -v
    oriented = np.where(np.isfinite(oriented), oriented, -np.inf)
    r = stats.rankdata(oriented, method="average")
    sd = r.std()
    return rows, (r - r.mean()) / sd if sd > 0 else np.zeros(len(r))


def _fit(x: np.ndarray, y: np.ndarray, groups: np.ndarray, centre: np.ndarray, penalty: float) -> np.ndarray:
    """argmin_{w >= 0} ||y - x w||^2 + penalty ||w - centre||^2, each group with its own intercept."""
    xc, yc = x.copy(), y.copy()
    for g in np.unique(groups):
        m = groups == g
        xc[m] -= xc[m].mean(axis=0)
        yc[m] -= yc[m].mean()
    s = math.sqrt(penalty)
    a = np.vstack([xc, s * np.eye(x.shape[1])])
    b = np.concatenate([yc, s * centre])
    return optimize.lsq_linear(a, b, bounds=(0.0, np.inf), method="bvls").x


def _loo_error(x: np.ndarray, y: np.ndarray, groups: np.ndarray, centre: np.ndarray, penalty: float) -> float:
    """Mean squared error of each label predicted by the fit on the others (its group's mean from them)."""
    err = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        same = keep & (groups == groups[i])
        if same.sum() < 2:
            continue
        w = _fit(x[keep], y[keep], groups[keep], centre, penalty)
        pred = y[same].mean() + (x[i] - x[same].mean(axis=0)) @ w
        err.append((y[i] - pred) ** 2)
    return float(np.mean(err)) if err else math.inf


def calibrate(table: pd.DataFrame, prior: Sequence[Feature], labels: Sequence[LabelSet],
              extra: Sequence[str] | None = None, penalty: float | str = DEFAULT_PENALTY,
              prior_correlation: float = PRIOR_CORRELATION) -> Calibration:
    """Refit the rung-0 score on the study's labels, shrunk towards ``prior``.

    Args:
        table: the cohort, one row per candidate (all of them, labelled or not), with the columns the
            features read (as :func:`objectives.combine.rank_aggregate` reads them).
        prior: the shipped score's features (directions and weights): the centre of the fit.
        labels: what the search has measured so far, one :class:`LabelSet` per kind (rows are positions
            in ``table``); kinds are compared only within themselves.
        extra: more feature keys the fit may weigh (prior weight 0); default :func:`extra_features`.
        penalty: how many labels the prior counts as (> 0), or ``"loo"``: chosen from :data:`PENALTIES`
            by leave-one-label-out error.
        prior_correlation: the correlation with the label ranks assumed of the prior (0 < . <= 1).

    Returns:
        A :class:`Calibration`; with no usable label (no kind with two labels) its scores are the prior's.

    Raises:
        ValueError: an empty table or prior, a label row outside the table, a bad penalty;
        TypeError: labels that are not :class:`LabelSet`; KeyError: a column a feature needs.
    """
    prior = tuple(prior)
    n = len(table)
    if n == 0 or not prior:
        raise ValueError("calibrate needs a non-empty cohort table and a non-empty prior feature set")
    if not all(isinstance(f, Feature) for f in prior):
        raise TypeError("prior must be a sequence of objectives.combine.Feature")
    if not all(isinstance(s, LabelSet) for s in labels):
        raise TypeError("labels must be a sequence of LabelSet")
    if isinstance(penalty, str):
        if penalty != "loo":
            raise ValueError(f"penalty must be a positive number or 'loo', got {penalty!r}")
    elif isinstance(penalty, bool) or not (isinstance(penalty, (int, float)) and 0 < penalty < math.inf):
        raise ValueError(f"penalty must be a positive number or 'loo', got {penalty!r}")
    if not 0 < prior_correlation <= 1:
        raise ValueError(f"prior_correlation must be in (0, 1], got {prior_correlation!r}")
    for s in labels:
        bad = [r for r in s.values if not 0 <= r < n]
        if bad:
            raise ValueError(f"label rows {bad[:5]} of {s.key!r} are outside the cohort of {n} rows")

    prior_scores = rank_aggregate(table, prior)
    extra = extra_features(table, prior) if extra is None else [k for k in extra if k not in {f.key for f in prior}]
    for k in extra:
        feature_values(table, k)  # a missing column: KeyError now, with the table's columns
    keys = list(dict.fromkeys([f.key for f in prior] + list(extra)))
    columns = [(k, d) for k in keys for d in _DIRECTIONS]
    x_all = np.column_stack([_log_ranks(table, k, d) for k, d in columns])
    w_prior = np.array([sum(f.weight for f in prior if f.key == k and f.direction == d) for k, d in columns])

    rows, ys, groups, counts = [], [], [], {}
    for g, s in enumerate(labels):
        counts[s.key] = counts.get(s.key, 0) + len(s.values)
        if len(s.values) < 2:
            continue
        r, y = _targets(s.values, s.direction)
        rows.append(r)
        ys.append(y)
        groups.append(np.full(len(r), g))
    n_labels = int(sum(len(s.values) for s in labels))
    desc: dict[str, Any] = {"prior": [_feature_dict(f) for f in prior], "n_labels": n_labels, "labels": counts,
                            "n_candidates": n, "prior_correlation": prior_correlation}
    sd = float(prior_scores.std())
    if not rows or sd == 0:
        desc.update(penalty=None, features=[_feature_dict(f) for f in prior], flipped=[], refit=False)
        return Calibration(prior_scores, prior, desc)

    idx, y, grp = np.concatenate(rows), np.concatenate(ys), np.concatenate(groups)
    x = x_all[idx]
    c = prior_correlation / sd
    centre = c * w_prior
    if penalty == "loo":
        penalty = min(PENALTIES, key=lambda p: _loo_error(x, y, grp, centre, p))
    w = _fit(x, y, grp, centre, float(penalty)) / c  # in the prior's units
    features = tuple(Feature(k, d, float(wi)) for (k, d), wi in zip(columns, w) if wi > _MIN_WEIGHT)
    if not features:  # every weight shrunk to 0: nothing ranks; keep the prior's order
        desc.update(penalty=float(penalty), features=[], flipped=[], refit=True)
        return Calibration(prior_scores, prior, desc)
    by = {col: float(wi) for col, wi in zip(columns, w)}
    direction = {f.key: f.direction for f in prior}
    flipped = [k for k in direction if by[(k, _other(direction[k]))] > by[(k, direction[k])]]
    desc.update(penalty=float(penalty), features=[_feature_dict(f) for f in features], flipped=flipped,
                refit=True)
    return Calibration(rank_aggregate(table, features), features, desc)


def _other(direction: str) -> str:
    return "minimize" if direction == "maximize" else "maximize"


def _feature_dict(f: Feature) -> dict[str, Any]:
    return {"key": f.key, "direction": f.direction, "weight": float(f.weight)}


def features_from(description: Mapping[str, Any]) -> tuple[Feature, ...]:
    """The learned feature set of a stored :attr:`Calibration.description` (its prior's when the fit kept no
    feature). Raises ValueError for a description without features."""
    feats = description.get("features") or description.get("prior")
    if not feats:
        raise ValueError("the calibration description has neither features nor a prior")
    return tuple(Feature(str(f["key"]), str(f["direction"]), float(f["weight"])) for f in feats)
