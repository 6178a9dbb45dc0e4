"""gradnas objectives: gradient metrics that rank networks before they are trained.

Every metric is a function ``(model, inputs, targets, loss_fn=cross_entropy, **options) -> float``
registered in :mod:`objectives.registry` with its direction, phase, needs, cost, family, file and test.
The package, one folder per family and one file per registry key:

* ``thesis/``: the thesis's metrics (step-consistency kappa_w and its adaptations, batch-dissonance
  kappa_x, confusion, diversity, coherence, relative gradient ranks, in-training kappa_W);
* ``zero_cost/``: the peers' zero-cost proxies (grad_norm, snip, grasp, fisher, synflow, jacob_cov,
  naswot, zico, AZ-NAS's components, MeCo, params, flops);
* ``noise/``: gradient-noise statistics of papers 000-003 and their registered metrics;
* ``core/``: the shared machinery (:class:`Probe`, per-example gradients, BatchNorm modes, hooks);
* ``combine.py``: :func:`combined_score`, one number per candidate from a table of metric values.

:func:`score` computes several metrics at once over one shared :class:`Probe`, so per-example and
perturbed gradients are computed once; a metric that is undefined for a network (e.g. kappa_x of a dead
net) gets NaN and its reason in ``result.errors`` while the others are still computed.

Example::

    import torch, torchvision
    from objectives import score, gradient_confusion, list_metrics

    model = torchvision.models.resnet18(num_classes=10)
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    print(gradient_confusion(model, x, y, group_size=4))
    print(score(model, x, y, metrics=["kappa_w", "confusion", "rank_input"], group_size=4))
    print(list_metrics(family="zero_cost"))
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Iterable

import torch.nn.functional as F
from torch import Tensor, nn

from . import registry
from .core.batch import validate_batch
from .core.probe import PROBE_OPTIONS, Probe
from .core.rng import seed_of, seeded
from .thesis import (
    InTrainingStepConsistency,
    batch_dissonance,
    gradient_coherence,
    gradient_confusion,
    gradient_diversity,
    min_gradient_cosine,
    relative_gradient_rank,
    step_consistency,
    weight_gradient_coherence,
    weight_gradient_diversity,
)

from . import noise, zero_cost  # noqa: F401  (register the gradient-noise metrics and the peer proxies)
from .combine import Feature, combined_score

__all__ = [
    "Probe",
    "PROBE_OPTIONS",
    "DEFAULT_METRICS",
    "registry",
    "score",
    "combined_score",
    "Feature",
    "list_metrics",
    "get_metric",
    "Scores",
    "METRIC_FAILURES",
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

#: timm-style aliases of the registry's query functions.
list_metrics = registry.names
get_metric = registry.get

#: Metrics of the thesis computed by default by :func:`score`.
DEFAULT_METRICS = (
    "kappa_w", "min_cosine", "weight_diversity", "weight_coherence", "kappa_x",
    "confusion", "diversity", "coherence", "rank_input", "rank_weight",
)


class Scores(dict):
    """What :func:`score` returns: ``name -> value`` in the order requested, plus ``errors``.

    Attributes:
        errors: ``name -> reason`` for every metric that could not be computed on this model and batch
            (its value is NaN): e.g. kappa_x on a dead network whose weight gradients are all zero. An
            undefined metric is information about the candidate, not a failure of the others.
    """

    def __init__(self, *args: Any, errors: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: dict[str, str] = dict(errors or {})


#: Exceptions that mean "this metric is undefined for this candidate" (caught per metric by :func:`score`).
METRIC_FAILURES = (ValueError, NotImplementedError, ArithmeticError)


def score(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    metrics: Iterable[str] | None = None,
    loss_fn: Any = F.cross_entropy,
    *,
    on_error: str = "nan",
    **options: Any,
) -> Scores:
    """Compute several metrics over one shared probe: common work is done once.

    Args:
        model: the network (left unchanged).
        inputs, targets: one batch.
        metrics: registered names (``objectives.registry.names()``); default: the thesis metrics
            ``DEFAULT_METRICS``.
        loss_fn: mean-reduced loss.
        on_error: ``"nan"`` (default): a metric that raises one of :data:`METRIC_FAILURES` gets NaN, its
            reason goes to ``result.errors`` (and the log), and the others are still computed;
            ``"raise"``: the first such error propagates.
        **options: probe options (``bn_mode``, ``mask_fraction``, ``seed``, ``chunk_size``) and
            metric options (``eta``, ``directions``, ``num_directions``, ``group_size``,
            ``num_examples``, ...); each metric receives the options it accepts.

    Returns:
        :class:`Scores`: name -> value, in the order requested; ``.errors`` names the metrics that
        failed and why.

    Determinism: the same model, batch and ``seed`` (default 0) give the same values, whatever the
    caller's RNG state, which a call leaves as it was. Every random choice of a metric comes from
    ``seed``; randomness that is not the metric's own (train-mode dropout of AZ-NAS, ZiCo, jacob_cov; a
    layer calling ``torch.rand``) reads torch's global generator forked and seeded with ``seed``
    (:func:`objectives.core.rng.seeded`). Build the model and draw the batch from a seed too, and a ranking
    repeats exactly (``benchmarks/seed_stability.py``; docs/metrics.md: how much it moves across seeds).

    Raises:
        ValueError: an unknown metric (the message lists the valid ones), an option no requested
            metric accepts, or a bad batch or loss (empty, mismatched, non-finite: nothing can be
            computed then).

    Example::

        values = score(model, x, y, metrics=["kappa_w", "kappa_x"])
        values["kappa_w"], values.errors      # e.g. {"kappa_x": "zero weight gradient ..."}
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
    validate_batch(model, inputs, targets)
    probe_opts = {k: v for k, v in options.items() if k in PROBE_OPTIONS}
    seed = seed_of(options)
    probe: Probe | None = None
    if any("probe" in e.options for e in entries):
        with seeded(seed, inputs, targets):
            probe = Probe(model, inputs, targets, loss_fn, **probe_opts)
        probe.expect(set().union(*(e.needs for e in entries if "probe" in e.options)))
    results = Scores()
    for e in entries:
        kwargs = {k: v for k, v in options.items() if k in e.options and k not in PROBE_OPTIONS}
        if "probe" in e.options:
            kwargs["probe"] = probe
        elif "seed" in e.options and "seed" in options:
            kwargs["seed"] = options["seed"]
        if "loss_fn" in inspect.signature(e.fn).parameters:
            kwargs["loss_fn"] = loss_fn
        try:
            with seeded(seed, inputs, targets):
                results[e.name] = float(e.fn(model, inputs, targets, **kwargs))
        except METRIC_FAILURES as exc:
            if on_error == "raise":
                raise
            reason = " ".join(str(exc).split()) or type(exc).__name__
            logger.info("metric %s is undefined for this model and batch: %s", e.name, reason)
            results[e.name] = float("nan")
            results.errors[e.name] = reason
    return results
