"""BatchNorm while probing: ``bn_mode="frozen"`` (batch statistics frozen into a fixed affine map).

BatchNorm couples the examples of a batch, so "the gradient of example i" needs a definition
(DESIGN.md §2). In ``frozen`` mode one train-mode forward pass (:func:`collect_batch_norm_stats`, on
cloned buffers) collects each BN layer's batch mean and biased variance; :func:`frozen_buffers`
substitutes them for the running statistics so that eval-mode BN reproduces the train-mode
normalization of that batch exactly, with the examples no longer interacting. The ``contribution``
mode lives in :mod:`objectives.core.gradients`. Dropout is always off while probing
(:func:`probing_mode`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor, nn

from .hooks import eval_mode, functional_forward, hooked

__all__ = ["BN_MODES", "BN_TYPES", "probing_mode", "collect_batch_norm_stats", "frozen_buffers"]

BN_MODES = ("frozen", "contribution")
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
BN_TYPES = _BN_TYPES


@contextlib.contextmanager
def probing_mode(model: nn.Module, norm_train: bool) -> Iterator[nn.Module]:
    """Context manager: dropout etc. off (eval), normalization layers in ``norm_train`` mode.

    Restores every module's ``training`` flag on exit, so the caller's model is left as found.
    """
    with eval_mode(model):
        if norm_train:
            for m in model.modules():
                if isinstance(m, _BN_TYPES):
                    m.train()
        yield model


def _bn_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in model.named_modules():
        if isinstance(m, _BN_TYPES):
            yield name, m


def collect_batch_norm_stats(
    model: nn.Module, inputs: Tensor, return_output: bool = False
) -> dict[str, tuple[Tensor, Tensor]] | tuple[dict[str, tuple[Tensor, Tensor]], Tensor]:
    """Batch mean and biased variance seen by every BatchNorm layer in a train-mode forward pass.

    Runs on cloned buffers through ``functional_call`` so the model's running statistics are
    untouched. Returns module name -> (mean, var), each of shape (C,); with ``return_output`` also
    the model's output on the batch (equal to the frozen-statistics output of the same batch).
    """
    stats: dict[str, tuple[Tensor, Tensor]] = {}

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            dims = [0] + list(range(2, x.dim()))
            stats[name] = (x.mean(dims), x.var(dims, unbiased=False))

        return hook

    pairs = [(m, make_hook(name)) for name, m in _bn_modules(model)]
    with hooked(pairs, kind="forward_pre"), torch.no_grad(), probing_mode(model, norm_train=True):
        out = functional_forward(model, inputs)
    return (stats, out) if return_output else stats


def frozen_buffers(model: nn.Module, stats: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """The model's buffers with each BN layer's running mean/var replaced by frozen batch stats.

    In eval mode BatchNorm computes (x - running_mean) / sqrt(running_var + eps); substituting the
    batch mean and biased variance reproduces the train-mode normalization of that batch exactly,
    but as a fixed affine map (examples no longer interact).
    """
    buffers = dict(model.named_buffers())
    for name, m in _bn_modules(model):
        if name not in stats:
            continue  # layer not reached by the forward pass
        if m.running_mean is None:
            raise NotImplementedError(
                f"bn_mode='frozen' needs running-stat buffers, but BatchNorm layer {name!r} has "
                "track_running_stats=False; use bn_mode='contribution'"
            )
        prefix = f"{name}." if name else ""
        mean, var = stats[name]
        buffers[prefix + "running_mean"] = mean
        buffers[prefix + "running_var"] = var
    return buffers
