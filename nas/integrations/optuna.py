"""Prune Optuna trials by their gradients, before they have trained: :class:`GradientPruner` and :func:`check`.

Two added lines turn a plain objective into a pruned one (``docs/optuna.md``)::

    import optuna
    from nas.integrations.optuna import GradientPruner, check

    def objective(trial):
        model = build(trial)                                  # your model, your sampler's parameters
        check(trial, model, (inputs, targets))                # added: raises optuna.TrialPruned
        return train_and_evaluate(model)

    study = optuna.create_study(direction="maximize", pruner=GradientPruner())   # added

:func:`check` scores the model on one batch with gradnas's rung-0 values (:func:`nas.integrations.gate.rung0_values`:
the budget search's rung-0 feature set, cost <= 2 training steps), stores them as the trial's user attribute
``gradnas:init``, ranks the candidate among every other trial of the study that stored them (read from the
storage, so several processes on one RDB storage share their candidates), and raises
:class:`optuna.TrialPruned` when its combined score falls below the pruner's quantile of theirs
(:func:`nas.integrations.gate.decide`; the verdict is stored as ``gradnas:init:decision``). Called again with
``loss_curve=`` (the training losses of the first K steps), it does the same at phase ``"early"``.

The decision is made in gradnas's code, never through ``Trial.report``, so it works in multi-objective studies
(where ``Trial.report`` raises) and with any sampler: a trial pruned this way has no intermediate values, which
TPE ranks among its worse trials. ``GradientPruner(then=...)`` keeps another pruner (e.g.
``HyperbandPruner``) for the trials that pass: Optuna's ``trial.report``/``trial.should_prune`` go to it
(single-objective studies only, as in Optuna).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import optuna
import torch.nn.functional as F
from torch import Tensor, nn

from objectives.combine import Feature

from .gate import PHASES, Decision, decide, early_values, phase_features, rung0_values

__all__ = ["GradientPruner", "check", "values_key", "decision_key", "LR_PARAMS", "BATCH_SIZE_PARAMS"]

logger = logging.getLogger(__name__)

#: Names of a trial's parameters read as its learning rate / batch size when :func:`check` is not given them.
LR_PARAMS = ("lr", "learning_rate")
BATCH_SIZE_PARAMS = ("batch_size",)


def values_key(phase: str) -> str:
    """The user attribute holding a trial's gate values at ``phase`` (``gradnas:init``, ``gradnas:early``)."""
    return f"gradnas:{phase}"


def decision_key(phase: str) -> str:
    """The user attribute holding the gate's verdict at ``phase`` (:meth:`Decision.as_dict` plus ``ranked_with``:
    the numbers of the trials the candidate was ranked among)."""
    return f"gradnas:{phase}:decision"


class GradientPruner(optuna.pruners.BasePruner):
    """Prune a candidate whose gradnas score falls below a quantile of the study's earlier candidates.

    The decision is taken by :func:`check`, which the objective calls after building the model; this pruner
    holds its settings (and, through ``then``, a pruner for Optuna's own ``trial.should_prune``).

    Args:
        quantile: in [0, 1]: prune a candidate whose combined score is below this quantile of the other
            candidates' scores (0.5: the worse half goes, as ``MedianPruner``).
        warmup: no pruning until this many other candidates have been scored at that phase (as
            ``n_startup_trials``).
        phase: ``"init"``, ``"early"`` or None: at which :func:`check` calls to prune (``"init"``: the call
            without a loss curve; ``"early"``: the call with one; None: both). Values are stored at every call.
        then: a pruner that judges the survivors from their reported intermediate values
            (``trial.should_prune``), e.g. ``optuna.pruners.HyperbandPruner()``; None: ``should_prune`` is False.
        features: override the feature set of the judged phase(s) (default: the rung-0 / rung-1 sets of the budget
            search, :func:`nas.integrations.gate.phase_features`).
        **score_options: probe and metric options passed to :func:`objectives.score` (``bn_mode``, ``seed``, ...).

    Raises:
        ValueError: a quantile outside [0, 1], a negative warmup, an unknown phase.
        TypeError: ``then`` is not an Optuna pruner.

    Example::

        study = optuna.create_study(directions=["maximize", "minimize"], pruner=GradientPruner(quantile=0.5))
    """

    def __init__(
        self,
        quantile: float = 0.5,
        warmup: int = 5,
        phase: str | None = None,
        then: optuna.pruners.BasePruner | None = None,
        features: Sequence[Feature] | None = None,
        **score_options: Any,
    ) -> None:
        if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be a number in [0, 1], got {quantile!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
        if phase is not None and phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES} or None, got {phase!r}")
        if then is not None and not isinstance(then, optuna.pruners.BasePruner):
            raise TypeError(f"then must be an optuna pruner, got {type(then).__name__}")
        if features is not None and not tuple(features):
            raise ValueError("features must name at least one Feature")
        self.quantile = float(quantile)
        self.warmup = warmup
        self.phase = phase
        self.then = then
        self.features = tuple(features) if features is not None else None
        self.score_options = dict(score_options)

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Optuna's hook for reported intermediate values: the ``then`` pruner's verdict (False without one).
        The gradient decision is :func:`check`'s."""
        return bool(self.then.prune(study, trial)) if self.then is not None else False

    def features_of(self, phase: str) -> tuple[Feature, ...]:
        """The feature set ranked at ``phase``."""
        return self.features if self.features is not None else phase_features(phase)

    def decide(self, study: optuna.Study, number: int, values: dict[str, Any], phase: str) -> tuple[Decision, list[int]]:
        """Rank trial ``number``'s ``values`` among the other trials of ``study`` that stored theirs at ``phase``;
        returns the verdict and the numbers of those trials."""
        key = values_key(phase)
        others = [t for t in study.get_trials(deepcopy=False)
                  if t.number != number and isinstance(t.user_attrs.get(key), dict)]
        verdict = decide(values, [t.user_attrs[key] for t in others], quantile=self.quantile, warmup=self.warmup,
                         phase=phase, features=self.features_of(phase))
        return verdict, [t.number for t in others]

    def judges(self, phase: str) -> bool:
        """Whether :func:`check` decides at ``phase`` (else it only stores the values)."""
        return self.phase is None or self.phase == phase


def _param(trial: optuna.Trial, names: Sequence[str]) -> Any:
    return next((trial.params[n] for n in names if n in trial.params), None)


def _jsonable(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (float(v) if math.isfinite(v) else None) for k, v in values.items()}


def check(
    trial: optuna.Trial,
    model: nn.Module,
    batch: tuple[Tensor, Tensor],
    *,
    loss_curve: Sequence[float] | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    loss_fn: Any = F.cross_entropy,
    pruner: GradientPruner | None = None,
) -> Decision | None:
    """Score a candidate by its gradients, store the values on the trial, and prune it if it ranks low.

    Call it in the objective after building the model (phase ``"init"``), and optionally again after K
    training steps with ``loss_curve`` (phase ``"early"``: the mean of the last 5 losses joins the score).

    Args:
        trial: the running trial (single- or multi-objective study, any sampler and storage).
        model: the candidate network (left unchanged; the batch is moved to its device).
        batch: ``(inputs, targets)``: one batch of training data (a few dozen examples suffice; use the same
            size for every trial).
        loss_curve: the training losses of the steps taken so far (phase ``"early"``).
        lr: the candidate's learning rate (None: the trial's parameter ``lr`` or ``learning_rate``, else 1
            for every candidate).
        batch_size: its training batch size (None: the trial's parameter ``batch_size``, else ``len(inputs)``).
        loss_fn: mean-reduced loss (default cross-entropy).
        pruner: the settings (None: the study's pruner, which must then be a :class:`GradientPruner`).

    Returns:
        The :class:`~nas.integrations.gate.Decision` for a candidate that goes on (``prune`` False); None at
        a phase the pruner does not judge (``GradientPruner(phase=...)``: the values are stored, no verdict).

    Raises:
        optuna.TrialPruned: the candidate's combined score is below the quantile (after the warm-up).
        TypeError: ``trial`` is not a running ``optuna.Trial``, ``batch`` is not ``(inputs, targets)``, or no
            :class:`GradientPruner` is given or set on the study.
        ValueError: a bad batch, loss, learning rate or batch size.
    """
    if not isinstance(trial, optuna.Trial):
        raise TypeError(f"trial must be the optuna.Trial passed to the objective, got {type(trial).__name__}")
    if pruner is None:
        pruner = trial.study.pruner
    if not isinstance(pruner, GradientPruner):
        raise TypeError(f"the study's pruner is {type(pruner).__name__}: create the study with "
                        "pruner=GradientPruner(...) or pass check(..., pruner=GradientPruner(...))")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError("batch must be a pair (inputs, targets) of tensors")
    inputs, targets = batch
    device = next((p.device for p in model.parameters()), None) if isinstance(model, nn.Module) else None
    if device is not None and isinstance(inputs, Tensor) and isinstance(targets, Tensor):
        inputs, targets = inputs.to(device), targets.to(device)
    phase = "init" if loss_curve is None else "early"
    lr = lr if lr is not None else _param(trial, LR_PARAMS)
    batch_size = batch_size if batch_size is not None else _param(trial, BATCH_SIZE_PARAMS)

    stored = trial.user_attrs.get(values_key("init"))
    if phase == "early" and isinstance(stored, dict):  # the init values of this trial, measured before training
        values = {k: (math.nan if v is None else float(v)) for k, v in stored.items()}
    else:
        values = rung0_values(model, inputs, targets, lr=lr, batch_size=batch_size, loss_fn=loss_fn,
                              features=pruner.features_of(phase), **pruner.score_options)
        if phase == "init":
            trial.set_user_attr(values_key("init"), _jsonable(values))
    if phase == "early":
        values.update(early_values(loss_curve))
        trial.set_user_attr(values_key("early"), _jsonable(values))

    if not pruner.judges(phase):
        return None
    verdict, ranked_with = pruner.decide(trial.study, trial.number, values, phase)
    trial.set_user_attr(decision_key(phase), {**verdict.as_dict(), "ranked_with": ranked_with})
    if verdict.prune:
        logger.info("trial %d pruned at %s: gradnas score %.3f < %.3f (quantile %.2f of %d candidates)",
                    trial.number, phase, verdict.score, verdict.threshold, pruner.quantile, verdict.earlier)
        raise optuna.TrialPruned(f"gradnas score {verdict.score:.3f} below the {pruner.quantile:.2f} quantile "
                                 f"{verdict.threshold:.3f} of {verdict.earlier} candidates at {phase}")
    return verdict
