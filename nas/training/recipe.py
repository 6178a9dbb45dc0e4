"""The training recipe's building blocks, written once: the optimizer, the device, JSON-safe numbers.

* :func:`make_optimizer` — the optimizer of a config, used by the early steps of every trial
  (:mod:`nas.evaluate`), by validation training (:mod:`nas.training.train`) and by
  ``python -m nas diagnose``;
* :func:`resolve_device` — ``"cpu"`` / ``"cuda"`` / None (CUDA when visible, else CPU);
* :func:`jsonable` — NaN and infinities become None (JSON has no NaN), recursively.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .grad_transforms import make_grad_transform

__all__ = ["make_optimizer", "resolve_device", "jsonable", "DEFAULT_LR", "DEFAULT_MOMENTUM", "DEFAULT_WEIGHT_DECAY"]

#: Values used when a config lacks the field (every space stores all three, DESIGN §5).
DEFAULT_LR, DEFAULT_MOMENTUM, DEFAULT_WEIGHT_DECAY = 0.1, 0.9, 5e-4


def make_optimizer(params_or_model: nn.Module | Iterable[Tensor], config: Mapping[str, Any]) -> Optimizer:
    """The optimizer of a candidate's config: SGD, Nesterov momentum, weight decay, gradient transform.

    ``torch.optim.SGD(params, lr, momentum, nesterov=momentum > 0, weight_decay)`` with the config's
    ``lr`` (default 0.1), ``momentum`` (0.9) and ``weight_decay`` (5e-4, applied to every parameter),
    wrapped by :func:`~nas.training.grad_transforms.make_grad_transform` with the config's
    ``grad_transform`` (``none`` | ``gan`` | ``gc`` | ``zscore``; ``none`` returns the SGD itself).

    Nesterov momentum everywhere, decided once: the early steps of a trial (:mod:`nas.evaluate`) are
    meant to predict how the candidate trains in validation (:mod:`nas.training.train`), so they
    must be the first steps of that same optimizer; ``diagnose`` measures the gradient noise of that
    same training too. (Nesterov needs momentum > 0, so a config with momentum 0 gets plain SGD.)

    Args:
        params_or_model: a module (its ``parameters()``) or an iterable of parameters.
        config: the candidate's config (validated by its space); only the fields above are read,
            plus ``optimizer``: ``"sgd"`` (the default, the recipe every search uses) or ``"adamw"``
            (``torch.optim.AdamW(lr, weight_decay)``, default betas; ``momentum`` ignored), which no space
            samples: it is paper 002's experimental recipe, used by ``python -m nas reproduce``.

    Returns:
        The optimizer; with a gradient transform, a
        :class:`~nas.training.grad_transforms.TransformedOptimizer` whose ``state_dict`` also holds the
        transform's state (GAN's exponent), so a resumed training keeps it.

    Raises:
        ValueError: an unknown ``grad_transform`` or ``optimizer``.

    Example::

        opt = make_optimizer(model, {"lr": 0.05, "grad_transform": "gan"})
    """
    name = str(config.get("optimizer", "sgd")).lower()
    if name not in ("sgd", "adamw"):
        raise ValueError(f"unknown optimizer {config.get('optimizer')!r}; valid: sgd, adamw")
    params = params_or_model.parameters() if isinstance(params_or_model, nn.Module) else params_or_model
    lr = float(config.get("lr", DEFAULT_LR))
    weight_decay = float(config.get("weight_decay", DEFAULT_WEIGHT_DECAY))
    if name == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        momentum = float(config.get("momentum", DEFAULT_MOMENTUM))
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay)
    return make_grad_transform(config.get("grad_transform", "none"), opt)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``torch.device(device)``; None (or ``""``) means CUDA when it is visible, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def jsonable(value: Any) -> Any:
    """``value`` with every NaN / infinity replaced by None, recursively, for JSON and Optuna attributes.

    Dicts keep their keys; lists and tuples become lists; NumPy scalars and arrays become Python
    numbers and lists. Anything else (str, int, bool, None, finite floats) is returned as is.
    """
    if isinstance(value, (np.generic, np.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
