"""Metric registry: name -> function, direction, phase, needs, cost, citation.

Modelled on timm's ``@register_model``: every metric module decorates its public functions with
:func:`register_metric`; only ``objectives/__init__.py`` imports those modules, so importing
``objectives`` fills the registry. A duplicate name raises, an unknown name lists the valid ones.

Example::

    from objectives import registry
    registry.names("gradient_*")          # fnmatch filter
    entry = registry.get("gradient_confusion")
    entry.direction                       # "minimize"
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

__all__ = ["MetricInfo", "register_metric", "names", "get", "entries", "UnknownMetricError"]

DIRECTIONS = ("minimize", "maximize")
PHASES = ("init", "early")
COSTS = ("free", "cheap", "moderate", "expensive")
#: What a metric needs from its caller or computes internally. ``data``: real inputs/targets (data-free
#: metrics ignore them); ``per_example``: per-example weight gradients; ``input_grad``: per-example
#: input gradients; ``perturbed``: batch gradients at perturbed weights; ``groups``: group-mean gradients.
NEEDS = ("data", "labels", "per_example", "input_grad", "perturbed", "groups", "training")


class UnknownMetricError(KeyError, ValueError):
    """Raised for a metric name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class MetricInfo:
    """One registered metric.

    Attributes:
        name: registry key (also the key in :func:`objectives.score`'s result).
        fn: the metric function ``(model, inputs, targets, loss_fn=..., **options) -> float``.
        direction: ``"minimize"`` or ``"maximize"``: which way is better for trainability.
        phases: when the metric is meaningful (``"init"``, ``"early"``).
        needs: what the metric consumes (see ``NEEDS``).
        cost: rough cost class relative to a training step: free, cheap (<= 1 step), moderate
            (a few steps), expensive (many steps).
        citation: where the definition comes from (paper, definition / equation number).
        summary: first line of the function's docstring.
    """

    name: str
    fn: Callable[..., float]
    direction: str
    phases: tuple[str, ...]
    needs: frozenset[str]
    cost: str
    citation: str
    summary: str = ""
    options: tuple[str, ...] = field(default=())

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        return self.fn(*args, **kwargs)


_REGISTRY: dict[str, MetricInfo] = {}


def register_metric(
    name: str,
    *,
    direction: str,
    needs: Iterable[str] = ("data",),
    cost: str = "cheap",
    phases: Iterable[str] = PHASES,
    citation: str = "",
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering a metric function under ``name``.

    Raises:
        ValueError: duplicate name, unknown direction, phase, cost or need.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    needs = frozenset(needs)
    bad = needs - set(NEEDS)
    if bad:
        raise ValueError(f"unknown needs {sorted(bad)}; valid: {NEEDS}")
    phases = tuple(phases)
    if not set(phases) <= set(PHASES):
        raise ValueError(f"phases must be within {PHASES}, got {phases}")
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {COSTS}, got {cost!r}")

    def decorator(fn: Callable[..., float]) -> Callable[..., float]:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        params = inspect.signature(fn).parameters
        options = tuple(
            p for p, spec in params.items()
            if spec.kind == inspect.Parameter.KEYWORD_ONLY
        )
        doc = inspect.getdoc(fn) or ""
        _REGISTRY[name] = MetricInfo(
            name=name,
            fn=fn,
            direction=direction,
            phases=phases,
            needs=needs,
            cost=cost,
            citation=citation,
            summary=doc.splitlines()[0] if doc else "",
            options=options,
        )
        return fn

    return decorator


def names(pattern: str | None = None, *, exclude: str | None = None) -> list[str]:
    """Registered metric names, sorted; ``pattern``/``exclude`` are fnmatch wildcards."""
    out = sorted(_REGISTRY)
    if pattern:
        out = [n for n in out if fnmatch.fnmatch(n, pattern)]
    if exclude:
        out = [n for n in out if not fnmatch.fnmatch(n, exclude)]
    return out


def get(name: str) -> MetricInfo:
    """The entry for ``name``.

    Raises:
        UnknownMetricError: (a ``KeyError`` and ``ValueError``) listing the valid names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownMetricError(
            f"unknown metric {name!r}; valid metrics: {', '.join(names())}"
        ) from None


def entries() -> list[MetricInfo]:
    """All entries, sorted by name."""
    return [_REGISTRY[n] for n in names()]
