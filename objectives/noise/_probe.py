"""Private helpers of the registered noise metrics: layers and sampled weights of a probe, its spectrum.

Every registered metric reads the probe batch's gradients through a :class:`~objectives.core.probe.Probe`
(shared with the other metrics scored together). Its flat vectors hold all trainable parameters side
by side (restricted to the probe's mask for per-example rows); these helpers cut them into layers,
draw a fixed random subset of weights per layer, and fit the covariance spectrum.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..core.probe import Probe, get_probe
from ._common import layer_subsets
from .collect import layer_order
from .spectrum import Spectrum, covariance_spectrum


def probe_layers(p: Probe, *, masked: bool, weights_only: bool, ordered: bool = False) -> dict[str, slice]:
    """name -> slice of that layer in the probe's flat vectors (masked per-example rows or full).

    Layers are tensors with ``ndim > 1`` unless ``weights_only`` is False; in registration order, or
    in depth order (:func:`~objectives.noise.layer_order`) when ``ordered``.

    Raises:
        ValueError: no eligible layer.
    """
    out: dict[str, slice] = {}
    offset = 0
    for name, t in p.params.items():
        size = p.mask[name].numel() if (masked and p.mask is not None) else t.numel()
        if t.dim() > 1 or not weights_only:
            out[name] = slice(offset, offset + size)
        offset += size
    if not out:
        raise ValueError("the model has no eligible layer (trainable tensors with ndim > 1)")
    if ordered:
        order = layer_order(p.model, p.inputs)
        out = {n: out[n] for n in order if n in out}
    return out


def sampled_per_example(
    p: Probe, *, weights_only: bool, max_weights: int | None, salt: int
) -> tuple[Tensor, dict[str, int]]:
    """The per-example gradients of at most ``max_weights`` random weights per layer.

    The weights are drawn from ``p.generator(salt)`` (:func:`~objectives.noise._common.layer_subsets`,
    layer by layer in registration order), among the masked per-example entries.

    Returns:
        the (N, P'') float64 CPU matrix, layers side by side; layer -> its number of columns.
    """
    layers = probe_layers(p, masked=True, weights_only=weights_only)
    sizes = {n: sl.stop - sl.start for n, sl in layers.items()}
    subsets = layer_subsets(sizes, max_weights, p.generator(salt))
    cols = [
        (torch.arange(sizes[n]) if subsets[n] is None else subsets[n]) + sl.start
        for n, sl in layers.items()
    ]
    per_ex = p.per_example_grads()
    idx = torch.cat(cols).to(per_ex.device)
    return per_ex[:, idx].double().cpu(), {n: c.numel() for n, c in zip(layers, cols)}


def probe_spectrum(
    model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: Any, probe: Probe | None,
    fit_k: int | None, **probe_options: Any,
) -> Spectrum:
    """:func:`~objectives.noise.covariance_spectrum` of the probe's per-example gradients, without the
    lognormal comparison.

    Raises:
        ValueError: a zero covariance, or fewer than 3 distinct nonzero eigenvalues (no power-law fit).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, **probe_options)
    spec = covariance_spectrum(p.per_example_grads(), fit_k=fit_k, compare_lognormal=False)
    if spec.power_law is None:
        raise ValueError("fewer than 3 distinct nonzero eigenvalues: no power-law fit (use a larger batch)")
    return spec
