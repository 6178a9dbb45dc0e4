"""A trial's life, written once: ask -> claim -> sample -> record -> spec -> run -> tell.

:class:`Lifecycle` is what every driver (the proxy search, the budget search) uses to turn Optuna's
trials into jobs and results back into trials:

1. **ask** a trial of the study and **claim** it for this driver (:class:`~nas.ownership.Heartbeat`:
   other drivers sharing the study leave it alone while this driver lives);
2. give it back (PRUNED) when the study already has its target of trials complete or running (another
   driver asked them first);
3. **sample** its config from the space (a combination the space rejects is told FAIL, and another is
   asked); **record** the config, the seed (a retry keeps its first attempt's) and the thread count;
4. build its job's **spec** (:func:`trial_spec` to score it, :func:`train_spec` to train it);
5. **store** values as they come (user attributes and constraint violations) and **tell** Optuna its
   objective values (COMPLETE) or its failure reason (FAIL). A trial another driver already finished
   (it took this driver for gone) is logged, not raised.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna

from search_spaces import ConfigError

from ..training import jsonable
from . import keys
from .ranking import worst_if_undefined

__all__ = ["Candidate", "Lifecycle", "trial_spec", "train_spec", "store_values", "tell_values", "tell_failure"]

logger = logging.getLogger(__name__)

_ACTIVE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)


@dataclasses.dataclass
class Candidate:
    """A running trial this driver owns: its number, Optuna handle, config and seed."""

    number: int
    trial: optuna.Trial
    config: dict[str, Any]
    seed: int


# ---------------------------------------------------------------------- specs: what a worker runs
def trial_spec(settings: Any, config: Mapping[str, Any], seed: int, **overrides: Any):
    """The :class:`~nas.evaluate.TrialSpec` that scores one candidate of a search described by
    ``settings`` (a resolved :class:`~nas.search.SearchConfig`); ``overrides`` change single fields
    (``early_steps=0, time_steps=3`` at rung 0, ``metrics=[], score_init=False`` for the early rung)."""
    from ..evaluate import TrialSpec

    fields = dict(space=settings.space, config=dict(config), dataset=settings.dataset, bounds=dict(settings.bounds),
                  data_dir=settings.data_dir, metrics=list(settings.metrics), early_steps=settings.early_steps,
                  probe_size=settings.probe_size, seed=int(seed), data_seed=settings.seed,
                  metric_options=dict(settings.metric_options), threads=settings.threads)
    fields.update(overrides)
    return TrialSpec(**fields)


def train_spec(settings: Mapping[str, Any], config: Mapping[str, Any], seed: int, epochs: int,
               checkpoint: str | Path, data_dir: str = "data", **overrides: Any):
    """The :class:`~nas.training.TrainSpec` that trains one candidate of a study whose stored settings
    are ``settings`` (space, bounds, dataset, seed: the data seed): the budget search's training rungs and
    ``validate`` build it here."""
    from ..training import TrainSpec

    fields = dict(space=settings["space"], config=dict(config), dataset=settings["dataset"], epochs=int(epochs),
                  bounds=dict(settings["bounds"]), data_dir=data_dir, seed=int(seed), data_seed=int(settings["seed"]),
                  checkpoint=str(checkpoint))
    fields.update(overrides)
    return TrainSpec(**fields)


# ---------------------------------------------------------------------- storing and telling
def store_values(trial: optuna.Trial, result: Mapping[str, Any], constraints: Sequence[Any]) -> None:
    """Every value of ``result`` as a user attribute of the running ``trial``, its constraint violations
    and ``feasible`` (the budget search stores each rung's values as they come, and tells at the end)."""
    for key, value in result.items():
        trial.set_user_attr(key, jsonable(value))
    for c in constraints:  # read by NSGA-II/TPE and the dashboard (<= 0: satisfied)
        trial.set_constraint(str(c), c.violation(result))
    trial.set_user_attr(keys.FEASIBLE, all(c.violation(result) <= 0 for c in constraints))


def tell_values(study: optuna.Study, trial: optuna.Trial, result: Mapping[str, Any], objectives: Sequence[Any]) -> list[float]:
    """Tell Optuna the trial's objective values (undefined ones: the worst of their direction)."""
    values = [worst_if_undefined(result.get(o.key), o.direction) for o in objectives]
    undefined = [str(o) for o, v in zip(objectives, values) if not math.isfinite(v)]
    if undefined:
        trial.set_user_attr(keys.UNDEFINED, undefined)
    study.tell(trial, values)
    return values


def tell_failure(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr(keys.FAIL_REASON, reason[:2000])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


# ---------------------------------------------------------------------- the lifecycle of one driver
class Lifecycle:
    """The trials of one driver on ``study`` (module docstring). ``settings`` is a resolved
    :class:`~nas.search.SearchConfig` (seed, threads); ``heartbeat`` claims every asked trial."""

    def __init__(self, study: optuna.Study, space: Any, settings: Any, objectives: Sequence[Any],
                 constraints: Sequence[Any], heartbeat: Any = None) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.objectives, self.constraints = list(objectives), list(constraints)
        self.heartbeat = heartbeat
        self.running: dict[int, Candidate] = {}
        self.invalid = 0  # sampled configs the space rejected (told FAIL)

    # ---- ask
    def ask(self, target: int | None = None, attrs: Mapping[str, Any] | None = None,
            tries: int = 20) -> Candidate | None:
        """A new candidate (asked, claimed, sampled, recorded); None when the study already has ``target``
        trials complete or running (the surplus trial is given back) or the space rejected ``tries``
        samples in a row. ``attrs`` are extra user attributes to record (the budget search's rung)."""
        from .ownership import trial_seed

        for _ in range(tries):
            trial = self.study.ask()
            if self.heartbeat is not None:
                self.heartbeat.claim(trial)
            if target is not None and self._surplus(trial.number, target):
                self._release(trial.number)
                self._give_back(trial, "surplus: the study already had its target of trials complete or running "
                                       "(another driver asked them first)")
                return None
            try:
                config = self.space.sample(trial)
            except ConfigError as exc:  # a sampled combination the space rejects
                self._release(trial.number)
                tell_failure(self.study, trial, f"invalid config: {exc}")
                self.invalid += 1
                continue
            seed = trial_seed(trial, self.settings.seed)
            for key, value in {keys.CONFIG: config, keys.SEED: seed, keys.THREADS: self.settings.threads,
                               **(attrs or {})}.items():
                trial.set_user_attr(key, value)
            cand = Candidate(trial.number, trial, config, seed)
            self.running[trial.number] = cand
            return cand
        return None

    def adopt(self, number: int) -> Candidate:
        """Take over a RUNNING trial of this study (a resumed budget search continues its candidates):
        claim it and rebuild its handle from its stored config and seed."""
        frozen = self.study._storage.get_trial(self.study._storage.get_trial_id_from_study_id_trial_number(
            self.study._study_id, number))
        trial = optuna.Trial(self.study, frozen._trial_id)
        if self.heartbeat is not None:
            self.heartbeat.claim(trial)
        cand = Candidate(number, trial, dict(frozen.user_attrs[keys.CONFIG]), int(frozen.user_attrs[keys.SEED]))
        self.running[number] = cand
        return cand

    def active(self) -> int:
        """Trials of the study complete or running (all drivers)."""
        return len(self.study.get_trials(deepcopy=False, states=_ACTIVE))

    # ---- record and tell
    def store(self, number: int, result: Mapping[str, Any]) -> None:
        store_values(self.running[number].trial, result, self.constraints)

    def set(self, number: int, key: str, value: Any) -> None:
        self.running[number].trial.set_user_attr(key, jsonable(value))

    def complete(self, number: int, result: Mapping[str, Any], store: bool = True) -> bool | None:
        """Store ``result`` (unless already stored) and tell the objective values. True when told; False
        when a value cannot be told (the trial is failed with the reason); None when another driver
        already finished it (it took this driver for gone; its retry reruns the trial): not this
        driver's result to count."""
        cand = self.running.pop(number)
        self._release(number)
        try:
            try:
                if store:
                    store_values(cand.trial, result, self.constraints)
                tell_values(self.study, cand.trial, result, self.objectives)
                return True
            except ValueError as exc:
                tell_failure(self.study, cand.trial, str(exc))
                return False
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %d was failed as stale by another driver; its retry reruns it", number)
            return None

    def fail(self, number: int, reason: str) -> bool:
        """Tell the trial FAIL with ``reason``; False when another driver already finished it."""
        cand = self.running.pop(number)
        self._release(number)
        try:
            tell_failure(self.study, cand.trial, reason)
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            logger.warning("trial %d was failed as stale by another driver; its retry reruns it", number)
            return False

    # ---- internals
    def _release(self, number: int) -> None:
        if self.heartbeat is not None:
            self.heartbeat.release(number)

    def _surplus(self, number: int, target: int) -> bool:
        """Whether trial ``number`` is beyond the target: ``target`` trials numbered below it are already
        complete or running (other drivers on the same study asked them first)."""
        return sum(1 for t in self.study.get_trials(deepcopy=False, states=_ACTIVE) if t.number < number) >= target

    def _give_back(self, trial: optuna.Trial, reason: str) -> None:
        """Close a trial this driver will not run (PRUNED); an enqueued retry it had popped is enqueued
        again, so no other driver loses it."""
        if trial.user_attrs.get(keys.RETRY_OF) is not None:
            self.study.enqueue_trial(trial.params, user_attrs={k: trial.user_attrs[k] for k in (keys.RETRY_OF, keys.SEED)
                                                               if k in trial.user_attrs})
        trial.set_user_attr(keys.PRUNED_REASON, reason)
        self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
