"""optuna-dashboard with the CLI's definition of a study's best trials.

The dashboard computes its "best trials" itself: the Pareto front of all complete trials (several
objectives) or ``storage.get_best_trial`` (one objective), both blind to the constraints a trial stored
with ``Trial.set_constraint``, so it showed infeasible trials as best while ``python -m nas search``
printed feasible ones. :func:`feasible_best` makes the dashboard use :func:`nas.study.best_trials` (the
non-dominated feasible trials; all complete trials when none is feasible) for as long as it serves.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from .search.ranking import best_trials

__all__ = ["feasible_best"]


def _front(trials: Sequence[FrozenTrial], directions: Sequence[optuna.study.StudyDirection]) -> list[FrozenTrial]:
    return best_trials(trials, directions)[0]


@contextlib.contextmanager
def feasible_best(storage: optuna.storages.BaseStorage) -> Iterator[None]:
    """Inside the block, optuna-dashboard's best trials of studies in ``storage`` follow
    :func:`nas.study.best_trials`.

    Replaces ``optuna_dashboard._app.get_pareto_front_trials`` (the several-objective path) and, on this
    storage object only, ``get_best_trial`` (the one-objective path); both restored on exit. Needs
    optuna-dashboard >= 0.13 (the module layout this relies on); with another layout it raises
    ``RuntimeError`` rather than serving a different definition silently.
    """
    try:
        from optuna_dashboard import _app
    except ImportError as exc:  # pragma: no cover - the package is a declared dependency
        raise RuntimeError(f"optuna-dashboard is not importable: {exc}") from None
    if not hasattr(_app, "get_pareto_front_trials"):
        raise RuntimeError("this optuna-dashboard version computes its best trials elsewhere; "
                           "pin optuna-dashboard to a tested version (see pyproject.toml)")

    def get_best_trial(study_id: int) -> FrozenTrial:
        trials = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        front = _front(trials, storage.get_study_directions(study_id))
        if not front:
            raise ValueError("No trials are completed yet.")
        return front[0]

    original = _app.get_pareto_front_trials
    had_own = "get_best_trial" in vars(storage)
    own = vars(storage).get("get_best_trial")
    _app.get_pareto_front_trials = _front
    storage.get_best_trial = get_best_trial  # type: ignore[method-assign]
    try:
        yield
    finally:
        _app.get_pareto_front_trials = original
        if had_own:
            storage.get_best_trial = own  # type: ignore[method-assign]
        else:
            del storage.get_best_trial
