"""The gradient gate shared by the Optuna and Ray Tune integrations (pure: no Optuna, no Ray).

Two questions, answered once:

1. **What are a candidate's rung-0 values?** :func:`rung0_values` scores the model on one batch with the
   metrics that the budget search's rung-0 feature set reads (:data:`objectives.combine.BUDGET_INIT_FEATURES`:
   chosen on the proxy lab under a cost cap of 2 training steps) and adds the config values it needs
   (``lr``, ``batch_size``) and its derived features (``relative_step = lr * grad_weight_ratio``). After a
   few training steps, :func:`early_values` adds what the ``early`` set reads from the loss curve
   (``train_loss_last``: the mean of the last 5 losses, as :mod:`nas.evaluate` computes it).
2. **Where does this candidate stand among the earlier ones?** :func:`decide` computes the combined score
   (:func:`objectives.combine.combined_score`: summed log-ranks over the cohort ``earlier + [candidate]``,
   as :func:`nas.search.ranking.cohort_scores` ranks a budget search's rung) and compares the candidate's
   score with the ``quantile`` of the earlier candidates' scores in that same ranking: below it, the
   candidate is pruned, once at least ``warmup`` earlier candidates exist.

The rule, in full (``s`` = combined scores of the ``n + 1`` rows, the candidate last)::

    threshold = numpy.quantile(s[:n], quantile)        # linear interpolation, NumPy's default
    prune     = n >= warmup and s[n] < threshold

A candidate whose value is missing or not finite (a dead network) ranks last on that feature. An unknown
``lr`` counts as 1 for every candidate (the relative step then ranks as ``grad_weight_ratio``); an
unknown ``batch_size`` is the scored batch's size.

Example::

    from nas.integrations.gate import decide, rung0_values

    values = rung0_values(model, inputs, targets, lr=0.05, batch_size=128)
    verdict = decide(values, earlier_values, quantile=0.5, warmup=5)
    if verdict.prune:
        ...  # stop the candidate before training it
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch.nn.functional as F
from torch import Tensor, nn

import objectives
from objectives.combine import (
    BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, CONFIG_COLUMNS, DERIVED_INPUTS, PHASES, Feature, combined_score,
    derived_values, feature_inputs,
)

__all__ = ["PHASES", "Decision", "phase_features", "rung0_values", "early_values", "decide"]

#: Losses at the end of the curve averaged into ``train_loss_last`` (as :mod:`nas.evaluate` does).
LOSS_TAIL = 5


def phase_features(phase: str) -> tuple[Feature, ...]:
    """The feature set of a phase: ``"init"`` -> the rung-0 set (no training step), ``"early"`` -> the rung-1 set
    (the early steps' ``train_loss_last`` plus the rung-0 set).

    Raises:
        ValueError: an unknown phase.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return BUDGET_INIT_FEATURES if phase == "init" else BUDGET_EARLY_FEATURES


def _metric_names(features: Sequence[Feature]) -> list[str]:
    """The registered metrics a feature set reads (config columns, derived and curve keys left out)."""
    registered = set(objectives.list_metrics())
    return [k for k in feature_inputs(features) if k in registered and k not in CONFIG_COLUMNS]


def rung0_values(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    *,
    lr: float | None = None,
    batch_size: int | None = None,
    loss_fn: Any = F.cross_entropy,
    features: Sequence[Feature] | None = None,
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """The values the gate ranks a candidate by, measured on one batch (the model is left unchanged).

    Args:
        model: the candidate network, built (and on its device) but not trained.
        inputs, targets: one batch (a few dozen examples suffice).
        lr: the candidate's learning rate (None: 1, the same for every candidate).
        batch_size: its training batch size (None: ``len(inputs)``).
        loss_fn: mean-reduced loss (default cross-entropy).
        features: the feature set whose metrics to score (default: the rung-0 set,
            :data:`~objectives.combine.BUDGET_INIT_FEATURES`, whose cost is <= 2 training steps).
        seed: the probe's seed.
        **options: probe and metric options passed to :func:`objectives.score`.

    Returns:
        ``{name: float}``: each metric (NaN where undefined for this network), ``lr``, ``batch_size`` and
        the derived features the values allow (``relative_step``, ...).

    Raises:
        ValueError: a bad batch or loss (see :func:`objectives.score`), a non-positive ``lr`` or ``batch_size``.
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    lr = 1.0 if lr is None else _positive("lr", lr)
    batch_size = int(len(inputs)) if batch_size is None else int(_positive("batch_size", batch_size))
    names = _metric_names(features if features is not None else BUDGET_INIT_FEATURES)
    scores = objectives.score(model, inputs, targets, metrics=names, loss_fn=loss_fn, seed=seed,
                              on_error="nan", **options) if names else {}
    values = {k: float(v) for k, v in scores.items()}
    values.update(lr=lr, batch_size=float(batch_size))
    values.update(derived_values(values, suffixes=("",)))
    return values


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def early_values(loss_curve: Sequence[float]) -> dict[str, float]:
    """What the ``early`` set reads from the training losses of the first steps: ``train_loss_last``, the mean
    of the last :data:`LOSS_TAIL` losses (NaN when one of them is not finite: a diverging run ranks last).

    Raises:
        ValueError: an empty curve; TypeError: values that are not numbers.
    """
    try:
        curve = [float(v) for v in loss_curve]
    except (TypeError, ValueError):
        raise TypeError("loss_curve must be a sequence of numbers (the training loss of each step)") from None
    if not curve:
        raise ValueError("loss_curve is empty: give the training loss of each step taken so far")
    tail = curve[-LOSS_TAIL:]
    return {"train_loss_last": float(np.mean(tail)) if all(map(math.isfinite, tail)) else math.nan}


@dataclasses.dataclass(frozen=True)
class Decision:
    """Where a candidate stands among the earlier ones, and whether to prune it.

    Attributes:
        prune: True when ``earlier >= warmup`` and ``score < threshold``.
        score: the candidate's combined score in the cohort ``earlier + [candidate]`` (higher is better, <= 0).
        threshold: the ``quantile`` of the earlier candidates' scores in that ranking (NaN with none).
        position: fraction of earlier candidates whose score is below the candidate's (ties count half).
        earlier: how many earlier candidates were ranked.
        phase: ``"init"`` or ``"early"``.
    """

    prune: bool
    score: float
    threshold: float
    position: float
    earlier: int
    phase: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers become None): for a trial's user attributes or a Tune result."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def decide(
    values: Mapping[str, Any],
    earlier: Sequence[Mapping[str, Any]],
    *,
    quantile: float = 0.5,
    warmup: int = 5,
    phase: str = "init",
    features: Sequence[Feature] | None = None,
) -> Decision:
    """Rank a candidate among earlier ones by the combined score and apply the quantile rule (module docstring).

    Args:
        values: the candidate's values (:func:`rung0_values`, plus :func:`early_values` at ``"early"``).
        earlier: the earlier candidates' values, in any order (the rows need the same keys; a missing key
            ranks that row last on the features reading it).
        quantile: in [0, 1]: prune below this quantile of the earlier scores (0: only a candidate below
            every earlier one; use a large ``warmup`` never to prune).
        warmup: no pruning before this many earlier candidates.
        phase: ``"init"`` or ``"early"``: the feature set when ``features`` is None (:func:`phase_features`).
        features: override the feature set.

    Raises:
        ValueError: a quantile outside [0, 1], a negative warmup, an unknown phase, an empty feature set,
            or ``values`` lacking every input of a feature.
    """
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float)) or not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be a number in [0, 1], got {quantile!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
    chosen = tuple(phase_features(phase) if features is None else features)
    if not chosen:
        raise ValueError("decide needs at least one feature")
    missing = [f.key for f in chosen if not _has_inputs(values, f.key)]
    if missing:
        raise ValueError(f"the candidate's values lack the inputs of feature(s) {missing} "
                         f"(has: {sorted(values)}); score it with rung0_values (and early_values at 'early')")
    rows = [_row(r, chosen) for r in earlier] + [_row(values, chosen)]
    scores = combined_score(pd.DataFrame(rows), phase, chosen).to_numpy()
    n = len(rows) - 1
    mine, before = float(scores[n]), scores[:n]
    threshold = float(np.quantile(before, quantile)) if n else math.nan
    position = float((np.sum(before < mine) + 0.5 * np.sum(before == mine)) / n) if n else math.nan
    return Decision(prune=bool(n >= warmup and n > 0 and mine < threshold), score=mine, threshold=threshold,
                    position=position, earlier=n, phase=phase)


def _has_inputs(values: Mapping[str, Any], key: str) -> bool:
    return key in values or all(k in values for k in DERIVED_INPUTS.get(key.split("@")[0], (key,)))


def _row(values: Mapping[str, Any], features: Sequence[Feature]) -> dict[str, float]:
    """One cohort row: every feature's value (a stored one, else derived from the row's inputs), NaN if absent."""
    out: dict[str, float] = {}
    derived = derived_values({k: v for k, v in values.items() if v is not None}, suffixes=("",))
    for f in features:
        v = values.get(f.key, derived.get(f.key))
        out[f.key] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
    return out
