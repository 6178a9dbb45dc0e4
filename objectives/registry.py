"""Metric registry: name -> function, direction, phase, needs, cost, citation.

Modelled on timm's ``@register_model``: every metric module decorates its public functions with
:func:`register_metric`; only ``objectives/__init__.py`` imports those modules, so importing
``objectives`` fills the registry. A duplicate name raises, an unknown name lists the valid ones.

Each entry also records where the metric lives: its ``family`` (the folder: ``thesis``, ``zero_cost``,
``noise``), its ``file`` (named after the registry key, e.g. ``objectives/thesis/kappa_w.py``) and its
``test`` (the mirrored ``tests/objectives/thesis/test_kappa_w.py``).

Example::

    from objectives import registry
    registry.names("rank_*")              # fnmatch filter: ['rank_input', 'rank_weight']
    registry.names(family="zero_cost")    # the peer proxies
    entry = registry.get("confusion")
    entry.direction                       # "minimize"
    entry.file, entry.test                # 'objectives/thesis/confusion.py', 'tests/objectives/thesis/test_confusion.py'
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

__all__ = ["MetricInfo", "Evidence", "register_metric", "names", "get", "entries", "UnknownMetricError"]

DIRECTIONS = ("minimize", "maximize")
PHASES = ("init", "early")
COSTS = ("free", "cheap", "moderate", "expensive")
#: What a metric needs from its caller or computes internally. ``data``: real inputs/targets (data-free
#: metrics ignore them); ``per_example``: per-example weight gradients; ``input_grad``: per-example
#: input gradients; ``perturbed``: batch gradients at perturbed weights; ``groups``: group-mean gradients;
#: ``batch_grad``: the batch gradient at the probe's weights; the passes the zero-cost proxies share
#: (:mod:`objectives.zero_cost._passes`): ``weight_grad``: the Linear/conv weight gradients in the model's own mode,
#: ``module_outputs``: every module's output, ``stage_features``: the AZ-NAS feature sequence
#: (:meth:`objectives.Probe.expect` shares passes by these).
NEEDS = ("data", "labels", "per_example", "input_grad", "perturbed", "groups", "training", "batch_grad",
         "weight_grad", "module_outputs", "stage_features")


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
        options: the keyword-only options the function accepts.
        family: the folder of ``objectives`` the metric lives in (``thesis``, ``zero_cost``, ``noise``), or
            ``user`` for a metric registered elsewhere.
        file: the source file, relative to the project root for the package's own metrics.
        test: the mirrored test file of the package's own metrics (``""`` for user metrics).
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
    family: str = "user"
    file: str = ""
    test: str = ""

    def __call__(self, *args: Any, **kwargs: Any) -> float:
        return self.fn(*args, **kwargs)

    @property
    def hypothesis(self) -> str:
        """The direction the metric's paper argues for (``direction``): a hypothesis, see ``measured``."""
        return self.direction

    @property
    def measured(self) -> dict[str, "Evidence"]:
        """Measured direction per phase (``init``, ``early``) from the proxy lab (:mod:`objectives.evidence`);
        empty where the lab has not measured the metric."""
        from .evidence import MEASURED

        return {phase: Evidence(*e) for phase, e in MEASURED.get(self.name, {}).items()}

    def direction_for(self, phase: str) -> str:
        """The measured direction at ``phase`` when the lab has one, else the paper's hypothesis."""
        e = self.measured.get(phase)
        return e.direction if e is not None else self.hypothesis


@dataclass(frozen=True)
class Evidence:
    """A metric's measured direction at one phase: the sign of Kendall's tau against trained accuracy.

    Attributes:
        direction: ``"maximize"`` or ``"minimize"``: the direction with tau >= 0.
        tau: Kendall tau of the metric, oriented by ``direction``, against the lab's accuracy.
        n: configs it was measured on.
        lab: which ground-truth table.
        stable: whether the sign agrees across the labs that measured it (None: one lab only).
    """

    direction: str
    tau: float
    n: int
    lab: str
    stable: bool | None = None


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

    The registered (and returned) function first checks the batch contract shared by every metric
    (:func:`objectives.core.batch.validate_batch`, by the metric's ``needs``: a non-empty batch, as many
    targets as inputs when it needs labels, finite inputs when it reads the data, trainable parameters)
    and raises ``ValueError`` otherwise, then calls ``fn`` with torch's global generator forked and seeded
    with the call's ``seed`` (0 when it has none: :func:`objectives.core.rng.seeded`), so train-mode dropout
    or a layer's own ``torch.rand`` cannot make a value depend on the caller's RNG state or move it.

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
        from .core.batch import validate_batch  # the registry module itself stays import-light
        from .core.rng import seed_of, seeded

        data, labels = "data" in needs, "labels" in needs

        @functools.wraps(fn)
        def checked(model: Any, inputs: Any, targets: Any, *args: Any, **kwargs: Any) -> float:
            validate_batch(model, inputs, targets, data=data, labels=labels)
            with seeded(seed_of(kwargs), inputs, targets):
                return fn(model, inputs, targets, *args, **kwargs)

        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is already registered (by {_REGISTRY[name].fn.__module__})")
        params = inspect.signature(fn).parameters
        options = tuple(
            p for p, spec in params.items()
            if spec.kind == inspect.Parameter.KEYWORD_ONLY
        )
        doc = inspect.getdoc(fn) or ""
        family, file, test = _location(fn, name)
        _REGISTRY[name] = MetricInfo(
            name=name,
            fn=checked,
            direction=direction,
            phases=phases,
            needs=needs,
            cost=cost,
            citation=citation,
            summary=doc.splitlines()[0] if doc else "",
            options=options,
            family=family,
            file=file,
            test=test,
        )
        return checked

    return decorator


def _location(fn: Callable[..., float], name: str) -> tuple[str, str, str]:
    """``(family, file, test)`` of a metric function: ``objectives.<family>.<file>`` -> the mirrored test."""
    parts = fn.__module__.split(".")
    if parts[0] == "objectives" and len(parts) >= 3:
        return parts[1], "/".join(parts) + ".py", "/".join(["tests", *parts[:-1], f"test_{name}.py"])
    return "user", inspect.getsourcefile(fn) or "", ""


def names(pattern: str | None = None, *, exclude: str | None = None, family: str | None = None) -> list[str]:
    """Registered metric names, sorted; ``pattern``/``exclude`` are fnmatch wildcards, ``family`` a folder
    (``thesis``, ``zero_cost``, ``noise``)."""
    out = sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)
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
