"""gradnas objectives: gradient metrics that rank networks before they are trained.

Every metric is a function ``(model, inputs, targets, loss_fn=cross_entropy, **options) -> float``
registered in :mod:`objectives.registry` with its direction, phase, needs and cost. :func:`score`
computes several at once over one shared :class:`Probe`, so per-example gradients and perturbed
gradients are computed once.

Example::

    import torch, torchvision
    from objectives import score, gradient_confusion

    model = torchvision.models.resnet18(num_classes=10)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    print(gradient_confusion(model, x, y, group_size=4))
    print(score(model, x, y, metrics=["kappa_w", "confusion", "rank_input"], group_size=4))
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
from typing import Any, Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from . import registry
from .batch_dissonance import (
    batch_dissonance,
    gradient_coherence,
    gradient_confusion,
    gradient_diversity,
    relative_gradient_rank,
)
from .core.probe import PROBE_OPTIONS, Probe
from .step_consistency import (
    InTrainingStepConsistency,
    min_gradient_cosine,
    step_consistency,
    weight_gradient_coherence,
    weight_gradient_diversity,
)

if importlib.util.find_spec(f"{__name__}.zero_cost") is not None:  # peer proxies
    from . import zero_cost  # noqa: F401
from . import noise, optim  # noqa: F401

__all__ = [
    "Probe",
    "PROBE_OPTIONS",
    "DEFAULT_METRICS",
    "registry",
    "score",
    "step_consistency",
    "min_gradient_cosine",
    "weight_gradient_diversity",
    "weight_gradient_coherence",
    "InTrainingStepConsistency",
    "batch_dissonance",
    "gradient_confusion",
    "gradient_diversity",
    "gradient_coherence",
    "relative_gradient_rank",
]

logger = logging.getLogger(__name__)

#: Metrics of the thesis computed by default by :func:`score`.
DEFAULT_METRICS = (
    "kappa_w", "min_cosine", "weight_diversity", "weight_coherence", "kappa_x",
    "confusion", "diversity", "coherence", "rank_input", "rank_weight",
)


def score(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    metrics: Iterable[str] | None = None,
    loss_fn: Any = F.cross_entropy,
    *,
    on_error: str = "raise",
    **options: Any,
) -> dict[str, float]:
    """Compute several metrics over one shared probe: common work is done once.

    Args:
        model: the network (left unchanged).
        inputs, targets: one batch.
        metrics: registered names (``objectives.registry.names()``); default: the thesis metrics
            ``DEFAULT_METRICS``.
        loss_fn: mean-reduced loss.
        on_error: ``"raise"`` (default) or ``"nan"``: record NaN for a metric that raises
            ``ValueError``/``NotImplementedError`` (logged) and go on.
        **options: probe options (``bn_mode``, ``mask_fraction``, ``seed``, ``chunk_size``) and
            metric options (``eta``, ``directions``, ``num_directions``, ``group_size``,
            ``num_examples``, ...); each metric receives the options it accepts.

    Returns:
        name -> value, in the order requested.

    Raises:
        ValueError: an unknown metric (the message lists the valid ones), an option no requested
            metric accepts, or a bad batch.
    """
    if on_error not in ("raise", "nan"):
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    names = list(DEFAULT_METRICS if metrics is None else metrics)
    entries = [registry.get(n) for n in names]
    accepted = {o for e in entries for o in e.options} | set(PROBE_OPTIONS)
    unknown = set(options) - accepted
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for metrics {names}; accepted: {sorted(accepted)}"
        )
    probe_opts = {k: v for k, v in options.items() if k in PROBE_OPTIONS}
    probe: Probe | None = None
    if any("probe" in e.options for e in entries):
        probe = Probe(model, inputs, targets, loss_fn, **probe_opts)
    results: dict[str, float] = {}
    for e in entries:
        kwargs = {k: v for k, v in options.items() if k in e.options and k not in PROBE_OPTIONS}
        if "probe" in e.options:
            kwargs["probe"] = probe
        elif "seed" in e.options and "seed" in options:
            kwargs["seed"] = options["seed"]
        if "loss_fn" in inspect.signature(e.fn).parameters:
            kwargs["loss_fn"] = loss_fn
        try:
            results[e.name] = float(e.fn(model, inputs, targets, **kwargs))
        except (ValueError, NotImplementedError) as exc:
            if on_error == "raise":
                raise
            logger.warning("metric %s failed: %s", e.name, exc)
            results[e.name] = float("nan")
    return results
