"""The training loss of a dataset: a name, an import reference, or a function registered in this process.

A dataset's ``loss`` (``Dataset.loss``, the ``loss=`` option of a data reference) is a string, so that it
travels to every worker with the data:

- a built-in name (:data:`LOSSES`): ``cross_entropy`` (the default, classification), or one of the
  regression losses ``mse``, ``l1``, ``smooth_l1``, ``huber`` (float targets; the model has one output per
  target column);
- ``package.module:function`` or ``path/to/file.py:function``: a function of yours, ``loss(outputs, targets)
  -> scalar`` reduced by the mean (imported in every worker, like a ``module:function`` dataset);
- ``local:NAME``: a function passed from Python that has no import path (a lambda, a notebook cell):
  :func:`loss_reference` registers it in this process, so only an in-process search (``workers=1``) can
  use it.

Regression (float targets) has no accuracy: training reports the test loss instead, and the budget search
ranks its trained candidates by it.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch.nn.functional as F

from .dataset import DatasetError

__all__ = ["LOSSES", "REGRESSION_LOSSES", "is_regression_loss", "loss_reference", "resolve_loss"]

#: Built-in losses by name.
LOSSES: dict[str, Callable[..., Any]] = {
    "cross_entropy": F.cross_entropy, "mse": F.mse_loss, "l1": F.l1_loss, "smooth_l1": F.smooth_l1_loss,
    "huber": F.huber_loss,
}
#: The built-in losses whose targets are floats.
REGRESSION_LOSSES = ("mse", "l1", "smooth_l1", "huber")
_LOCAL: dict[str, Callable[..., Any]] = {}


def is_regression_loss(loss: str | None) -> bool:
    """True for a built-in regression loss name."""
    return loss in REGRESSION_LOSSES


def resolve_loss(loss: str | None) -> Callable[..., Any]:
    """The function a loss string names (module docstring); ``None`` is cross-entropy.

    Raises:
        DatasetError: An unknown name, an import reference that does not resolve to a function, or a
            ``local:`` name this process does not hold (the message says to pass ``workers=1``).
    """
    if loss is None:
        return F.cross_entropy
    if not isinstance(loss, str):
        raise DatasetError(f"a loss must be a name or module:function string, got {type(loss).__name__}")
    if loss in LOSSES:
        return LOSSES[loss]
    if loss.startswith("local:"):
        if loss not in _LOCAL:
            raise DatasetError(f"loss {loss} was passed from Python to another process: define it in a module "
                               "(or a .py file) so workers can import it, or search with workers=1")
        return _LOCAL[loss]
    if ":" not in loss:
        raise DatasetError(f"unknown loss {loss!r}; valid: {', '.join(LOSSES)}, or package.module:function / "
                           "file.py:function")
    from .user_function import import_function

    return import_function(loss, f"loss {loss}")


def loss_reference(loss: Any) -> str | None:
    """The string that names ``loss`` everywhere: a built-in name, ``module:qualname`` of an importable
    module-level function, else ``local:NAME`` (this process only). ``None`` stays ``None``.

    Raises:
        DatasetError: ``loss`` is neither a string nor callable, or a string :func:`resolve_loss` refuses.
    """
    if loss is None:
        return None
    if isinstance(loss, str):
        text = loss.strip()
        if ":" in text and not text.startswith("local:"):
            from .reference import canonical_reference

            text = canonical_reference(text)  # a file path made absolute, as a module:function dataset
        resolve_loss(text)
        return text
    if not callable(loss):
        raise DatasetError(f"loss_fn must be a function (outputs, targets) -> scalar or a name, got "
                           f"{type(loss).__name__}")
    for name, fn in LOSSES.items():
        if loss is fn:
            return name
    module, qualname = getattr(loss, "__module__", None), getattr(loss, "__qualname__", "")
    if module and module != "__main__" and qualname and "<" not in qualname:
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            if obj is loss:
                return f"{module}:{qualname}"
        except (ImportError, AttributeError):
            pass
    name = f"local:{getattr(loss, '__name__', 'loss').strip('<>')}-{id(loss):x}"
    _LOCAL[name] = loss
    return name
