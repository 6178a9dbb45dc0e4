"""Data collection: layers in depth order, minibatch gradients at fixed weights, the gradient history.

A *layer* is one trainable parameter tensor (by default only tensors with ``ndim > 1``). Its *depth* is
the order in which the module that owns it first runs in a forward pass (:func:`layer_order`). A
*minibatch gradient* is the gradient of the mean loss over a batch with BatchNorm in train mode (batch
statistics, as in SGD; running buffers are cloned, so untouched) and dropout off. The T minibatch
gradients of random batches at fixed weights form the "gradient history matrix" of [001]
(:class:`GradientHistory`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.batch_norm import probing_mode
from ..core.hooks import functional_forward, hooked, trainable_parameters
from ._common import is_layer, layer_subsets

__all__ = ["Batch", "layer_order", "layer_gradients", "random_batches", "GradientHistory", "gradient_history"]

Batch = tuple[Tensor, Tensor]


def layer_order(model: nn.Module, inputs: Tensor | None = None) -> list[str]:
    """Names of the trainable parameters, ordered by depth.

    With ``inputs``, depth is the order in which each parameter's owning module first runs in a
    forward pass of one example (eval mode, cloned buffers: the model is untouched); parameters whose
    module never runs come last. Without ``inputs``, registration (``named_parameters``) order.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if inputs is None:
        return names
    owner: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}
    seen: set[str] = set()
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if full in names and full not in seen:
                owner.setdefault(id(m), []).append(full)
                modules[id(m)] = m
                seen.add(full)
    order: list[str] = []

    def hook(module: nn.Module, args: tuple) -> None:
        for n in owner.get(id(module), []):
            if n not in order:
                order.append(n)

    with hooked(((m, hook) for m in modules.values()), kind="forward_pre"), torch.no_grad(), \
            probing_mode(model, norm_train=False):
        functional_forward(model, inputs[:1])
    return order + [n for n in names if n not in order]


def _eligible_layers(model: nn.Module, inputs: Tensor, weights_only: bool) -> list[str]:
    """The layers (:func:`~objectives.noise._common.is_layer`) of ``model`` in depth order."""
    params = dict(model.named_parameters())
    return [n for n in layer_order(model, inputs) if is_layer(params[n], weights_only)]


def layer_gradients(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Minibatch gradient of the mean loss, per parameter tensor, flattened.

    BatchNorm in train mode (batch statistics, as in an SGD step) on cloned buffers, dropout off; the
    model's parameters, buffers, ``.grad`` and train/eval flags are left as found.

    Args:
        model, inputs, targets, loss_fn: the network, one batch, a mean-reduced loss.
        names: parameters to return (default: all trainable ones), in this order.

    Returns:
        name -> flat gradient (detached, on the model's device). An unused parameter gets zeros.

    Raises:
        ValueError: a non-scalar or non-finite loss.
    """
    params = trainable_parameters(model)
    names = list(params) if names is None else list(names)
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad(), probing_mode(model, norm_train=True):
        out = functional_forward(model, inputs, leaves)
        loss = loss_fn(out, targets)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar (mean over the batch), got {tuple(loss.shape)}")
        if not torch.isfinite(loss):
            raise ValueError(f"the loss is not finite ({loss.item()})")
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    return {
        n: (g if g is not None else torch.zeros_like(leaves[n])).detach().reshape(-1)
        for n, g in zip(names, grads)
    }


def random_batches(
    inputs: Tensor, targets: Tensor, batch_size: int, num_batches: int, seed: int = 0
) -> Iterator[Batch]:
    """``num_batches`` random minibatches of ``batch_size`` examples from ``(inputs, targets)``.

    Each batch is drawn without replacement, batches independently of each other (i.i.d. sampling of
    the SGN at fixed weights), from a CPU generator seeded with ``seed``.
    """
    n = inputs.shape[0]
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(int(num_batches)):
        idx = torch.randperm(n, generator=gen)[:batch_size].to(inputs.device)
        yield inputs[idx], targets[idx]


@dataclass
class GradientHistory:
    """T minibatch gradients at fixed weights, per layer (the "gradient history matrix" of [001]).

    Attributes:
        layers: name -> (T, d) float32 CPU tensor; d is the layer size, or the number of sampled
            entries when ``max_weights_per_layer`` was set. Ordered by depth.
        norms: name -> (T,) numpy array of the *full* layer gradient norms.
        sizes: name -> full number of entries of the layer.
        indices: name -> sampled flat indices (``None``: all entries).
        batch_size: examples per minibatch.
    """

    layers: dict[str, Tensor]
    norms: dict[str, np.ndarray]
    sizes: dict[str, int]
    indices: dict[str, Tensor | None]
    batch_size: int

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    @property
    def num_batches(self) -> int:
        return int(next(iter(self.layers.values())).shape[0]) if self.layers else 0

    def matrix(self, names: Sequence[str] | None = None) -> Tensor:
        """The (T, n) matrix of the chosen layers side by side (default: all)."""
        names = self.names if names is None else list(names)
        return torch.cat([self.layers[n] for n in names], dim=1)


def gradient_history(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: Any = F.cross_entropy,
    *,
    weights_only: bool = True,
    max_weights_per_layer: int | None = None,
    seed: int = 0,
) -> GradientHistory:
    """Collect the minibatch gradients of ``batches`` at the model's current weights (no update).

    One forward/backward per batch (see :func:`layer_gradients`). Cost: T training steps; memory
    T x (sum of the kept layer sizes) floats on the CPU.

    Args:
        model: the network (untouched).
        batches: iterable of ``(inputs, targets)``, all of the same size (e.g. :func:`random_batches`).
        loss_fn: mean-reduced loss.
        weights_only: only tensors with ``ndim > 1`` (default) or every trainable tensor.
        max_weights_per_layer: keep a fixed random subset of at most this many entries per layer
            (drawn once from ``seed``, reused for every batch); ``None`` keeps all.
        seed: seed of the entry subset.

    Raises:
        ValueError: no batches, batches of different sizes, no eligible layer, a non-finite loss.
    """
    it = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("gradient_history needs at least one batch") from None
    params = dict(model.named_parameters())
    names = _eligible_layers(model, first[0], weights_only)
    if not names:
        raise ValueError("the model has no eligible layer (trainable tensors with ndim > 1)")
    sizes = {n: int(params[n].numel()) for n in names}
    indices = layer_subsets(sizes, max_weights_per_layer, torch.Generator().manual_seed(int(seed)))
    rows: dict[str, list[Tensor]] = {n: [] for n in names}
    norms: dict[str, list[float]] = {n: [] for n in names}
    batch_size = int(first[0].shape[0])
    for x, y in itertools.chain([first], it):
        if int(x.shape[0]) != batch_size:
            raise ValueError(f"all batches must have the same size: {batch_size} then {x.shape[0]}")
        grads = layer_gradients(model, x, y, loss_fn, names=names)
        for n in names:
            g = grads[n]
            norms[n].append(float(g.double().norm()))
            idx = indices[n]
            rows[n].append((g if idx is None else g[idx.to(g.device)]).float().cpu())
    return GradientHistory(
        layers={n: torch.stack(rows[n]) for n in names},
        norms={n: np.asarray(norms[n]) for n in names},
        sizes=sizes,
        indices=indices,
        batch_size=batch_size,
    )
