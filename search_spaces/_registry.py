"""Space registry: ``@register_space(name)``, :func:`list_spaces`, :func:`get_space`.

Modelled on timm's model registry (``timm/models/_registry.py``): each space module decorates its
:class:`~search_spaces.SearchSpace` subclass; only ``search_spaces/__init__.py`` imports those modules,
so importing ``search_spaces`` fills the registry. A duplicate name raises, an unknown name lists the
registered ones.
"""

from __future__ import annotations

import fnmatch
from typing import Any, Callable, TypeVar

from search_spaces._base import SearchSpace

__all__ = ["UnknownSpaceError", "get_space", "list_spaces", "register_space"]

_SPACES: dict[str, type[SearchSpace]] = {}

S = TypeVar("S", bound=type[SearchSpace])


class UnknownSpaceError(KeyError, ValueError):
    """Raised by :func:`get_space` for a name that is not registered; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def register_space(name: str) -> Callable[[S], S]:
    """Class decorator registering a :class:`~search_spaces.SearchSpace` subclass under ``name``.

    Args:
        name: registry key (``--space`` on the command line).

    Raises:
        ValueError: ``name`` is empty or already registered, or the class is not a ``SearchSpace``.

    Example::

        @register_space("tiny_mlp")
        class TinyMLP(SearchSpace):
            ...
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"space name must be a non-empty string; got {name!r}")

    def decorator(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, SearchSpace)):
            raise ValueError(f"@register_space({name!r}) expects a SearchSpace subclass; got {cls!r}")
        if name in _SPACES:
            raise ValueError(f"search space {name!r} is already registered (by {_SPACES[name].__qualname__})")
        cls.name = name
        _SPACES[name] = cls
        return cls

    return decorator


def list_spaces(pattern: str | None = None) -> list[str]:
    """Names of the registered spaces, sorted; ``pattern`` is an fnmatch filter (e.g. ``"res*"``)."""
    names = sorted(_SPACES)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def get_space(name: str, **bounds: Any) -> SearchSpace:
    """Instantiate the space registered as ``name``, optionally narrowed.

    Args:
        name: a name from :func:`list_spaces`.
        **bounds: passed to the space (same as ``get_space(name).with_bounds(**bounds)``): field ->
            ``(low, high)``, a subset of choices, or a single value.

    Returns:
        A :class:`~search_spaces.SearchSpace` instance.

    Raises:
        UnknownSpaceError: ``name`` is not registered (a ``KeyError`` and a ``ValueError``).
        ConfigError: a bound names an unknown field or leaves the field's domain.

    Example::

        space = get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))
    """
    try:
        cls = _SPACES[name]
    except (KeyError, TypeError):
        raise UnknownSpaceError(
            f"unknown search space {name!r}; registered spaces: {', '.join(list_spaces()) or '(none)'}"
        ) from None
    return cls(**bounds)
