"""Rung 0's ranking in the budget search: the shipped score (the prior), or that score refit on the labels the
search has produced so far (in-study calibration, :mod:`nas.lab.calibration`).

The asynchronous climb (:mod:`nas.search.budget_async`) ranks the rung-0 candidates again whenever one more
finishes rung 0, while earlier ones already train: by then the early rung has measured some candidates'
50-step loss and the short rung some candidates' accuracy. With ``calibrate`` on (``nas.search(calibrate=True)``,
``--calibrate``), :meth:`nas.search.budget_run.BudgetRun.scores` passes those labels (:func:`study_labels`) to
:func:`rung0_scores`, which refits the prior on them once there are :data:`nas.lab.calibration.MIN_LABELS`;
no paid probe: only candidates the search trains anyway. The synchronous climb ranks rung 0 once, before any
candidate has trained: there it is always the prior. A ladder re-ranks rung 0 only when its rung-0 set grows
(:meth:`nas.search.budget_ladder.Ladder.order`), so labels that arrive after the last rung-0 candidate change
nothing. Later brackets admit their candidates whatever their rung-0 score; their trained candidates are
labels for bracket 0 (``others``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from . import keys
from .ranking import cohort_scores

__all__ = ["rung0_scores", "study_labels", "finite"]


def finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def rung0_scores(rows: list[dict], objectives=(), labels=(), others=(), prior=None,
                 extra=None) -> tuple[list[float], dict | None]:
    """The rung-0 ranking of a cohort (higher is better) and what its in-study calibration learned. The one
    place the budget search ranks rung 0.

    Args:
        rows: the cohort, each a candidate's config merged with its rung-0 values; the scores are relative to
            the rows given (the candidates done at rung 0 so far, or a synchronous rung's whole cohort).
        objectives: the study's objectives (``key``, ``direction``): their non-dominated rank ranks a cohort
            that lacks the score's inputs.
        labels: :class:`nas.lab.calibration.LabelSet` s over the positions of ``rows`` then ``others``: what
            the search has measured of its candidates so far (the early rung's 50-step loss, the short rung's
            accuracy). None given: no calibration (the description is None).
        others: labelled candidates outside the cohort (another bracket's, with their rung-0 values): in the
            fit, not scored.
        prior: the score's feature set (default :data:`objectives.combine.BUDGET_INIT_FEATURES`).
        extra: the keys the refit may weigh besides the prior's (None: the rung-0 pool and free config values
            the rows have, :func:`nas.lab.calibration.extra_features`).

    With at least :data:`nas.lab.calibration.MIN_LABELS` finite labels the cohort is ranked by
    :func:`nas.lab.calibration.calibrate` (the prior's weights and directions refit on the labels, shrunk
    towards the prior); with fewer, or when the rows lack the prior's inputs, exactly by the prior
    (:func:`nas.search.ranking.cohort_scores`), and the description says why (``refit`` False, ``reason``).
    """
    from objectives.combine import BUDGET_INIT_FEATURES, feature_values
    from ..lab.calibration import MIN_LABELS, calibrate, label_count

    prior = tuple(prior) if prior else BUDGET_INIT_FEATURES
    labels = [s for s in labels if s.values]
    if not labels:
        return cohort_scores(rows, "init", prior, objectives), None
    n = label_count(labels)
    desc = {"refit": False, "n_labels": n, "min_labels": MIN_LABELS, "labels": {s.key: len(s.values) for s in labels},
            "n_candidates": len(rows) + len(others), "prior": [dataclasses.asdict(f) for f in prior]}
    if n < MIN_LABELS:
        return cohort_scores(rows, "init", prior, objectives), {**desc, "reason": f"{n} labels < minimum {MIN_LABELS}"}
    table = pd.DataFrame([dict(r) for r in [*rows, *others]])
    try:
        usable = all(np.isfinite(feature_values(table, f.key)).any() for f in prior)
    except KeyError:
        usable = False
    if not usable:
        return (cohort_scores(rows, "init", prior, objectives),
                {**desc, "reason": "the candidates lack the rung-0 score's inputs"})
    cal = calibrate(table, prior, labels, extra=extra)
    return [float(x) for x in cal.scores[: len(rows)]], {**cal.description, "min_labels": MIN_LABELS}


def study_labels(values: dict[int, dict], cohort: list[int], short_epochs: int):
    """The labels a budget search has produced so far, as (label sets, the labelled candidates outside
    ``cohort``): every candidate of ``values`` with a finite early-rung loss (``train_loss_last``, minimized)
    or a test accuracy after the short rung's ``short_epochs`` epochs (``short_test_acc``, maximized; the
    test loss, minimized, for a regression). Positions: ``cohort`` first, then the others in number order."""
    from ..lab.calibration import LabelSet

    pos = {n: i for i, n in enumerate(cohort)}
    others: list[int] = []
    kinds: dict[tuple[str, str], dict[int, float]] = {}
    for n in sorted(values):
        v = values[n]
        got = []
        if finite(v.get("train_loss_last")):
            got.append(("train_loss_last", "minimize", float(v["train_loss_last"])))
        short = _short_label(v, short_epochs)
        if short is not None:
            got.append(short)
        if not got or not isinstance(v.get(keys.CONFIG), dict):
            continue
        if n not in pos:
            pos[n] = len(cohort) + len(others)
            others.append(n)
        for key, direction, x in got:
            kinds.setdefault((key, direction), {})[pos[n]] = x
    return [LabelSet(k, d, vals) for (k, d), vals in kinds.items()], others


def _short_label(v: dict, short_epochs: int) -> tuple[str, str, float] | None:
    """(kind, direction, value) of a trained candidate's result after ``short_epochs`` epochs, or None."""
    i = int(short_epochs) - 1
    if i < 0:
        return None
    accs, losses = v.get("val_acc_curve"), v.get("val_test_loss_curve")
    if isinstance(accs, list) and len(accs) > i and finite(accs[i]):
        return "short_test_acc", "maximize", float(accs[i])
    if isinstance(accs, list) and isinstance(losses, list) and len(losses) > i and finite(losses[i]):
        return "short_test_loss", "minimize", float(losses[i])
    return None
