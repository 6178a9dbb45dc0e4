"""meco: summed minimum eigenvalue of the channel correlation of module outputs (Jiang et al. 2023)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.hooks import hooked
from ..core.probe import Probe
from ..registry import register_metric
from ._harness import LossFn, _Functional
from ._passes import shared_passes

__all__ = ["meco", "min_correlation_eigenvalue"]


def min_correlation_eigenvalue(feature: Tensor) -> float:
    """``λ_min`` of the Pearson correlation matrix across the channels of one example's feature map.

    ``feature`` has shape ``(C, *S)``: row ``c`` holds channel ``c``'s values at the ``prod(S)`` positions.
    Entries that are NaN or infinite (a constant channel, or a single position) are set to 0, as in the
    reference; computed in float64 with ``torch.linalg.eigvalsh`` (the matrix is symmetric).
    """
    rows = feature.detach().reshape(feature.shape[0], -1).double()
    if rows.shape[1] < 2:  # one position: every correlation is NaN, zeroed; the zero matrix has λ_min = 0
        return 0.0
    corr = torch.nan_to_num(torch.corrcoef(rows), nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


@register_metric(
    "meco",
    direction="maximize",
    needs=("module_outputs",),
    cost="cheap",
    citation="Jiang et al., MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue "
             "of Correlation, NeurIPS 2023 (HamsterMimi/MeCo)",
)
def meco(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    probe: Probe | None = None,
) -> float:
    """MeCo: the sum over modules of the minimum eigenvalue of the channel correlation of their output.

    For every module ``m`` of the model (``model.modules()``: the root, containers and leaves alike, each
    call counted, as the reference's forward hook on every ``named_modules()`` entry) whose output is a tensor
    with at least 2 dimensions, take example 0's feature map ``f_m`` of shape ``(C_m, *S)``, its Pearson
    correlation matrix across the ``C_m`` channels (over the ``prod(S)`` positions) ``P_m``, and

    ``MeCo = Σ_m λ_min(P_m)``

    (Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of
    Correlation", NeurIPS 2023; ``compute_meco`` of HamsterMimi/MeCo). NaN/inf correlations (constant
    channels; outputs with one position per channel, such as Linear layers and pooled vectors) are set to 0
    and NaN/inf eigenvalues are left out, as in the reference; so an output without spatial positions adds 0
    (MeCo of an MLP is 0). ``λ_min ∈ [0, 1]`` (up to rounding); it is 0 when the channels outnumber the
    positions.

    This is plain MeCo, not the paper's ``MeCo_opt`` (which samples 8 channels per module at random and
    rescales ``λ_min`` by ``C_m / 8``): plain MeCo needs no random choice and is the variant behind the
    abstract's headline figure (Spearman 0.89 on NATS-Bench-TSS, CIFAR-10).

    The whole batch goes through the model (so train-mode BatchNorm sees the batch statistics); only
    example 0's feature maps are read. The published protocol is one example (a batch of one, "one random
    data"): pass ``inputs[:1]``. The model is evaluated in the train/eval mode it is given (the reference
    scores freshly built, i.e. train-mode, networks), on detached parameters and cloned buffers;
    ``targets`` and ``loss_fn`` are ignored.

    Direction: maximize. Cost: one forward pass without gradients plus one ``C x C`` eigendecomposition per
    module output.

    Args:
        model: the network (not modified).
        inputs: a batch of floating inputs; example 0 is scored.
        targets: ignored.
        loss_fn: ignored.
        probe: the :class:`~objectives.core.probe.Probe` of :func:`objectives.score`, through which the metrics of
            one call share their passes (:mod:`._passes`); the value is the same.

    Returns:
        ``Σ_m λ_min(P_m)``.

    Raises:
        ValueError: non-finite inputs.

    Example::

        meco(model, torch.randn(1, 3, 32, 32), None)  # one random example, the published protocol
    """
    del targets, loss_fn
    if inputs.is_floating_point() and not bool(torch.isfinite(inputs).all()):
        raise ValueError("inputs contain NaN or inf values")
    passes = shared_passes(probe, model, inputs)
    outputs = None if passes is None else passes.module_outputs()
    if outputs is not None:  # example 0 of each output, copied as the module returned it: the same values
        values = [min_correlation_eigenvalue(o) for o in outputs]
    else:
        values = []

        def hook(module: nn.Module, args: tuple, out: object) -> None:
            if isinstance(out, Tensor) and out.dim() >= 2:
                values.append(min_correlation_eigenvalue(out[0]))

        with torch.no_grad(), hooked((m, hook) for m in model.modules()):
            _Functional(model)(inputs.detach())
    return float(sum(v for v in values if math.isfinite(v)))
