"""A search space from a define-by-run function (Optuna style): :class:`FunctionSpace`.

The user writes::

    def space(trial, num_classes=10):          # num_classes and input_shape are optional keywords
        depth = trial.suggest_int("depth", 1, 3)
        width = trial.suggest_int("width", 8, 32, log=True)
        ...
        return model                           # an nn.Module (lazy layers welcome)

and ``get_space("my_space.py:space")`` wraps it:

* :meth:`FunctionSpace.sample` runs the function on the trial; the config is the parameters it suggested
  plus the training fields of :func:`~search_spaces._base.training_dimensions` it did not suggest itself
  (``batch_size`` and ``lr`` are sampled, so the search still tunes them; ``optimizer``, ``momentum``,
  ``weight_decay`` are fixed defaults). The model it returns is thrown away (built on the ``meta``
  device where the function allows it: no memory, no compute).
* :meth:`FunctionSpace.build` runs the function again on ``optuna.trial.FixedTrial(config)`` and checks
  the model once on a zero batch (which also materializes lazy layers): a model whose output does not fit
  the number of classes is one line of :class:`SpaceError`.
* :meth:`FunctionSpace.dimensions` are discovered by running the function twice on a recording trial:
  once with every parameter at its low end (or first choice), once at its high end (or last choice).
  A parameter suggested on only one of the two paths is listed as conditional; one that neither path
  reaches is not listed (validate accepts it all the same: the function is the authority).

Bounds narrow the training fields and the function's own parameters alike: the trial the function sees
answers ``suggest_*`` within the narrowed domain. Bounds set as attributes of the function,
``space.smoke_bounds = {...}`` (``--smoke``) and ``space.cpu_bounds = {...}`` (a budget search on a CPU
without ``--bounds``), are the space's :attr:`~search_spaces.SearchSpace.smoke_bounds` and
:attr:`~search_spaces.SearchSpace.cpu_bounds`, as a subclass's class attributes are.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

import optuna
import torch
from torch import nn

from search_spaces._base import ConfigError, Dimension, SearchSpace, categorical, integer, real, training_dimensions
from search_spaces._errors import SpaceError, first_line
from search_spaces.lazy import dry_run

__all__ = ["FunctionSpace", "space_kwargs"]

#: What sample() and dimensions() pass for a required ``num_classes`` / ``input_shape`` (no data known yet).
PLACEHOLDERS: dict[str, Any] = {"num_classes": 10, "input_shape": (3, 32, 32)}
_DISCOVERED: dict[Any, tuple[dict[str, Dimension], tuple[str, ...], bool]] = {}


def space_kwargs(fn: Callable[..., Any], what: str) -> dict[str, bool]:
    """Which of ``num_classes`` / ``input_shape`` ``fn`` accepts (name -> required), after checking that
    it takes the trial as its first argument and requires nothing else.

    Raises:
        SpaceError: the signature does not fit ``def space(trial[, num_classes][, input_shape])``.
    """
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: call it with the trial only
        return {}
    usage = "define it as def space(trial) -> nn.Module (optionally with num_classes=, input_shape= keywords)"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    if not positional:
        raise SpaceError(f"{what} takes no trial argument; {usage}")
    rest = [p for p in params if p is not positional[0]]
    var_kw = any(p.kind == p.VAR_KEYWORD for p in rest)
    out = {name: False for name in PLACEHOLDERS if var_kw}
    for p in rest:
        if p.name in PLACEHOLDERS and p.kind != p.VAR_POSITIONAL:
            out[p.name] = p.default is p.empty
        elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise SpaceError(f"{what} requires an argument {p.name!r} that gradnas cannot give; {usage}")
    return out


class _Pick(optuna.samplers.BaseSampler):
    """A sampler answering every parameter with its low end / first choice (``high=False``) or high end /
    last choice (``high=True``): the two recording runs of :func:`_discover`."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def infer_relative_search_space(self, study, trial):  # noqa: ANN001, D102
        return {}

    def sample_relative(self, study, trial, search_space):  # noqa: ANN001, D102
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: ANN001, D102
        d = param_distribution
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            return d.choices[-1 if self.high else 0]
        return d.high if self.high else d.low


def _dimension(name: str, dist: Any) -> Dimension:
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return categorical(name, dist.choices)
    if isinstance(dist, optuna.distributions.IntDistribution):
        return integer(name, dist.low, dist.high, default=dist.low, log=dist.log)
    return real(name, dist.low, dist.high, default=dist.low, log=dist.log)


def _merge(a: Dimension, b: Dimension) -> Dimension:
    """One dimension covering both (a range that depends on another parameter differs between runs)."""
    if a.kind != b.kind:
        return a
    if a.kind == "categorical":
        return Dimension(a.name, a.kind, choices=tuple(dict.fromkeys((*a.choices, *b.choices))), default=a.default)
    return Dimension(a.name, a.kind, low=min(a.low, b.low), high=max(a.high, b.high), log=a.log, default=a.default)


@contextlib.contextmanager
def _quiet_optuna():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


class _Bounded:
    """The trial the function sees: ``suggest_*`` of a narrowed parameter asks within its narrowed domain;
    everything else is the trial's own."""

    def __init__(self, trial: Any, dims: Mapping[str, Dimension]) -> None:
        self._trial, self._dims = trial, dims

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._trial, attr)

    def suggest_int(self, name: str, low: int, high: int, *args: Any, **kw: Any) -> int:
        d = self._dims.get(name)
        if d is not None and d.kind == "int":
            low, high = d.low, d.high
        return self._trial.suggest_int(name, low, high, *args, **kw)

    def suggest_float(self, name: str, low: float, high: float, *args: Any, **kw: Any) -> float:
        d = self._dims.get(name)
        if d is not None and d.kind == "float":
            low, high = d.low, d.high
        return self._trial.suggest_float(name, low, high, *args, **kw)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        d = self._dims.get(name)
        if d is not None and d.kind == "categorical":
            choices = [c for c in choices if c in d.choices] or list(d.choices)
        return self._trial.suggest_categorical(name, choices)


class FunctionSpace(SearchSpace):
    """A search space defined by a define-by-run function ``def space(trial) -> nn.Module``.

    Args:
        fn: the function; it may also accept ``num_classes`` and/or ``input_shape`` keywords (given the
            data's values at build; placeholders ``10`` and ``(3, 32, 32)`` at sample time when it requires
            them without defaults — the parameters it suggests should not depend on them).
        ref: the canonical reference that :func:`~search_spaces.get_space` resolves to ``fn`` (the name).
        **bounds: narrowed domains of the training fields or of the function's own parameters.
    """

    def __init__(self, fn: Callable[..., Any], ref: str = "", **bounds: Any) -> None:  # noqa: D107
        self._fn, self._ref = fn, ref
        # like a SearchSpace subclass's class attributes: set on the function (space.smoke_bounds = {...})
        self.smoke_bounds = dict(getattr(fn, "smoke_bounds", None) or {})
        self.cpu_bounds = dict(getattr(fn, "cpu_bounds", None) or {})
        self.name = ref or getattr(fn, "__qualname__", type(fn).__name__)
        self._kwargs = space_kwargs(fn, f"space function {self.name}")
        user, self._conditional, self._both = self._discovered()
        self._user_names = tuple(user)
        self._dims = {**user, **{d.name: d for d in training_dimensions() if d.name not in user}}
        self._bounds: dict[str, Any] = {}
        self._defaults: dict[str, Any] | None = None
        self._narrow(bounds)
        # inspect.getdoc(space) (what ``gradnas spaces REF`` prints): the function's docstring and the note
        self.__doc__ = "\n\n".join(p for p in (inspect.getdoc(fn), self.note) if p)

    @classmethod
    def _default_dimensions(cls) -> list[Dimension]:  # unused: the dimensions come from running the function
        return training_dimensions()

    # -- running the function ----------------------------------------------------------------------
    def _call(self, trial: Any, num_classes: int | None = None, input_shape: tuple[int, ...] | None = None,
              meta: bool = False) -> nn.Module:
        given = {"num_classes": num_classes, "input_shape": input_shape}
        kwargs = {k: given[k] if given[k] is not None else PLACEHOLDERS[k] for k, required in self._kwargs.items()
                  if given[k] is not None or required}
        if meta:  # no memory, no compute; a function that needs real tensors runs again for real
            try:
                with torch.device("meta"):
                    return self._check_module(self._fn(trial, **kwargs))
            except SpaceError:
                raise
            except Exception:  # noqa: BLE001 - rerun for real: the same trial answers the same values
                pass
        return self._check_module(self._fn(trial, **kwargs))

    def _check_module(self, model: Any) -> nn.Module:
        if not isinstance(model, nn.Module):
            raise SpaceError(f"space function {self.name} returned {type(model).__name__}, not an nn.Module; "
                             "end it with `return model`")
        return model

    def _run(self, trial: Any, meta: bool = True) -> dict[str, Any]:
        """Run the function on ``trial`` (narrowed, global RNG untouched); the parameters it suggested."""
        before = set(trial.params)
        with torch.random.fork_rng(devices=[]):
            self._call(_Bounded(trial, self._dims) if self._bounds else trial, meta=meta)
        return {k: v for k, v in trial.params.items() if k not in before}

    def _record(self, high: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        with _quiet_optuna():
            trial = optuna.create_study(sampler=_Pick(high)).ask()
        params = self._run(trial)
        return params, dict(trial.distributions)

    def _discovered(self) -> tuple[dict[str, Dimension], tuple[str, ...], bool]:
        """The function's parameters (two recording runs, cached per function), the conditional ones,
        and whether both runs were made."""
        try:
            return _DISCOVERED[self._fn]
        except (KeyError, TypeError):
            pass
        self._bounds = {}
        runs, errors = [], []
        for high in (False, True):  # the largest model may fail (memory, a rejected combination): list the other
            try:
                runs.append(self._record(high))
            except SpaceError:
                raise
            except Exception as exc:  # noqa: BLE001 - user code
                runs.append(({}, {}))
                errors.append(exc)
        if len(errors) == 2:
            raise SpaceError(f"space function {self.name} failed when run with every parameter at its low end: "
                             f"{first_line(errors[0])}") from errors[0]
        (low, low_dists), (high, high_dists) = runs
        both = not errors
        dims = {k: _dimension(k, low_dists[k]) for k in low}
        for k in high:
            dims[k] = _merge(dims[k], _dimension(k, high_dists[k])) if k in dims else _dimension(k, high_dists[k])
        conditional = tuple(k for k in dims if both and (k in low) != (k in high))
        for k in conditional:
            dims[k] = dataclasses.replace(dims[k], description="conditional: suggested on one path only")
        result = (dims, conditional, both)
        with contextlib.suppress(TypeError):
            _DISCOVERED[self._fn] = result
        return result

    # -- the SearchSpace contract ------------------------------------------------------------------
    @property
    def summary(self) -> str:
        """First line of the function's docstring, else what it is."""
        doc = (inspect.getdoc(self._fn) or "").strip()
        return doc.splitlines()[0] if doc else f"define-by-run function {self.name}"

    @property
    def ref(self) -> str:
        """The reference that rebuilds this space in another process; ``""`` for a function that has none
        (defined in a notebook or inside another function: usable in this process only)."""
        return self._ref

    @property
    def note(self) -> str:
        """How the dimensions were found (for ``gradnas spaces REF``)."""
        how = ("found by running the function with every parameter at its low end, then at its high end"
               if self._both else "found by running the function once (the other end of its parameters failed)")
        cond = (f"; conditional (on one path only): {', '.join(self._conditional)}" if self._conditional else "")
        return f"define-by-run function {self.name}: dimensions {how}{cond}; a parameter no run reached is " \
               "not listed"

    def with_bounds(self, **bounds: Any) -> FunctionSpace:  # noqa: D102
        space = super().with_bounds(**bounds)
        space._defaults = None
        return space  # type: ignore[return-value]

    def __copy__(self) -> FunctionSpace:
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:  # pickled as its reference (Ray, processes)
        return (_reopen, (self._ref, self.bounds)) if self._ref else (_from_function, (self._fn, self.bounds))

    def sample(self, trial: Any) -> dict[str, Any]:
        """Run the function on ``trial``; its parameters plus the training fields it did not suggest."""
        params = self._run(trial)
        for name, dim in self._dims.items():
            if name not in params and name not in self._user_names:
                params[name] = dim.suggest(trial)
        return self.validate(params)

    def default_config(self) -> dict[str, Any]:
        """Every parameter at its (narrowed) low end or first choice, and the training defaults."""
        return self.validate({})

    def _default_params(self) -> dict[str, Any]:
        if self._defaults is None:
            self._defaults = self._record(high=False)[0]
        return dict(self._defaults)

    def validate(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Check a config: the function's parameters against their discovered domains (one no run reached
        passes as a JSON value), the training fields as usual (missing ones take their defaults). With no
        parameter of the function, its defaults (:meth:`default_config`)."""
        if not isinstance(config, Mapping):
            raise ConfigError("config", "a mapping of field names to values", config, self.name)
        training = [n for n in self._dims if n not in self._user_names]
        user = {k: v for k, v in config.items() if k not in training} or self._default_params()
        out: dict[str, Any] = {}
        for key, value in user.items():
            if not isinstance(key, str):
                raise ConfigError(str(key), "a parameter name (a string)", value, self.name)
            if key in self._dims:
                out[key] = self._dims[key].check(value, self.name)
            elif value is None or isinstance(value, (str, int, float, bool)):
                out[key] = value
            else:
                raise ConfigError(key, "a JSON scalar (str, int, float, bool or null)", value, self.name)
        for name in training:
            out[name] = self._dims[name].check(config[name], self.name) if name in config else self._dims[name].default
        return out

    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        params = {k: v for k, v in config.items() if k in self._user_names or k not in self._dims}
        try:
            model = self._call(optuna.trial.FixedTrial(params), num_classes, input_shape)
        except ValueError as exc:
            if isinstance(exc, SpaceError) or "not found" not in str(exc):
                raise
            raise SpaceError(f"space function {self.name}: the config {json.dumps(params)} lacks a parameter "
                             f"the function suggests ({str(exc).strip().splitlines()[0]})") from None
        out = dry_run(model, input_shape, f"the model of space function {self.name}")
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] != num_classes:
            raise SpaceError(f"space function {self.name}: the model returned outputs of shape {tuple(out.shape)} "
                             f"for a batch of 2 inputs of shape {input_shape}, but the data has {num_classes} "
                             "classes; give the last layer num_classes outputs (the function may take a "
                             "num_classes argument)")
        return model


def _reopen(ref: str, bounds: Mapping[str, Any]) -> SearchSpace:
    from search_spaces._registry import get_space

    return get_space(ref, **bounds)


def _from_function(fn: Callable[..., Any], bounds: Mapping[str, Any]) -> FunctionSpace:
    return FunctionSpace(fn, **bounds)
