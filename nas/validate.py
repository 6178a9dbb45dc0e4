"""Validation by full training: pick trials of a study, train them with :mod:`nas.training`, store the results.

Which trials (``python -m nas validate``):

* the Pareto front: Optuna's ``study.best_trials`` (non-dominated among the *feasible* trials); when
  no trial is feasible, the non-dominated trials of all complete trials (:func:`nas.search.ranking.pareto_front`);
  selected_by ``"pareto"``;
* or, with ``top=K``, the first K complete trials in this order (selected_by ``"top"``): feasible
  before infeasible, then by the combined gradnas score (:func:`nas.search.ranking.gradnas_scores`, highest
  first) when the trials have its values, then by non-dominated sorting rank (1 = the front; rank r + 1
  is the front of what remains after removing ranks <= r), then by the first objective in its direction,
  then by trial number;
* plus ``n_random`` other complete trials drawn uniformly without replacement with ``random.Random(seed)``
  (``seed`` defaults to the study's seed, so a rerun draws the same ones); selected_by ``"random"``.
  They give an estimate of proxy quality that is not biased towards the front.

Where results go: Optuna (5.x) refuses to change the user attributes of a finished trial
(``UpdateFinishedTrialError``), so each trial's results are stored as one *study* user attribute
``"validation:<trial number>"`` holding a dict of the ``val_*`` values below (the driver is the only
writer). :func:`validation_results` reads them back; :func:`with_validation` returns copies of the
trials with those values merged into ``user_attrs``; ``runs/<study>/validation.csv`` has one row per
validated trial.

Stored values (:func:`summarize`):

* ``val_final_acc``, ``val_best_acc``: test accuracy after the last epoch, best over the epochs;
* ``val_final_train_loss``: mean training loss of the last epoch (None when diverged);
* ``val_loss_curve``, ``val_test_loss_curve``, ``val_acc_curve``: per-epoch train loss, test loss,
  test accuracy; ``val_epoch_times``: seconds per epoch;
* ``val_epochs_to_90``: first epoch (1-based) whose accuracy reaches 90 % of ``val_best_acc``;
* ``val_converged``: **convergence rule** — not diverged and final train loss < 0.5 * ln(num_classes),
  i.e. below half the loss of a uniform prediction (the expected initial loss of a well-scaled
  network). ln(C) rather than the network's own first loss, because a badly scaled network can start
  at a loss of 50 and "halve" it to a useless 25. ``val_converged_threshold`` records the bound;
* ``val_diverged`` (a non-finite training loss stopped the training; then ``val_diverged_epoch``, and
  ``val_final_acc`` is the accuracy of the diverged weights, non-finite outputs counted wrong);
* ``val_epochs``, ``val_selected_by``, ``val_first_batch_loss``, ``val_time`` (seconds),
  ``val_device``, ``val_amp``.

Rerunning skips trials already validated with the same number of epochs. An interrupted trial resumes
from its last finished epoch (``runs/<study>/checkpoints/trial_<n>.pt``). A training that raises
(e.g. out of memory) is stored as ``val_error`` and retried by the next run.
``runs/<study>/validate.log`` gets one line per trained trial.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from pathlib import Path
from typing import Any, Callable

import optuna

from .data import DatasetError, load_dataset
from .search.executor import default_workers, make_executor, run_jobs, sigterm_interrupts
from .search.keys import CONFIG, SEED, VALIDATION, StudyFolder, validation_key
from .search.lifecycle import train_spec
from .search.ranking import complete_trials, gradnas_scores, is_feasible, nondominated_ranks, pareto_front, signed_values
from .study import StudyError
from .study import load_study as _load_study
from .training import summarize

__all__ = [
    "ValidationError", "load_study", "study_settings", "select_trials", "validation_results", "with_validation",
    "run_validation", "export_validation",
]

logger = logging.getLogger(__name__)



class ValidationError(ValueError):
    """Bad input (unknown study, a study without the settings of a search, bad options); one line."""


# ------------------------------------------------------------------------------------ study access
def load_study(storage: str, name: str | None) -> optuna.Study:
    """:func:`nas.study.load_study` (the one opener), with its errors as :class:`ValidationError`.

    Raises:
        ValidationError: storage unreachable, or no such study (the message lists the stored ones).
    """
    try:
        return _load_study(storage, name)
    except StudyError as exc:
        raise ValidationError(str(exc)) from None


def study_settings(study: optuna.Study) -> dict[str, Any]:
    """The search settings stored on the study (space, bounds, dataset, seed, ...).

    Raises:
        ValidationError: the study was not made by ``python -m nas search``.
    """
    from .search.config import SearchConfig, SearchError

    try:
        c = SearchConfig.from_study(study)
    except SearchError as exc:
        raise ValidationError(str(exc)) from None
    return {"space": c.space, "bounds": c.bounds, "dataset": c.dataset, "seed": int(c.seed),
            "objectives": c.objectives.split(",") if c.objectives else [], "constraints": list(c.constraints)}


# ------------------------------------------------------------------------------------ selection
def select_trials(
    study: optuna.Study, top: int | None = None, n_random: int = 0, seed: int = 0
) -> list[tuple[optuna.trial.FrozenTrial, str]]:
    """The trials to validate with the reason each was picked (module docstring has the rules).

    Only COMPLETE trials with a stored ``config`` can be picked. Returns ``(trial, selected_by)``
    pairs, the front/top ones first, each group in trial order.
    """
    done = [t for t in complete_trials(study) if isinstance(t.user_attrs.get(CONFIG), dict)]
    if not done:
        return []
    directions = study.directions
    if top is None:
        front = study.best_trials  # feasible non-dominated trials
        numbers = {t.number for t in front}
        if not numbers:
            numbers = {t.number for t in pareto_front(done, directions)}
        picked = [(t, "pareto") for t in done if t.number in numbers]
    else:
        ranks = nondominated_ranks(done, directions)
        first = [signed_values(t, directions)[0] for t in done]
        score, _ = gradnas_scores(done)
        lead = [-s for s in score] if score is not None else ranks  # the combined score, else the front rank
        order = sorted(range(len(done)),
                       key=lambda i: (not is_feasible(done[i]), lead[i], ranks[i], first[i], done[i].number))
        chosen = {done[i].number for i in order[: max(0, int(top))]}
        picked = [(t, "top") for t in done if t.number in chosen]
    taken = {t.number for t, _ in picked}
    others = [t for t in done if t.number not in taken]
    if n_random > 0 and others:
        sample = random.Random(seed).sample(others, min(int(n_random), len(others)))
        picked += [(t, "random") for t in sorted(sample, key=lambda t: t.number)]
    return picked


# ------------------------------------------------------------------------------------ results
def validation_results(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Trial number -> its stored ``val_*`` dict (validated or failed validations), from the study."""
    prefix = VALIDATION
    out = {}
    for key, value in study.user_attrs.items():
        if key.startswith(prefix) and isinstance(value, dict):
            try:
                out[int(key[len(prefix):])] = value
            except ValueError:
                continue
    return out


def with_validation(
    study: optuna.Study, results: dict[int, dict[str, Any]] | None = None
) -> list[optuna.trial.FrozenTrial]:
    """Copies of every trial of the study with its ``val_*`` values merged into ``user_attrs``.

    ``results``: the study's :func:`validation_results`, when the caller has read them already.
    """
    if results is None:
        results = validation_results(study)
    out = []
    for t in study.get_trials(deepcopy=True):
        if t.number in results:
            t.user_attrs.update(results[t.number])
        out.append(t)
    return out


def _is_validated(result: dict[str, Any] | None, epochs: int) -> bool:
    return bool(result) and result.get("val_epochs") == epochs and "val_error" not in result


def export_validation(study: optuna.Study, path: str | Path) -> Path:
    """One row per trial with stored validation: number, params, objective values and ``val_*``; atomic."""
    import pandas as pd

    results = validation_results(study)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    names = list(study.metric_names or []) or [f"value_{i}" for i in range(len(study.directions))]
    rows = []
    for number in sorted(results):
        t = trials.get(number)
        row: dict[str, Any] = {"number": number, "state": t.state.name if t else "missing"}
        if t is not None:
            row.update({f"params_{k}": v for k, v in t.params.items()})
            row.update({n: v for n, v in zip(names, t.values or [])})
        for k, v in results[number].items():
            row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        rows.append(row)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------ the run
@dataclasses.dataclass
class ValidateOptions:
    """Options of :func:`run_validation` (see ``python -m nas validate --help``)."""

    epochs: int = 10
    top: int | None = None
    n_random: int = 0
    workers: int | None = None
    seed: int | None = None
    trials_per_gpu: int = 1
    data_dir: str = "data"
    amp: str = "auto"
    threads: int | None = None
    ray_address: str | None = None


def run_validation(
    study: optuna.Study,
    out_dir: str | Path,
    options: ValidateOptions,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the selected trials (in parallel through :func:`nas.search.executor.run_jobs`) and store results.

    Args:
        study: the study (made by the search: its user attributes give space, bounds, dataset, seed).
        out_dir: ``runs/<study>``: checkpoints, ``validate.log``, ``validation.csv``.
        options: epochs, selection, workers, seed, ...
        on_update: called after each trained trial with ``{"trial", "status", "values", **counts}``.
        on_plan: called once with the counts before training starts (``selected``, ``skipped``,
            ``to_train``).

    Returns:
        Counts: ``selected``, ``skipped`` (already validated with these epochs), ``to_train``,
        ``trained``, ``diverged``, ``failed``, ``by_reason`` (selected_by -> count).

    Raises:
        ValidationError: bad options or a study without search settings.
        KeyboardInterrupt: Ctrl-C or SIGTERM; finished trials are stored, checkpoints kept.
    """
    if options.epochs < 1:
        raise ValidationError(f"--epochs must be >= 1, got {options.epochs}")
    if options.top is not None and options.top < 0:
        raise ValidationError(f"--top must be >= 0, got {options.top}")
    if options.n_random < 0:
        raise ValidationError(f"--random must be >= 0, got {options.n_random}")
    if options.workers is not None and options.workers < 1:
        raise ValidationError(f"--workers must be >= 1, got {options.workers}")
    settings = study_settings(study)
    seed = settings["seed"] if options.seed is None else int(options.seed)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    picked = select_trials(study, options.top, options.n_random, seed)
    done = validation_results(study)
    todo = [(t, why) for t, why in picked if not _is_validated(done.get(t.number), options.epochs)]
    stats: dict[str, Any] = {
        "selected": len(picked), "skipped": len(picked) - len(todo), "to_train": len(todo), "trained": 0,
        "diverged": 0, "failed": 0, "by_reason": {},
    }
    for _, why in picked:
        stats["by_reason"][why] = stats["by_reason"].get(why, 0) + 1
    if on_plan:
        on_plan(dict(stats))
    if not todo:
        export_validation(study, StudyFolder(out_dir).validation_csv)
        return stats
    try:  # fail fast, here, for a dataset that is not on disk and cannot be downloaded
        load_dataset(settings["dataset"], options.data_dir, seed=settings["seed"])
    except DatasetError as exc:
        raise ValidationError(str(exc)) from None
    workers = min(int(options.workers or default_workers(options.trials_per_gpu)), len(todo))
    folder = StudyFolder(out_dir)
    data_dir = str(Path(options.data_dir).resolve())
    jobs = [(t.number, train_spec(settings, t.user_attrs[CONFIG], int(t.user_attrs.get(SEED, settings["seed"] + t.number)),
                                  options.epochs, folder.checkpoint(t.number), data_dir=data_dir, amp=options.amp,
                                  threads=options.threads, trial=t.number))
            for t, _ in todo]
    why_of = {t.number: why for t, why in todo}

    def handle(number: int, status: str, payload: Any, seconds: float) -> None:  # noqa: ARG001
        why = why_of[number]
        if status == "ok":
            values = summarize(payload, why)
            stats["trained"] += 1
            stats["diverged"] += int(values["val_diverged"])
            first = payload["resumed_from"] + 1
            trained = (f"trained epochs {first}..{first + payload['epochs_trained'] - 1}"
                       if payload["epochs_trained"] else "trained no full epoch")
            if payload["diverged"]:
                trained += f", diverged in epoch {payload['diverged_epoch']} step {payload['diverged_step']}"
            line = (f"trial {number} {trained} of {payload['epochs']} (resumed from epoch "
                    f"{payload['resumed_from']}) best_acc={values['val_best_acc']} "
                    f"diverged={values['val_diverged']}")
        else:
            values = {"val_error": str(payload)[:2000], "val_error_epochs": int(options.epochs),
                      "val_selected_by": why}
            stats["failed"] += 1
            line = f"trial {number} failed: {str(payload)[:300]}"
            logger.warning("validation of trial %d failed: %s", number, payload)
        study.set_user_attr(validation_key(number), values)  # the driver is the only writer
        with folder.validate_log.open("a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        if on_update:
            on_update({**stats, "trial": number, "status": status, "values": values})

    executor = make_executor(workers, trials_per_gpu=options.trials_per_gpu, ray_address=options.ray_address)
    with sigterm_interrupts():
        try:
            run_jobs(executor, workers, jobs, handle)
        finally:
            executor.shutdown()
            export_validation(study, folder.validation_csv)
    return stats
