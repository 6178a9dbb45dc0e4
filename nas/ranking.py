"""One definition of "best" for a study: the combined gradnas score over its complete trials.

The search stores every metric and derived value of a trial as a user attribute; :func:`trials_table`
turns the trials into the table :func:`objectives.combined_score` reads (one row per trial, config keys
as columns), and :func:`gradnas_scores` ranks them with the lab's feature sets: the ``early`` set when
the search ran early steps (a non-empty ``loss_curve``) and the trials have its values, else the ``init``
set. A study scored
with other metrics (the combined score's inputs missing) has no combined score: callers then fall back to
non-dominated sorting of the objectives.

The score is relative to the trials ranked together (summed log-ranks): it orders the trials of one study,
it is not a value to compare across studies.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import optuna
import pandas as pd

from objectives.combine import (
    BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, EARLY_FEATURES, INIT_FEATURES, combined_score, feature_values,
)

__all__ = ["trials_table", "gradnas_scores"]


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, str)):
        return value
    return math.nan


def trials_table(trials: Sequence[optuna.trial.FrozenTrial]) -> pd.DataFrame:
    """One row per trial: its config keys, then its stored values (numbers, lists such as ``loss_curve``)."""
    rows = []
    for t in trials:
        config = t.user_attrs.get("config")
        row = dict(config) if isinstance(config, dict) else {}
        row.update({k: _cell(v) for k, v in t.user_attrs.items() if k != "config"})
        row["number"] = t.number
        rows.append(row)
    return pd.DataFrame(rows, index=[t.number for t in trials])


def gradnas_scores(trials: Sequence[optuna.trial.FrozenTrial]) -> tuple[np.ndarray | None, str | None]:
    """(combined score per trial, higher = predicted more accurate; the phase used), or (None, None)
    when the trials lack the values of both feature sets."""
    if not trials:
        return None, None
    table = trials_table(trials)
    curves = table["loss_curve"] if "loss_curve" in table.columns else pd.Series([], dtype=object)
    stepped = any(isinstance(c, list) and len(c) > 0 for c in curves)  # the search ran early steps
    # the full sets, then a budgeted search's rung-0 sets (its trials have only their inputs)
    for phase, features in (("early", EARLY_FEATURES), ("init", INIT_FEATURES), ("early", BUDGET_EARLY_FEATURES),
                            ("init", BUDGET_INIT_FEATURES)):
        if phase == "early" and not stepped:
            continue
        try:  # a feature no trial has a finite value of (e.g. early values without early steps) is missing
            if all(np.isfinite(feature_values(table, f.key)).any() for f in features):
                return combined_score(table, phase, features).to_numpy(), phase
        except KeyError:
            continue
    return None, None
