"""Space registry: ``@register_space(name)``, :func:`list_spaces`, :func:`get_space`.

Modelled on timm's model registry (``timm/models/_registry.py``): each space module decorates its
:class:`~search_spaces.SearchSpace` subclass; only ``search_spaces/__init__.py`` imports those modules,
so importing ``search_spaces`` fills the registry. A duplicate name raises, an unknown name lists the
registered ones. Besides registered names, :func:`get_space` and :func:`list_spaces` take references to
user code (``package.module:attr``, ``my_space.py:attr``), resolved by :mod:`search_spaces._refs`.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from typing import Any, Callable, TypeVar

from search_spaces._base import SearchSpace
from search_spaces._errors import REF_HINT, SpaceError

__all__ = ["UnknownSpaceError", "get_space", "list_spaces", "register_space", "unknown_space"]

_SPACES: dict[str, type[SearchSpace]] = {}

S = TypeVar("S", bound=type[SearchSpace])


class UnknownSpaceError(KeyError, SpaceError):
    """Raised by :func:`get_space` for a name that is not registered; the message lists the valid names.

    A :class:`~search_spaces.SpaceError` (so a ``ValueError``) and a ``KeyError``.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def unknown_space(name: Any) -> UnknownSpaceError:
    """The error for a plain name that is not registered: the registered names and how to name user code."""
    return UnknownSpaceError(f"unknown search space {name!r}; registered spaces: {', '.join(list_spaces()) or '(none)'}"
                             f"; or a space from your code: {REF_HINT.split(', ', 1)[1]}")


def _origin(cls: type) -> tuple[str | None, str]:
    """Where a class is defined: the file of its methods' code (else its module's) and its qualified name."""
    for value in vars(cls).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None:
            return os.path.realpath(code.co_filename), cls.__qualname__
    return getattr(sys.modules.get(cls.__module__), "__file__", None), cls.__qualname__


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
        old = _SPACES.get(name)
        # the same definition run again (a module imported under two names, or reloaded) replaces it
        same_file = old is not None and old is not cls and _origin(old)[0] is not None and _origin(old) == _origin(cls)
        if old is not None and not same_file:
            raise ValueError(f"search space {name!r} is already registered (by {_SPACES[name].__qualname__})")
        cls.name = name
        _SPACES[name] = cls
        return cls

    return decorator


def list_spaces(pattern: str | None = None) -> list[str]:
    """Names of the registered spaces, sorted; ``pattern`` is an fnmatch filter (e.g. ``"res*"``).

    A ``pattern`` that names user code lists its spaces' canonical references instead: a module or file
    (``pkg.mod``, ``my_space.py``) every space it defines, ``pkg.mod:attr`` / ``my_space.py:attr`` that
    one (checked). Raises :class:`~search_spaces.SpaceError` when the code does not resolve.
    """
    from search_spaces._refs import is_ref, spaces_in

    if pattern is not None and pattern not in _SPACES and is_ref(pattern):
        return spaces_in(pattern)
    names = sorted(_SPACES)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def get_space(name: Any, **bounds: Any) -> SearchSpace:
    """Instantiate the space registered as ``name``, or the one a reference to user code names, optionally narrowed.

    Args:
        name: a name from :func:`list_spaces`; or a reference to user code, ``package.module:attr`` or
            ``path/to/my_space.py:attr``, whose attribute is a ``SearchSpace`` subclass (registered or not),
            a ``SearchSpace`` instance or a define-by-run function ``def space(trial) -> nn.Module``
            (see :mod:`search_spaces._refs`, :class:`~search_spaces.user.FunctionSpace`); or such an
            object itself (from Python). ``space.ref`` is what rebuilds it elsewhere.
        **bounds: passed to the space (same as ``get_space(name).with_bounds(**bounds)``): field ->
            ``(low, high)``, a subset of choices, or a single value.

    Returns:
        A :class:`~search_spaces.SearchSpace` instance.

    Raises:
        UnknownSpaceError: ``name`` is a plain name that is not registered (a ``KeyError`` and a
            :class:`~search_spaces.SpaceError`).
        SpaceError: a reference whose module, file or attribute is missing or of the wrong kind
            (a ``ValueError``; one line saying what to write instead).
        ConfigError: a bound names an unknown field or leaves the field's domain.

    Example::

        space = get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))
        space = get_space("examples/my_space.py:space", lr=(0.01, 0.1))
    """
    if isinstance(name, str) and name in _SPACES:
        return _SPACES[name](**bounds)
    from search_spaces._refs import is_ref, open_space_ref, space_from

    if is_ref(name):
        return open_space_ref(name, **bounds)
    if name is not None and not isinstance(name, str):  # a class, an instance or a function from Python
        return space_from(name, **bounds)
    raise unknown_space(name)
