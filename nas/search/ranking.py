"""One definition of "best", "feasible" and a cohort's ranking, for every driver, the CLI and the dashboard.

* :func:`is_feasible`: Optuna's definition (every constraint value stored by ``Trial.set_constraint`` is
  <= 0); :func:`best_trials`: the non-dominated complete trials among the feasible ones (all complete
  trials when none is feasible), shared by the search's front, its progress bar, validation and the
  dashboard.
* :func:`gradnas_scores`: the combined gradnas score over a study's complete trials (the lab's feature
  sets: the ``early`` set when the search ran early steps, else ``init``; a budget search's rung-0 sets
  otherwise). It is relative to the trials ranked together (summed log-ranks), not a value to compare
  across studies. :func:`cohort_scores` ranks any cohort of value dicts the same way (the budget search's
  promotions), falling back to non-dominated sorting of the objectives when the score's inputs are missing.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import optuna
import pandas as pd

from objectives.combine import (
    BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, EARLY_FEATURES, INIT_FEATURES, Feature, combined_score,
    feature_values,
)

from .keys import CONFIG

__all__ = [
    "CONSTRAINTS_KEY", "complete_trials", "signed_values", "dominance_ranks", "nondominated_ranks", "is_feasible", "constraint_values",
    "best_trials", "best_trained", "pareto_front", "worst_if_undefined", "trials_table", "gradnas_scores", "cohort_scores",
]

#: The system attribute where ``Trial.set_constraint`` stores the constraint values (Optuna's key).
CONSTRAINTS_KEY = "constraints"


def complete_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))


def signed_values(trial: optuna.trial.FrozenTrial, directions: Sequence[optuna.study.StudyDirection]) -> list[float]:
    """The trial's objective values oriented so that smaller is better for every objective."""
    return [v if d == optuna.study.StudyDirection.MINIMIZE else -v for v, d in zip(trial.values, directions)]


def dominance_ranks(vectors: Sequence[Sequence[float]]) -> list[int]:
    """Non-dominated sorting rank of each vector, every coordinate minimized (1 = the front; rank r + 1 is
    the front of what remains after removing ranks <= r)."""
    keys = [list(v) for v in vectors]
    ranks = [0] * len(keys)
    left = set(range(len(keys)))
    rank = 0

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))

    while left:
        rank += 1
        front = {i for i in left if not any(dominates(keys[j], keys[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
    return ranks


def nondominated_ranks(
    trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> list[int]:
    """Non-dominated sorting rank of each trial (1 = Pareto front), in the order of ``trials``."""
    return dominance_ranks([signed_values(t, directions) for t in trials])


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Optuna's definition: every constraint value stored by ``Trial.set_constraint`` is <= 0 (a trial
    without constraints is feasible)."""
    return all(v <= 0 for v in constraint_values(trial).values())


def constraint_values(trial: optuna.trial.FrozenTrial) -> dict[str, float]:
    """A trial's constraint values by name: Optuna >= 5 stores each as system attr ``constraints:<name>``;
    older studies hold one list ``constraints`` (named by position)."""
    values = {str(i): v for i, v in enumerate(trial.system_attrs.get(CONSTRAINTS_KEY) or [])}
    prefix = CONSTRAINTS_KEY + ":"
    values.update((k[len(prefix):], v) for k, v in trial.system_attrs.items() if k.startswith(prefix))
    return values


def best_trials(
    trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> tuple[list[optuna.trial.FrozenTrial], bool]:
    """The one definition of a study's best trials, shared by the CLI's front, its progress bar and the
    dashboard: the non-dominated complete trials among the feasible ones (``Study.best_trials``; with one
    objective, the single best). When no complete trial is feasible, the non-dominated ones among all
    complete trials, and the second value is False.
    """
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.values is not None]
    feasible = [t for t in done if is_feasible(t)]
    pool = feasible or done
    front = pareto_front(pool, directions)
    if len(directions) == 1 and front:
        sign = 1 if directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
        front = [min(front, key=lambda t: (sign * t.values[0], t.number))]
    return front, bool(feasible) or not done


def pareto_front(
    trials: Sequence[optuna.trial.FrozenTrial], directions: Sequence[optuna.study.StudyDirection]
) -> list[optuna.trial.FrozenTrial]:
    """Non-dominated trials among ``trials`` (constraints ignored), in trial order."""
    return [t for t, r in zip(trials, nondominated_ranks(trials, directions)) if r == 1]


def worst_if_undefined(value: Any, direction: str) -> float:
    """An objective value Optuna can rank: a missing or NaN value becomes the worst value of its direction
    (+inf when minimized, -inf when maximized): an undefined metric is evidence, not a failed trial."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return math.inf if direction == "minimize" else -math.inf
    return float(value)


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
        config = t.user_attrs.get(CONFIG)
        row = dict(config) if isinstance(config, dict) else {}
        row.update({k: _cell(v) for k, v in t.user_attrs.items() if k != CONFIG})
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


def cohort_scores(rows: Sequence[Mapping[str, Any]], phase: str, features: Sequence[Feature],
                  objectives: Sequence[Any] = ()) -> list[float]:
    """Score of each row of a cohort (higher is better): the combined score of ``features`` at ``phase``
    over the rows (each a trial's config merged with its values); when the rows lack the score's inputs,
    minus the non-dominated sorting rank of the ``objectives`` (``key`` and ``direction`` attributes), as
    :func:`nondominated_ranks` ranks trials."""
    table = pd.DataFrame([dict(r) for r in rows])
    try:
        if all(np.isfinite(feature_values(table, f.key)).any() for f in features):
            return list(combined_score(table, phase, features).to_numpy())
    except KeyError:
        pass
    signed = [[worst_if_undefined(r.get(o.key), o.direction) * (1 if o.direction == "minimize" else -1)
               for o in objectives] for r in rows]
    return [-float(rk) for rk in dominance_ranks(signed)]


def best_trained(results: Mapping[int, Mapping[str, Any]]) -> int | None:
    """The one rule for "the best trained model" (the search's result, ``best_model.json``, ``validate`` and
    ``report``): the highest final test accuracy (``val_final_acc``: after the last epoch; a diverged
    training counts the accuracy it ended with), ties broken by fewer parameters (``params``), then by the
    lower trial number. ``results`` maps trial numbers to their training summaries; None when no trial has
    a final accuracy."""
    def number(v: Any) -> float | None:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None

    def measure(r: Mapping[str, Any]) -> float | None:  # a regression loss has no accuracy: its test loss, negated
        if r.get("val_task") == "regression":
            loss = number(r.get("val_final_test_loss"))
            return None if loss is None else -loss
        return number(r.get("val_final_acc"))

    scored = [(acc, number(r.get("params")) or math.inf, n) for n, r in results.items()
              if (acc := measure(r)) is not None]
    if not scored:
        return None
    return min(scored, key=lambda s: (-s[0], s[1], s[2]))[2]
