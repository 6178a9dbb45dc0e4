"""Config fields: :class:`Dimension` (a field's domain, default and whether it is searched), its factories
:func:`integer`, :func:`real`, :func:`categorical`, and :class:`ConfigError` (a config or bound rejected).

Re-exported by :mod:`search_spaces._base` (the contract) and :mod:`search_spaces`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = ["ConfigError", "Dimension", "categorical", "integer", "real"]

_KINDS = ("int", "float", "categorical")


class ConfigError(ValueError):
    """A config (or a bound given to :meth:`SearchSpace.with_bounds`) is invalid.

    The message names the space, the field, the allowed values and the offending value.

    Attributes:
        field: name of the offending config field (``"config"`` when the config itself is not a mapping).
        allowed: human-readable description of the allowed values.
        value: the value that was rejected.
        space: name of the space that rejected it (may be empty).
    """

    def __init__(self, field: str, allowed: str, value: Any, space: str = "") -> None:
        self.field = field
        self.allowed = allowed
        self.value = value
        self.space = space
        prefix = f"{space}: " if space else ""
        super().__init__(f"{prefix}config field {field!r} must be {allowed}; got {value!r}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Ray sends exceptions between processes)
        return type(self), (self.field, self.allowed, self.value, self.space)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _same_choice(value: Any, choice: Any) -> bool:
    """``value`` equals ``choice`` with a compatible type (``True`` is not ``1``; ``1`` may match ``1.0``)."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return isinstance(choice, bool) and isinstance(value, bool) and value is choice
    if isinstance(choice, float) and _is_real(value):
        return float(value) == choice
    return type(value) is type(choice) and value == choice


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One config field: its domain, its default and whether Optuna searches it.

    Create dimensions with :func:`integer`, :func:`real` and :func:`categorical`.

    Attributes:
        name: config key and Optuna parameter name.
        kind: ``"int"``, ``"float"`` or ``"categorical"``.
        low: lower bound (numeric kinds), inclusive.
        high: upper bound (numeric kinds), inclusive.
        choices: allowed values (categorical kind), JSON scalars.
        log: sample on a log scale (numeric kinds).
        default: value used by :meth:`SearchSpace.validate` when the field is missing.
        description: one line for ``gradnas spaces``.
        sampled: ``False`` for a fixed training default (e.g. momentum): never suggested to Optuna,
            filled from ``default``, but still checked against its domain when given.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Any, ...] | None = None
    log: bool = False
    default: Any = None
    description: str = ""
    sampled: bool = True

    # -- domain ------------------------------------------------------------------------------------
    def allowed(self) -> str:
        """Human-readable description of the allowed values (used in :class:`ConfigError`)."""
        if self.kind == "int":
            return f"an int in [{self.low}, {self.high}]"
        if self.kind == "float":
            return f"a float in [{self.low:g}, {self.high:g}]"
        return f"one of {list(self.choices or ())!r}"

    def check(self, value: Any, space: str = "") -> Any:
        """Return ``value`` normalized to the dimension's type, or raise :class:`ConfigError`."""
        if self.kind == "int":
            if not _is_int(value) or not self.low <= value <= self.high:
                raise ConfigError(self.name, self.allowed(), value, space)
            return int(value)
        if self.kind == "float":
            if not _is_real(value) or not math.isfinite(value) or not self.low <= value <= self.high:
                raise ConfigError(self.name, self.allowed(), value, space)
            return float(value)
        for choice in self.choices or ():
            if _same_choice(value, choice):
                return choice
        raise ConfigError(self.name, self.allowed(), value, space)

    def suggest(self, trial: Any) -> Any:
        """Ask ``trial`` (an ``optuna.Trial``) for a value; a fixed dimension returns its default."""
        if not self.sampled:
            return self.default
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        if self.kind == "float":
            return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)
        return trial.suggest_categorical(self.name, list(self.choices or ()))

    def narrow(self, bound: Any, space: str = "") -> Dimension:
        """Return a copy restricted to ``bound``.

        Args:
            bound: for a numeric dimension a ``(low, high)`` pair inside the current range, or one value;
                for a categorical dimension a sequence of allowed choices (a subset), or one value.
                A single value fixes the field to that value.
            space: space name for error messages.

        Raises:
            ConfigError: the bound is malformed or leaves the current domain.
        """
        if self.kind in ("int", "float"):
            if isinstance(bound, Sequence) and not isinstance(bound, str):
                if len(bound) != 2:
                    raise ConfigError(self.name, f"a (low, high) pair inside {self.allowed()}", bound, space)
                low, high = (self.check(b, space) for b in bound)
            else:
                low = high = self.check(bound, space)
            if low > high:
                raise ConfigError(self.name, f"a (low, high) pair with low <= high inside {self.allowed()}",
                                  bound, space)
            default = min(max(self.default, low), high)
            return dataclasses.replace(self, low=low, high=high, default=default)
        values = bound if isinstance(bound, Sequence) and not isinstance(bound, str) else (bound,)
        choices = tuple(self.check(v, space) for v in values)
        if not choices:
            raise ConfigError(self.name, f"a non-empty subset of {list(self.choices or ())!r}", bound, space)
        choices = tuple(dict.fromkeys(choices))  # drop duplicates, keep order
        default = self.default if any(_same_choice(self.default, c) for c in choices) else choices[0]
        return dataclasses.replace(self, choices=choices, default=default)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: name, type, low/high or choices, log, default, fixed, description."""
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices or ())
        else:
            out["low"], out["high"] = self.low, self.high
        out.update(log=self.log, default=self.default, fixed=not self.sampled, description=self.description)
        return out


def integer(name: str, low: int, high: int, *, default: int, log: bool = False, description: str = "",
            sampled: bool = True) -> Dimension:
    """An integer dimension on ``[low, high]`` (inclusive), optionally log-scaled."""
    return Dimension(name, "int", low=int(low), high=int(high), log=log, default=int(default),
                     description=description, sampled=sampled)


def real(name: str, low: float, high: float, *, default: float, log: bool = False, description: str = "",
         sampled: bool = True) -> Dimension:
    """A float dimension on ``[low, high]`` (inclusive), optionally log-scaled."""
    return Dimension(name, "float", low=float(low), high=float(high), log=log, default=float(default),
                     description=description, sampled=sampled)


def categorical(name: str, choices: Sequence[Any], *, default: Any = None, description: str = "",
                sampled: bool = True) -> Dimension:
    """A categorical dimension over JSON scalars (str, int, float, bool); default: the first choice."""
    choices = tuple(choices)
    return Dimension(name, "categorical", choices=choices, default=choices[0] if default is None else default,
                     description=description, sampled=sampled)
