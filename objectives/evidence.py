"""Measured evidence from the proxy lab, read from package data (``objectives/data/*.json``).

The files are generated, never edited by hand: ``python -m nas.lab regenerate`` (run from the repository
root) writes ``evidence.json`` and ``feature_sets.json`` from the committed ground-truth tables
(``benchmarks/tables/``), each with the sha256 of the table file(s) it read and the command that made it;
``metric_costs.json`` is measured by ``benchmarks/metric_cost.py --threads 1 --write-costs``.

* :data:`MEASURED` (``evidence.json``): ``MEASURED[metric][phase] = (direction, tau, n, lab, stable)``: on
  the lab's table, the direction in which the metric ranks trained accuracy (oriented Kendall tau >= 0),
  with n configs; ``stable`` says whether the sign agreed across labs (None: one lab). The registry exposes
  them as ``registry.get(name).measured``; the paper's direction stays ``registry.get(name).hypothesis``.
* :data:`FEATURE_SETS` (``feature_sets.json``): name -> list of ``{"key", "direction", "weight"}``, the
  combined score's feature sets (:mod:`objectives.combine` builds its ``*_FEATURES`` from them).
* :data:`COST_STEPS` (``metric_costs.json``): metric -> cost at init in training steps of the same network.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

__all__ = ["EVIDENCE_FIELDS", "read", "MEASURED", "FEATURE_SETS", "COST_STEPS"]

#: The fields of one measured direction, in the order of :data:`MEASURED`'s tuples (registry.Evidence).
EVIDENCE_FIELDS = ("direction", "tau", "n", "lab", "stable")


def read(name: str) -> dict[str, Any]:
    """The JSON document ``objectives/data/<name>`` (shipped in the wheel as package data)."""
    return json.loads((resources.files("objectives") / "data" / name).read_text(encoding="utf-8"))


MEASURED: dict[str, dict[str, tuple[str, float, int, str, bool | None]]] = {
    metric: {phase: tuple(e[k] for k in EVIDENCE_FIELDS) for phase, e in per_phase.items()}
    for metric, per_phase in read("evidence.json")["measured"].items()
}
FEATURE_SETS: dict[str, list[dict[str, Any]]] = {
    name: entry["features"] for name, entry in read("feature_sets.json")["sets"].items()
}
COST_STEPS: dict[str, float] = {k: float(v) for k, v in read("metric_costs.json")["cost_steps"].items()}
