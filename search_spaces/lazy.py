"""Materialize lazy layers (``nn.LazyConv2d``, ``nn.LazyLinear``, ...) with one forward pass on a zero batch.

:meth:`SearchSpace.build <search_spaces.SearchSpace.build>` calls :func:`materialize` on every model it
returns, so a model written with lazy layers has real parameters before anything else touches it (metrics
read parameters, optimizers need them). Models without lazy layers are returned untouched (no forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import is_lazy

from search_spaces._errors import SpaceError, first_line

__all__ = ["dry_run", "has_lazy", "materialize"]


def has_lazy(model: nn.Module) -> bool:
    """Whether ``model`` holds a lazy module that still has uninitialized parameters or buffers."""
    return any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules())


def dry_run(model: nn.Module, input_shape: Sequence[int], what: str = "the model") -> Any:
    """Run ``model`` once on a zero batch of shape ``(2, *input_shape)`` and return its output.

    In eval mode under ``torch.no_grad()`` (batch norm uses and keeps its running statistics, dropout is
    off), then every module's training flag is restored. Lazy layers are materialized by this pass (their
    initialization draws from the current RNG, so inside a seeded build it is deterministic).

    Raises:
        SpaceError: the forward pass failed (one line: the batch shape and the error).
    """
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None and not is_lazy(ref) else None
    x = torch.zeros((2, *input_shape), device=device)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    except Exception as exc:  # noqa: BLE001 - any failure of user code becomes one line
        raise SpaceError(f"{what} failed on a zero batch of shape {tuple(x.shape)} "
                         f"(inputs of shape {tuple(input_shape)}): {first_line(exc)}") from exc
    finally:
        for m, training in modes:
            m.training = training


def materialize(model: nn.Module, input_shape: Sequence[int], what: str = "the model") -> nn.Module:
    """Give the lazy layers of ``model`` their parameters with one :func:`dry_run`; other models untouched.

    Returns:
        ``model`` itself (its lazy modules have become their ordinary counterparts).

    Raises:
        SpaceError: the forward pass failed, or left a parameter uninitialized (a lazy layer it never ran).
    """
    if not isinstance(model, nn.Module) or not has_lazy(model):
        return model
    dry_run(model, input_shape, what)
    left = [name for name, p in [*model.named_parameters(), *model.named_buffers()] if is_lazy(p)]
    if left:
        raise SpaceError(f"{what} still has uninitialized lazy parameters after a forward pass: {', '.join(left[:3])}"
                         f"{' ...' if len(left) > 3 else ''} (every lazy layer must run in forward())")
    return model
