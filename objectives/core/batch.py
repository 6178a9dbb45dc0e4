"""The batch contract every metric checks before it measures anything (:func:`validate_batch`)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["validate_batch"]


def validate_batch(model: nn.Module, inputs: Tensor | None, targets: Tensor | None, *, data: bool = True,
                   labels: bool = True) -> None:
    """The batch contract of every metric.

    Always: a model with trainable parameters, and inputs (when given) as a tensor with at least one
    example. With ``data`` (the metric reads the input values): inputs required and finite. With
    ``labels``: targets required, as many as inputs. Data-free metrics (``params``, ``flops``,
    ``synflow``) may be called with ``targets=None`` (and ``params`` with ``inputs=None``).

    Raises:
        ValueError: saying which of these fails.
    """
    if inputs is not None or data or labels:
        if not isinstance(inputs, Tensor):
            raise ValueError("inputs must be a torch tensor")
        if inputs.dim() == 0 or inputs.shape[0] == 0:
            raise ValueError("empty batch: inputs must have at least one example along dim 0")
    if labels:
        if not isinstance(targets, Tensor):
            raise ValueError("targets must be a torch tensor")
        if targets.dim() == 0 or targets.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"inputs and targets disagree on the batch size: {inputs.shape[0]} inputs vs "
                f"{targets.shape[0] if targets.dim() else 'a scalar'} targets"
            )
    if data and inputs.is_floating_point() and not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or inf values")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("the model has no trainable parameters (none with requires_grad=True)")
