"""The report of a budget search's in-study calibration: what the rung-0 score learned from the study's labels.

With ``--calibrate`` the asynchronous climb refits the rung-0 score on the labels it produces (the early rung's
50-step losses, the short rung's accuracies: :mod:`nas.search.rung0`) and stores the last fit on the study
(:data:`~nas.search.keys.CALIBRATION`: the learned features, the flipped directions, the labels per kind,
when it was last refit). :func:`calibration_text` says it in a few lines: "rung-0 score calibrated on N
labels: ... flipped ...", or "not calibrated: N labels < minimum M". None when the search did not calibrate.
"""

from __future__ import annotations

from typing import Any, Mapping

import optuna

from ..search.keys import CALIBRATION
from ..search.plan import format_duration

__all__ = ["calibration_text", "LABEL_NAMES"]

#: How each kind of label is named in the text.
LABEL_NAMES = {"train_loss_last": "early-rung 50-step loss(es)", "short_test_acc": "short-rung accuracy(ies)",
               "short_test_loss": "short-rung test loss(es)"}


def _features(features: Any) -> str:
    return " + ".join(f"{f['key']} ({f['direction'][:3]}) x {float(f['weight']):.3g}" for f in features or []) or "-"


def calibration_text(study: optuna.Study) -> str | None:
    """The calibration section of the report, or None when no calibration is stored on ``study``."""
    desc = study.user_attrs.get(CALIBRATION)
    if not isinstance(desc, Mapping):
        return None
    labels = ", ".join(f"{n} {LABEL_NAMES.get(k, k)}" for k, n in (desc.get("labels") or {}).items()) or "no labels"
    n = int(desc.get("n_labels") or 0)
    head = "In-study calibration of the rung-0 score (--calibrate):"
    if not desc.get("refit"):
        reason = desc.get("reason") or f"{n} labels"
        return f"{head}\n  not calibrated: {reason} ({labels}); rung 0 was ranked by the prior {_features(desc.get('prior'))}"
    at = desc.get("refit_at") or {}
    when = (f"last refit after {format_duration(float(at['elapsed_s']))} of the search, ranking "
            f"{at.get('cohort', '?')} rung-0 candidates" if "elapsed_s" in at else "")
    flipped = ", ".join(desc.get("flipped") or []) or "none"
    penalty = desc.get("penalty")
    return "\n".join([
        f"{head}",
        f"  rung-0 score calibrated on {n} labels ({labels}; the prior counts as "
        f"{penalty:g} labels)" if isinstance(penalty, (int, float)) else f"  rung-0 score calibrated on {n} labels ({labels})",
        f"  learned: {_features(desc.get('features'))}",
        f"  prior:   {_features(desc.get('prior'))}",
        f"  flipped: {flipped}" + (f"; {when}" if when else ""),
    ])
