"""``spectrum_ks``: KS distance of the power-law fit to the gradient-noise spectrum ([001] eq. 7)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe
from ..registry import register_metric
from ._common import P001
from ._probe import probe_spectrum

__all__ = ["spectrum_ks"]


@register_metric(
    "spectrum_ks",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{P001}, eq. 7 (KS distance of the power-law fit, d_c = 1.36/sqrt(K))",
)
def spectrum_ks(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    fit_k: int | None = 1000,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """KS distance d_ks of the power-law fit to the gradient-noise covariance spectrum ([001] eq. 7).

    Same spectrum and fit as :func:`~objectives.noise.spectrum_s`; d_ks = sup |F_fitted - F_empirical|
    over the top K eigenvalues. [001] calls the spectrum power-law when d_ks < 1.36 / sqrt(K).

    Direction: minimize — [001] finds power-law spectra in nets that train normally and loses them
    in degenerate cases (width 10, linear nets without BN/ReLU, Adam, full batch); it does not rank
    trainable nets by d_ks, so the direction is a hypothesis to validate.
    Cost: as :func:`~objectives.noise.spectrum_s` (free when scored together, the per-example
    gradients are shared).

    Args:
        fit_k: K of the fit.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.
    """
    spec = probe_spectrum(model, inputs, targets, loss_fn, probe, fit_k, bn_mode=bn_mode,
                          mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.check_finite(spec.power_law.ks_distance, "spectrum_ks")
