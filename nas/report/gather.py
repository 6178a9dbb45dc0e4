"""Data gathering of the report: the trials of a study with their validation results, and the counts.

A validation made with another number of epochs than the report's is left out and counted; failed
trials, trials never validated, failed validations and diverged trainings are counted.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import optuna

from ..study import StudyError, parse_constraint
from ..search.ranking import pareto_front
from ..validate import validation_results, with_validation
from .stats import CONVERGED

__all__ = ["ReportData", "gather"]


@dataclasses.dataclass
class ReportData:
    """Everything the report is made of, read once from the study."""

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


def gather(study: optuna.Study, epochs: int | None) -> ReportData:
    """Reads the study, merges the validation results into the trials and counts the outcomes.

    Args:
        study: A study made by ``python -m nas search``.
        epochs: Use the validations made with this many epochs (None: the most common).

    Returns:
        The trials, the validated ones used (those with ``epochs``), the objectives, constraints and
        Pareto front of the study, and the counts shown at the top of the report.
    """
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
    return ReportData(study, trials, complete, used, epochs, objectives, constraints, front, note, counts,
                 reasons.most_common())
