"""Every registered metric's measured direction on a lab table: the evidence ``objectives`` ships.

``measure(df, lab, other)`` gives ``{metric: {phase: (direction, tau, n, lab, stable)}}`` (the tuple of
:data:`objectives.evidence.MEASURED`); :mod:`nas.lab.data` writes it to ``objectives/data/evidence.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from objectives import registry

from .selection import measured_direction
from .tables import SEARCH_EARLY_STEPS, data_kinds, steps_view

__all__ = ["other_lab_direction", "measure"]

Measured = dict[str, dict[str, tuple[str, float, int, str, "bool | None"]]]


def other_lab_direction(other: pd.DataFrame, metric: str) -> str | None:
    """A metric's measured direction at init on a second lab (an NB201 lab: the data-free column, else the
    mnist5k-input column, else any input's), or None when that lab lacks it."""
    candidates = [metric, f"{metric}[mnist5k]", *[f"{metric}[{d}]" for d in data_kinds(other)]]
    for key in candidates:
        if key in other.columns and np.isfinite(pd.to_numeric(other[key], errors="coerce")).any():
            return measured_direction(other, key)[0]
    return None


def measure(df: pd.DataFrame, lab: str, other: pd.DataFrame | None = None) -> Measured:
    """Every registered metric's measured direction at init (``m``) and after the search's default early
    steps (``m@early``; the table's ``m@50`` columns, :data:`~nas.lab.tables.SEARCH_EARLY_STEPS`) on the
    whole table: (direction, oriented tau rounded to 3 places, n, lab, stable). ``stable`` (init only):
    whether ``other`` (a second lab) measures the same direction at init; None without a second lab or
    where it lacks the metric."""
    out: Measured = {}
    view = steps_view(df, str(SEARCH_EARLY_STEPS))
    for m in registry.names():
        for phase, key, table in (("init", m, df), ("early", f"{m}@early", view)):
            if key not in table.columns or not np.isfinite(pd.to_numeric(table[key], errors="coerce")).any():
                continue
            d, t = measured_direction(table, key)
            stable = None
            if other is not None and phase == "init":
                d2 = other_lab_direction(other, m)
                stable = None if d2 is None else d2 == d
            out.setdefault(m, {})[phase] = (d, round(t, 3), len(df), lab, stable)
    return out
