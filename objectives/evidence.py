"""Measured metric directions per phase: written by ``benchmarks/proxy_lab.py --write-evidence``, not by hand.

``MEASURED[metric][phase] = (direction, tau, n, lab, stable)``: on the lab's ground-truth table, the
direction in which the metric ranks trained accuracy (oriented Kendall tau >= 0), with n configs; ``stable``
says whether the sign agreed across labs (None: one lab). The registry exposes them as
``registry.get(name).measured``; the paper's direction stays ``registry.get(name).hypothesis``.
"""

MEASURED: dict[str, dict[str, tuple[str, float, int, str, bool | None]]] = {}
