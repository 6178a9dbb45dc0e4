"""The search-space contract: :class:`SearchSpace`, its :class:`Dimension` fields and :class:`ConfigError`
(both defined in :mod:`search_spaces._dimension`, re-exported here), the shared training fields.

A space is a set of named *dimensions* (the fields of a config). It turns an Optuna trial into a config
(:meth:`SearchSpace.sample`, define-by-run, no compute), checks and completes a config
(:meth:`SearchSpace.validate`) and turns a config into an ``nn.Module`` (:meth:`SearchSpace.build`).
A config is a plain JSON-able ``dict`` holding every field, fixed training defaults included, so
``build(config, ..., seed=s)`` rebuilds the same network bit for bit from a stored trial.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from search_spaces._dimension import ConfigError, Dimension, _is_int, categorical, integer, real
from search_spaces.lazy import materialize

__all__ = [
    "ConfigError",
    "Dimension",
    "SearchSpace",
    "categorical",
    "conv_input_shape",
    "integer",
    "real",
    "training_dimensions",
]


#: Gradient transforms of ``nas.training.make_grad_transform`` (paper 002 and its baselines): the one
#: definition, here because it is a dimension of the spaces (``nas`` imports it; this package never imports nas).
GRAD_TRANSFORMS = ("none", "gan", "gc", "zscore")


def training_dimensions(*, batch_size: int = 128, lr: float = 0.1, grad_transform: bool = False) -> list[Dimension]:
    """The training fields shared by all spaces.

    Searched: ``batch_size`` 32–512 (log), ``lr`` 1e-3–1 (log), and with ``grad_transform=True`` the
    gradient transform applied before each optimizer step: ``none`` | ``gan`` (Gradient Autoscaled
    Normalization, paper 002) | ``gc`` (gradient centralization) | ``zscore``. Fixed defaults stored in
    every config: ``optimizer`` ``"sgd"`` (``"adamw"`` may be set, not searched: paper 002's recipe),
    ``momentum`` 0.9 (SGD only), ``weight_decay`` 5e-4.
    """
    transform = [categorical("grad_transform", GRAD_TRANSFORMS, default="none",
                             description="gradient transform before each step (gan = paper 002)")]
    return [
        integer("batch_size", 32, 512, default=batch_size, log=True, description="training batch size"),
        real("lr", 1e-3, 1.0, default=lr, log=True, description="SGD learning rate"),
        *(transform if grad_transform else []),
        categorical("optimizer", ("sgd", "adamw"), sampled=False, description="optimizer (fixed: sgd)"),
        real("momentum", 0.0, 1.0, default=0.9, sampled=False, description="SGD momentum (fixed)"),
        real("weight_decay", 0.0, 1.0, default=5e-4, sampled=False, description="L2 weight decay (fixed)"),
    ]


class SearchSpace(abc.ABC):
    """Base class of every search space.

    A subclass declares its fields in :meth:`_default_dimensions`, builds the network in :meth:`_build`
    and may add cross-field rules in :meth:`_check`; it is registered with
    :func:`search_spaces.register_space`, which sets :attr:`name`.

    Contract:
        * :meth:`sample` only calls ``trial.suggest_*`` (define-by-run: Optuna's samplers and dashboard
          see every searched dimension) and does no compute.
        * :meth:`validate` checks every field's type and domain, fills defaults (fixed training
          defaults included) and returns a new, normalized, JSON-able dict; it raises
          :class:`ConfigError` naming the field and its allowed values. Unknown fields are errors.
        * :meth:`build` validates first; with ``seed`` it seeds a forked CPU RNG
          (``torch.random.fork_rng``), so the same config and seed give bit-identical weights and the
          caller's global RNG state is left untouched.

    Narrowing bounds:
        ``space.with_bounds(width=(8, 16), blocks=(1, 2))`` (or, equivalently,
        ``get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))``) returns a new space of the same
        kind whose fields are restricted: a ``(low, high)`` pair for numeric fields, a subset of choices
        for categorical ones, a single value to fix a field. The narrowed space samples and validates
        against the narrowed domains. :attr:`smoke_bounds` holds bounds that give tiny networks for
        CPU smoke tests: ``space.with_bounds(**space.smoke_bounds)``.

    Example::

        import optuna
        from search_spaces import get_space

        space = get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))
        study = optuna.create_study()
        trial = study.ask()
        config = space.sample(trial)             # a JSON-able dict
        model = space.build(config, num_classes=10, input_shape=(3, 32, 32), seed=0)
    """

    #: Registry name, set by :func:`search_spaces.register_space`.
    name: ClassVar[str] = ""
    #: Bounds (for :meth:`with_bounds`) that make tiny networks, for fast CPU tests.
    smoke_bounds: ClassVar[Mapping[str, Any]] = {}
    #: Bounds of a default budgeted search on a CPU (``python -m nas search`` without a GPU): networks a
    #: 2-core machine trains in minutes. Empty: the full space.
    cpu_bounds: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **bounds: Any) -> None:
        self._dims: dict[str, Dimension] = {d.name: d for d in self._default_dimensions()}
        self._bounds: dict[str, Any] = {}
        self._narrow(bounds)

    def _narrow(self, bounds: Mapping[str, Any]) -> None:
        for key, bound in bounds.items():
            if key not in self._dims:
                raise ConfigError(key, f"one of the fields {list(self._dims)!r}", bound, self.name)
            self._dims[key] = self._dims[key].narrow(bound, self.name)
            self._bounds[key] = bound
        self._check_bounds()

    # -- to implement ------------------------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def _default_dimensions(cls) -> list[Dimension]:
        """The space's fields, in sampling order, with their full domains."""

    @abc.abstractmethod
    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        """Construct (and initialize) the network for a validated config."""

    def _check(self, config: dict[str, Any]) -> None:
        """Cross-field rules on a config whose fields are individually valid; raise :class:`ConfigError`."""

    def _check_bounds(self) -> None:
        """Called after narrowing: reject (or complete) bounds that break a cross-field rule of :meth:`_check`."""

    # -- public API --------------------------------------------------------------------------------
    def dimensions(self) -> list[dict[str, Any]]:
        """Describe every field (name, type, low/high or choices, log, default, fixed, description)."""
        return [d.to_dict() for d in self._dims.values()]

    @property
    def summary(self) -> str:
        """First line of the space class's docstring (for ``gradnas spaces``)."""
        doc = (type(self).__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @property
    def bounds(self) -> dict[str, Any]:
        """The bounds this space was narrowed with, latest per field (empty for the full space).

        ``get_space(space.name, **space.bounds)`` rebuilds an equivalent space (store it with a study).
        """
        return dict(self._bounds)

    @property
    def ref(self) -> str:
        """What rebuilds this space in any process: ``get_space(space.ref, **space.bounds)``.

        The registered name for a built-in space; for a space from user code the canonical reference
        (``package.module:attr``, or ``/absolute/path/my_space.py:attr``) that :func:`~search_spaces.get_space`
        resolved. Store this (not the string a user typed) with a study, a trial spec or a saved model.
        """
        return self.__dict__.get("_ref") or self.name

    def with_bounds(self, **bounds: Any) -> SearchSpace:
        """Return a new space of the same kind narrowed further by ``bounds`` (``self`` is unchanged).

        Args:
            **bounds: field name -> ``(low, high)`` (numeric), a subset of choices (categorical), or a
                single value (fixes the field).

        Raises:
            ConfigError: unknown field, or a bound outside the current domain.
        """
        space = copy.copy(self)
        space._dims, space._bounds = dict(self._dims), dict(self._bounds)
        space._narrow(bounds)
        return space

    def sample(self, trial: Any) -> dict[str, Any]:
        """Draw a config from an Optuna trial (define-by-run; no compute).

        Args:
            trial: an ``optuna.trial.Trial`` (or anything with ``suggest_int/float/categorical``).

        Returns:
            A validated config: a JSON-able dict with every field.
        """
        return self.validate({name: dim.suggest(trial) for name, dim in self._dims.items()})

    def default_config(self) -> dict[str, Any]:
        """The config made of every field's default (``validate({})``)."""
        return self.validate({})

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a config and return it normalized, with defaults filled in.

        Args:
            config: a mapping from field names to values; missing fields take their defaults.

        Returns:
            A new dict with every field of the space, in the order of :meth:`dimensions`.

        Raises:
            ConfigError: not a mapping, an unknown field, a value of the wrong type or outside its domain,
                or a cross-field rule broken.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("config", "a mapping of field names to values", config, self.name)
        unknown = [key for key in config if key not in self._dims]
        if unknown:
            raise ConfigError(str(unknown[0]), f"one of the fields {list(self._dims)!r}", config[unknown[0]],
                              self.name)
        out = {name: dim.check(config[name], self.name) if name in config else dim.default
               for name, dim in self._dims.items()}
        self._check(out)
        return out

    def build(self, config: Mapping[str, Any], num_classes: int, input_shape: Sequence[int],
              seed: int | None = None) -> nn.Module:
        """Build the network described by ``config``.

        Args:
            config: a config of this space (validated first; missing fields take their defaults).
            num_classes: number of outputs of the classifier head.
            input_shape: shape of one example without the batch dimension, e.g. ``(3, 32, 32)``.
            seed: if given, the weights are drawn from a CPU generator seeded with it inside
                ``torch.random.fork_rng``: same config and seed -> bit-identical ``state_dict``, and the
                global RNG state is unchanged. ``None`` draws from the global RNG.

        Returns:
            An ``nn.Module`` in training mode on the CPU (or the current default device). Lazy layers
            (``nn.LazyConv2d``, ``nn.LazyLinear``, ...) are materialized first by one forward pass on a zero
            batch of shape ``(2, *input_shape)`` in eval mode (:func:`search_spaces.lazy.materialize`).

        Raises:
            ConfigError: invalid config.
            ValueError: invalid ``num_classes`` or ``input_shape``.
        """
        cfg = self.validate(config)
        if not _is_int(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int; got {num_classes!r}")
        shape = tuple(input_shape)
        if not shape or not all(_is_int(s) and s >= 1 for s in shape):
            raise ValueError(f"input_shape must be a non-empty sequence of positive ints; got {input_shape!r}")
        shape = tuple(int(s) for s in shape)
        if seed is None:
            return materialize(self._build(cfg, int(num_classes), shape), shape, self.name or type(self).__name__)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return materialize(self._build(cfg, int(num_classes), shape), shape, self.name or type(self).__name__)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._bounds.items())
        return f"{type(self).__name__}({args})"


def conv_input_shape(input_shape: tuple[int, ...], space: str) -> tuple[int, int, int]:
    """Check that ``input_shape`` is ``(channels, height, width)`` for a convolutional space."""
    if len(input_shape) != 3:
        raise ValueError(f"{space}: input_shape must be (channels, height, width); got {input_shape!r}")
    return input_shape  # type: ignore[return-value]
