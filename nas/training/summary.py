"""One training history summarized as the ``val_*`` values every driver stores (validation, the budget
search's training rungs, the lab); see :mod:`nas.validate` for what each value means."""

from __future__ import annotations

import math
from typing import Any

from .recipe import jsonable

__all__ = ["summarize", "CONVERGED_FRACTION"]

#: Converged: final train loss < CONVERGED_FRACTION * ln(num_classes).
CONVERGED_FRACTION = 0.5


def summarize(history: dict[str, Any], selected_by: str) -> dict[str, Any]:
    """The ``val_*`` values of one training history (see the module docstring for each)."""
    accs = [a for a in history["test_acc"] if a is not None]
    losses = history["train_loss"]
    num_classes = int(history.get("num_classes") or 10)
    threshold = CONVERGED_FRACTION * math.log(num_classes)
    diverged = bool(history.get("diverged"))
    if diverged:
        final_acc = history.get("final_test_acc")
        final_loss = None
    else:
        final_acc = accs[-1] if accs else None
        final_loss = losses[-1] if losses else None
    all_accs = accs + ([final_acc] if diverged and final_acc is not None else [])
    best = max(all_accs) if all_accs else None
    to_90 = None
    if best is not None and accs:
        to_90 = next((i + 1 for i, a in enumerate(accs) if a >= 0.9 * best), None)
    converged = (not diverged and final_loss is not None and math.isfinite(final_loss) and final_loss < threshold)
    return jsonable({
        "val_final_acc": final_acc,
        "val_best_acc": best,
        "val_final_train_loss": final_loss,
        "val_loss_curve": list(losses),
        "val_test_loss_curve": list(history["test_loss"]),
        "val_acc_curve": list(history["test_acc"]),
        "val_epoch_times": [round(t, 3) for t in history["epoch_time"]],
        "val_epochs_to_90": to_90,
        "val_converged": bool(converged),
        "val_converged_threshold": threshold,
        "val_diverged": diverged,
        "val_diverged_epoch": history.get("diverged_epoch"),
        "val_epochs": int(history["epochs"]),
        "val_selected_by": selected_by,
        "val_first_batch_loss": history.get("first_batch_loss"),
        "val_time": float(history.get("wall_time") or 0.0),
        "val_device": history.get("device"),
        "val_amp": history.get("amp"),
        **({"val_task": "regression", "val_final_test_loss": (history.get("final_test_loss") if diverged else
            (history["test_loss"][-1] if history["test_loss"] else None))} if history.get("task") == "regression" else {}),
    })
