"""Space references from user code: ``package.module:attr`` and ``path/to/my_space.py:attr``.

:func:`~search_spaces.get_space` resolves a string that is not a registered name here. The attribute may be

* a :class:`~search_spaces.SearchSpace` subclass (registered with ``@register_space`` or not): instantiated
  with the bounds;
* a ``SearchSpace`` instance: narrowed with the bounds (a copy);
* a define-by-run function ``def space(trial) -> nn.Module``: wrapped in
  :class:`~search_spaces.user.FunctionSpace`.

A module path is imported with :mod:`importlib` (the current directory is tried too when it is not on
``sys.path``, as under the ``gradnas`` script); a file path is imported by path under a stable module name
derived from its resolved path (``_gradnas_user_<sha1 of the path>``), so every process on the machine, or on a
shared filesystem (Ray workers), imports the same file as the same module. The canonical reference
(:func:`resolve_space_ref`, ``space.ref``) holds the absolute path: store it, not what the user typed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from search_spaces._base import SearchSpace
from search_spaces._errors import REF_HINT, SpaceError, first_line
from search_spaces.user import FunctionSpace

__all__ = ["is_ref", "open_space_ref", "reference_of", "resolve_space_ref", "space_from", "spaces_in"]

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_FILE_MODULE_PREFIX = "_gradnas_user_"


def is_ref(text: Any) -> bool:
    """Whether ``text`` reads as a reference to user code rather than a registered name:
    it has a ``:``, a path separator, ends in ``.py``, or is a dotted module path."""
    return isinstance(text, str) and (":" in text or "/" in text or os.sep in text or text.endswith(".py")
                                      or bool(_DOTTED.fullmatch(text)))


def _split(ref: str) -> tuple[str, str]:
    """``(module or file, attribute)``; the attribute is empty when the reference names none."""
    where, sep, attr = ref.rpartition(":")
    if not sep or not attr or "/" in attr or os.sep in attr or attr.endswith(".py"):
        return ref.rstrip(":"), ""
    return where, attr


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def _import_file(where: str) -> tuple[ModuleType, str]:
    path = Path(where).expanduser()
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_file():
        raise SpaceError(f"space file {where!r} does not exist (looked for {path}); {REF_HINT}")
    # the same name as nas.data's ``path.py:function`` datasets: a file holding both is imported once
    name = _FILE_MODULE_PREFIX + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise SpaceError(f"space file {where!r} cannot be imported as Python; {REF_HINT}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: dataclasses, pickling and re-imports find it
        if str(path.parent) not in sys.path:  # its sibling modules import as from a script (appended: no shadowing)
            sys.path.append(str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - a user module's error becomes one line
            del sys.modules[name]
            raise SpaceError(f"importing space file {where!r} failed: {first_line(exc)}") from exc
    return module, str(path)


def _import_module(where: str) -> ModuleType:
    for attempt in range(2):
        try:
            return importlib.import_module(where)
        except ModuleNotFoundError as exc:
            missing_self = exc.name is not None and (where == exc.name or where.startswith(exc.name + "."))
            if not missing_self:
                raise SpaceError(f"importing space module {where!r} failed: {first_line(exc)}") from exc
            cwd = os.getcwd()
            if attempt or cwd in (os.path.abspath(p or ".") for p in sys.path):
                raise SpaceError(f"no module named {where!r} (not on sys.path, nor in the current directory); "
                                 f"{REF_HINT}") from None
            sys.path.append(cwd)  # as ``python -m`` would have it; the gradnas script puts its own folder first
        except Exception as exc:  # noqa: BLE001
            raise SpaceError(f"importing space module {where!r} failed: {first_line(exc)}") from exc
    raise AssertionError("unreachable")


def _import(where: str) -> tuple[ModuleType, str]:
    """The module and its canonical spelling (an absolute path for a file)."""
    if _is_file(where):
        return _import_file(where)
    return _import_module(where), where


def _kind(obj: Any, what: str) -> str:
    """``"class"``, ``"instance"`` or ``"function"``; else a :class:`SpaceError` saying what to write."""
    if isinstance(obj, type):
        if issubclass(obj, SearchSpace):
            if inspect.isabstract(obj):
                raise SpaceError(f"{what} is an abstract SearchSpace (it must implement _default_dimensions "
                                 "and _build)")
            return "class"
        if issubclass(obj, nn.Module):
            raise SpaceError(f"{what} is a model class ({obj.__name__}), not a space; write a function "
                             f"def space(trial) -> nn.Module that builds it from trial.suggest_* values and "
                             f"use --space FILE.py:space")
        raise SpaceError(f"{what} is a class that is not a SearchSpace; point --space at a SearchSpace subclass "
                         "or a function def space(trial) -> nn.Module")
    if isinstance(obj, SearchSpace):
        return "instance"
    if isinstance(obj, nn.Module):
        raise SpaceError(f"{what} is a model (an nn.Module instance), not a space: a space builds a new model "
                         "per config; write a function def space(trial) -> nn.Module that returns it")
    if callable(obj):
        return "function"
    raise SpaceError(f"{what} is a {type(obj).__name__}, not a space; point --space at a SearchSpace subclass "
                     "or instance, or a function def space(trial) -> nn.Module")


def _is_candidate(module: ModuleType, obj: Any) -> bool:
    """Whether a module attribute looks like a space it defines (for listings and hints)."""
    if isinstance(obj, SearchSpace):
        return True
    if getattr(obj, "__module__", None) != module.__name__:
        return False
    if isinstance(obj, type):
        return issubclass(obj, SearchSpace) and not inspect.isabstract(obj)
    if inspect.isfunction(obj):
        params = list(inspect.signature(obj).parameters)
        return bool(params) and params[0] == "trial"
    return False


def _candidates(module: ModuleType) -> list[str]:
    return [name for name, obj in vars(module).items() if not name.startswith("_") and _is_candidate(module, obj)]


def _load(ref: str) -> tuple[str, Any]:
    """``(canonical reference, attribute)`` of a reference to user code."""
    where, attr = _split(ref)
    module, canon = _import(where)
    found = _candidates(module)
    if not attr:
        listing = f"it defines {', '.join(found)}" if found else "it defines no SearchSpace or def space(trial)"
        raise SpaceError(f"--space {ref}: name the space after a colon, e.g. --space {where}:"
                         f"{found[0] if found else 'space'} ({listing})")
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            listing = f"spaces it defines: {', '.join(found)}" if found else "it defines no SearchSpace or def space(trial)"
            raise SpaceError(f"{where} has no attribute {attr!r} ({listing}); {REF_HINT}")
        obj = getattr(obj, part)
    canonical = f"{canon}:{attr}"
    _kind(obj, f"--space {ref}")
    return canonical, obj


def space_from(obj: Any, ref: str = "", **bounds: Any) -> SearchSpace:
    """The space ``obj`` describes (a SearchSpace subclass or instance, or a define-by-run function),
    narrowed by ``bounds``, its :attr:`~search_spaces.SearchSpace.ref` set to ``ref`` (or, when empty, to
    :func:`reference_of` ``obj``)."""
    from search_spaces._registry import _SPACES

    ref = ref or reference_of(obj)
    kind = _kind(obj, ref or repr(obj))
    if kind == "function":
        return FunctionSpace(obj, ref, **bounds)
    space = obj(**bounds) if kind == "class" else obj.with_bounds(**bounds)
    if ref:
        space._ref = ref
        if _SPACES.get(space.name) is not type(space):  # unregistered: its reference is its name
            space.name = ref
    return space


def reference_of(obj: Any) -> str:
    """The reference that imports ``obj`` again in another process (``""`` when there is none: a function
    defined in a notebook or inside another function). A function of a script run as ``__main__`` is
    referred to by the script's path (import it under a ``if __name__ == "__main__":`` guard)."""
    from search_spaces._registry import _SPACES

    if isinstance(obj, SearchSpace):
        if obj.__dict__.get("_ref"):
            return obj.__dict__["_ref"]
        module_name = type(obj).__module__
        names = [n for n, v in vars(sys.modules.get(module_name, sys)).items() if v is obj]
        if not names:  # not a module attribute: a registered space is its name (its bounds travel apart)
            return obj.name if _SPACES.get(obj.name) is type(obj) else ""
        qualname = names[0]
    else:
        qualname, module_name = getattr(obj, "__qualname__", ""), getattr(obj, "__module__", None)
        if not qualname or "<" in qualname or not module_name:
            return ""
    if module_name == "__main__" or module_name.startswith(_FILE_MODULE_PREFIX):
        path = getattr(sys.modules.get(module_name), "__file__", None)
        return f"{Path(path).resolve()}:{qualname}" if path else ""
    return f"{module_name}:{qualname}"


def open_space_ref(ref: str, **bounds: Any) -> SearchSpace:
    """The space a reference to user code names, narrowed by ``bounds`` (see the module docstring)."""
    canonical, obj = _load(ref)
    return space_from(obj, canonical, **bounds)


def resolve_space_ref(ref: str) -> str:
    """The canonical form of a space reference: a registered name as is; ``package.module:attr`` as is; a
    file path made absolute. It imports the code and checks the attribute.

    Raises:
        SpaceError: the module or file is not there, the attribute is missing or of the wrong kind
            (:class:`~search_spaces.UnknownSpaceError`, also a ``KeyError``, for an unknown plain name).
    """
    from search_spaces._registry import _SPACES, unknown_space

    if isinstance(ref, str) and ref in _SPACES:
        return ref
    if not is_ref(ref):
        raise unknown_space(ref)
    return _load(ref)[0]


def spaces_in(where: str) -> list[str]:
    """Canonical references of the spaces a module or file defines (SearchSpace subclasses and instances,
    functions whose first parameter is ``trial``); with ``:attr``, that one space's reference."""
    place, attr = _split(where)
    if attr:
        return [_load(where)[0]]
    module, canon = _import(place)
    return [f"{canon}:{name}" for name in _candidates(module)]
