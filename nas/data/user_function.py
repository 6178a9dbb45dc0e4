"""``package.module:function`` and ``path/to/file.py:function``: data made by the user's own code.

The function is imported (a file path is loaded as a module; its folder goes on ``sys.path`` so it can
import its neighbours) and called with no arguments, or with ``seed=`` when it takes a ``seed`` parameter.
It returns either a :class:`~nas.data.dataset.Dataset`, or ``(train, test)`` where each is a torch
``Dataset``, a ``DataLoader`` or an ``(x, y)`` pair of tensors / numpy arrays (converted with
:func:`nas.data.arrays.from_arrays`: input shape and class count inferred, labels checked, inputs
normalized with train statistics). Workers import the same module: a module path must be importable
there too (a file path given absolute always is, on a shared filesystem).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from .arrays import check_dataset, from_arrays, from_torch
from .dataset import Dataset, DatasetError
from .reference import is_module_file

__all__ = ["import_function", "load_function"]


def _import_file(path: Path, reference: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{reference}: no such file {path}; give path/to/file.py:function")
    name = "_gradnas_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the file may import modules next to it
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DatasetError(f"{reference}: cannot load {path} as a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise DatasetError(f"{reference}: importing {path.name} raised {type(exc).__name__}: {exc}") from exc
    return module


def import_function(target: str, reference: str) -> Callable[..., Any]:
    """The callable named by ``module:attr`` or ``/abs/file.py:attr`` (``attr`` may be dotted).

    Raises:
        DatasetError: The module cannot be imported, lacks the attribute, or the attribute is not callable.
    """
    module_name, _, attr = target.rpartition(":")
    if is_module_file(module_name):
        module = _import_file(Path(module_name), reference)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise DatasetError(
                f"{reference}: cannot import {module_name!r} ({exc}); run from the folder that holds it, add that "
                "folder to PYTHONPATH, or give path/to/file.py:function"
            ) from exc
        except Exception as exc:
            raise DatasetError(f"{reference}: importing {module_name} raised {type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise DatasetError(
                f"{reference}: {module_name} has no attribute {attr!r}; its functions: {', '.join(public[:12]) or 'none'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise DatasetError(f"{reference}: {attr} is a {type(obj).__name__}, not a function; name a function returning the data")
    return obj


def _takes_seed(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "seed" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or type(value).__module__ == "numpy"


def load_function(target: str, seed: int, name: str, loss: str | None = None, max_memory: Any = None) -> Any:
    """Calls the function and converts what it returns into a :class:`Dataset` named ``name`` (torch
    datasets larger than ``max_memory`` into a streamed one: :func:`nas.data.arrays.from_torch`), trained
    with ``loss`` (the reference's ``loss=`` option).

    Raises:
        DatasetError: Import problems (see :func:`import_function`), the function raised, or it returned
            something other than a Dataset or ``(train, test)`` (the message says what it returned).
    """
    fn = import_function(target, name)
    try:
        result = fn(seed=int(seed)) if _takes_seed(fn) else fn()
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"{name}: the function raised {type(exc).__name__}: {exc}") from exc
    if isinstance(result, Dataset):
        if loss is not None and result.loss != loss:
            result = dataclasses.replace(result, loss=loss)
        return check_dataset(result, name)
    usage = "return a nas.data.Dataset or (train, test), each a torch Dataset, a DataLoader or an (x, y) pair of arrays"
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        what = f"a {len(result)}-tuple" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}"
        raise DatasetError(f"{name}: the function returned {what}; {usage}")
    if _is_array(result[0]) and _is_array(result[1]):
        raise DatasetError(f"{name}: the function returned one (x, y) pair; {usage}, e.g. ((x_train, y_train), (x_test, y_test))")
    short = target.rpartition(":")[2]
    source = f"{short}() from {target.rpartition(':')[0]}"
    if _is_array(result[0]) or isinstance(result[0], (tuple, list)):
        return from_arrays(result[0], result[1], name=name, source=source, loss=loss)
    return from_torch(result[0], result[1], name=name, source=source, loss=loss, max_memory=max_memory)
