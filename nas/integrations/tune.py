"""A Ray Tune scheduler that stops candidates by gradient evidence, then halves on your metric.

Two added lines turn a Tune trainable into a gradient-scheduled one (``docs/ray-tune.md``)::

    from nas.integrations.tune import GradientScheduler, report_gradients

    def trainable(config):
        model = build(config)
        report_gradients(model, next(iter(loader)), lr=config["lr"], metrics={"acc": 0.0})   # iteration 0
        for epoch in range(10):
            train_one_epoch(model, loader, config)
            tune.report({"acc": evaluate(model)})

    tune.Tuner(trainable, param_space=space,
               tune_config=tune.TuneConfig(scheduler=GradientScheduler(metric="acc", mode="max", max_t=10),
                                           num_samples=50)).fit()

* :func:`report_gradients` scores the untrained model on one batch (the rung-0 metrics of the budget search,
  :func:`nas.integrations.gate.rung0_values`: cost <= 2 training steps) and reports the values as
  ``gradnas/<name>`` at the trial's first iteration.
* :class:`GradientScheduler` stops a candidate at that report when its combined gradnas score is below the
  ``quantile`` of the earlier candidates' scores (after ``warmup`` candidates), and afterwards runs
  asynchronous successive halving on the user's metric (Ray's ``ASHAScheduler`` rule), or on several metrics
  by non-dominated rank. The decisions are :class:`nas.integrations.tune_rungs.Promotions`, plain code a
  replay can drive without Ray.

With ``time_attr="training_iteration"`` (the default) the gradient report does not count: a trial's time is
the number of results after it, so ``grace_period=1`` is its first epoch. Works with any searcher
(``OptunaSearch``, ``BasicVariantGenerator``, ...): the gradient result carries your metric's value before
training (``metrics=``; Tune requires every result to carry the metric), which a searcher sees as the first
intermediate value and, for a trial stopped at once, as its final value.
"""

from __future__ import annotations

import logging
import pickle
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch.nn.functional as F
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from torch import nn

from objectives.combine import DERIVED_INPUTS, Feature

from .gate import rung0_values
from .tune_rungs import CONTINUE, MODES, STOP, Promotions

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["PREFIX", "GradientScheduler", "report_gradients"]

logger = logging.getLogger(__name__)

#: Result keys of the rung-0 values: ``gradnas/<name>``.
PREFIX = "gradnas/"
_ACTION = {CONTINUE: TrialScheduler.CONTINUE, STOP: TrialScheduler.STOP}


def report_gradients(model: nn.Module, batch: Sequence[Any], *, lr: float | None = None,
                     batch_size: int | None = None, metrics: Mapping[str, float] | None = None,
                     loss_fn: Any = F.cross_entropy, **options: Any) -> dict[str, float]:
    """Score the untrained ``model`` on one batch and report the values to Tune (call it before training).

    Args:
        model: the candidate network, built and on its device.
        batch: ``(inputs, targets)``, one batch of the training data (a few dozen examples suffice).
        lr: the candidate's learning rate (None: the scheduler reads it from the trial's config, ``lr_key``).
        batch_size: its training batch size (None: ``len(inputs)``; pass it when the search varies it).
        metrics: your Tune metric(s) before training, e.g. ``{"acc": 0.1}`` (chance) or the initial loss:
            Tune requires every result to carry the metric the scheduler and searcher use.
        loss_fn: mean-reduced loss (default cross-entropy).
        **options: probe options of :func:`objectives.score` (``seed``, ``bn_mode``, ...).

    Returns:
        The reported rung-0 values, without the prefix.

    Raises:
        TypeError: ``batch`` is not an ``(inputs, targets)`` pair, or ``model`` not an ``nn.Module``;
        ValueError: a bad batch, ``lr`` or ``batch_size``.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be an (inputs, targets) pair, got {type(batch).__name__}")
    values = rung0_values(model, batch[0], batch[1], lr=lr, batch_size=batch_size, loss_fn=loss_fn, **options)
    if lr is None:  # the scheduler takes it from the trial's config: drop what the placeholder lr = 1 gave
        values = {k: v for k, v in values.items() if k != "lr" and "lr" not in DERIVED_INPUTS.get(k, ())}
    from ray import tune

    tune.report({**{PREFIX + k: v for k, v in values.items()}, **dict(metrics or {})})
    return values


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


class GradientScheduler(FIFOScheduler):
    """Stop candidates at iteration 0 by gradient evidence; asynchronous successive halving afterwards.

    Args:
        metric: the metric to halve on, or a list of metrics (decided by non-dominated rank); None: the
            ``tune.TuneConfig`` one.
        mode: ``"min"`` / ``"max"``, or one per metric.
        time_attr: the result's time attribute (monotonic): ``training_iteration`` (default; the gradient
            report not counted), ``epoch`` if you report one, ``time_total_s``, ...
        max_t: a trial is stopped once its time reaches this.
        grace_period: the first rung (no trial is stopped by its metric before this time).
        reduction_factor: rungs at ``grace_period * reduction_factor**k``; about ``1/reduction_factor`` of
            the trials pass each.
        quantile: at iteration 0 a candidate is stopped when its combined score is below this quantile of
            the earlier candidates' (in [0, 1]); None: no gate (plain ASHA on the metric).
        warmup: candidates that report before the gate stops anything.
        features: the combined score's features (default: the rung-0 set,
            :data:`objectives.combine.BUDGET_INIT_FEATURES`).
        lr_key: the trial config's key of the learning rate, read when :func:`report_gradients` was not
            given ``lr`` (no such key: ``lr`` counts as 1 for every trial).

    Raises:
        ValueError, TypeError: bad settings (one line), before any trial runs.
    """

    def __init__(self, metric: str | Sequence[str] | None = None, mode: str | Sequence[str] | None = None, *,
                 time_attr: str = "training_iteration", max_t: float = 100, grace_period: float = 1,
                 reduction_factor: float = 3, quantile: float | None = 0.5, warmup: int = 5,
                 features: Sequence[Feature] | None = None, lr_key: str = "lr") -> None:
        super().__init__()
        self._supports_buffered_results = False  # decide on each result as it comes
        if not isinstance(time_attr, str) or not time_attr:
            raise TypeError(f"time_attr must be a result key (a string), got {time_attr!r}")
        self._settings = dict(grace_period=grace_period, reduction_factor=reduction_factor, max_t=max_t,
                              quantile=quantile, warmup=warmup, features=features)
        Promotions(["max"], **self._settings)  # check the settings now, not at the first trial
        self._time_attr = time_attr
        self._lr_key = lr_key
        self._metrics: list[str] | None = None
        self._modes: list[str] | None = None
        self._promotions: Promotions | None = None
        self._offset: dict[str, float] = {}  # trial id -> training_iteration of its gradient report
        self._set(_names(metric), _names(mode))

    # ------------------------------------------------------------------ metric and mode
    def _set(self, metrics: list[str] | None, modes: list[str] | None) -> None:
        if modes is not None and any(m not in MODES for m in modes):
            raise ValueError(f"mode must be 'min' or 'max' (one per metric), got {modes!r}")
        if metrics is not None:
            if not metrics or not all(isinstance(m, str) and m for m in metrics):
                raise TypeError(f"metric must be a result key or a list of them, got {metrics!r}")
            self._metrics = metrics
        if modes is not None:
            self._modes = modes
        if self._metrics and self._modes:
            if len(self._modes) == 1 and len(self._metrics) > 1:
                self._modes = self._modes * len(self._metrics)
            if len(self._modes) != len(self._metrics):
                raise ValueError(f"{len(self._metrics)} metrics {self._metrics} but {len(self._modes)} modes")
            self._promotions = Promotions(self._modes, **self._settings)
        # Tune checks that every result carries ``scheduler.metric``: the one metric; several are checked here
        self._metric = self._metrics[0] if self._metrics and len(self._metrics) == 1 else None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """Take ``tune.TuneConfig``'s metric and mode when the scheduler has none (False on a conflict, which
        Tune reports)."""
        if (self._metrics and metric) or (self._modes and mode):
            return False
        self._set(_names(metric), _names(mode))
        return True

    @property
    def promotions(self) -> Promotions | None:
        """The decisions so far (gate decisions, rungs), for inspection."""
        return self._promotions

    # ------------------------------------------------------------------ Tune's callbacks
    def on_trial_add(self, tune_controller: Any, trial: "Trial") -> None:
        if self._promotions is None:
            raise ValueError(f"{type(self).__name__} needs a metric and a mode (got {self._metrics!r}, "
                             f"{self._modes!r}): pass them to the scheduler or to tune.TuneConfig()")

    def on_trial_result(self, tune_controller: Any, trial: "Trial", result: dict) -> str:
        p = self._promotions
        rung0 = {k[len(PREFIX):]: v for k, v in result.items() if k.startswith(PREFIX)}
        if rung0:
            if self._time_attr == "training_iteration":
                self._offset.setdefault(trial.trial_id, float(result.get("training_iteration", 1)))
            return _ACTION[p.gate(trial.trial_id, self._with_config(rung0, trial.config))]
        point = self._point(trial, result)
        return TrialScheduler.CONTINUE if point is None else _ACTION[p.on_result(trial.trial_id, *point)]

    def on_trial_complete(self, tune_controller: Any, trial: "Trial", result: dict) -> None:
        if result and not any(k.startswith(PREFIX) for k in result):
            point = self._point(trial, result)
            if point is not None:
                self._promotions.on_complete(trial.trial_id, *point)

    def _point(self, trial: "Trial", result: Mapping[str, Any]) -> tuple[float, list[float]] | None:
        """(time, metric values) of a result, or None when it lacks one of them (no decision, as ASHA)."""
        if self._time_attr not in result or any(m not in result for m in self._metrics):
            return None
        t = float(result[self._time_attr]) - self._offset.get(trial.trial_id, 0.0)
        return t, [result[m] for m in self._metrics]

    def _with_config(self, values: dict[str, Any], config: Mapping[str, Any] | None) -> dict[str, Any]:
        """The reported values plus the config's learning rate where the report lacks it (else 1)."""
        out = dict(values)
        if "lr" not in out:
            lr = (config or {}).get(self._lr_key)
            out["lr"] = float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else 1.0
        return out

    def debug_string(self) -> str:
        if self._promotions is None:
            return "Using GradientScheduler (no metric yet)."
        return f"Using GradientScheduler: {self._promotions.debug_string()}"

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))
