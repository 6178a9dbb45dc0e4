"""``spectrum_s``: power-law exponent of the gradient-noise covariance spectrum ([001] eq. 8)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe
from ..registry import register_metric
from ._common import P000, P001
from ._probe import probe_spectrum

__all__ = ["spectrum_s"]


@register_metric(
    "spectrum_s",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{P001}, eq. 8 (s = 1/(beta-1)); {P000}, Table 3",
)
def spectrum_s(
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
    """Power-law (Zipf) exponent s of the gradient-noise covariance spectrum, lambda_k ~ k^-s ([001]).

    The covariance of the per-example gradients g_i of the probe batch (all trainable parameters,
    masked like the probe; [001] builds it from B = 1 gradients too) has N - 1 nonzero eigenvalues
    (Gram trick, :func:`~objectives.noise.gram_eigenvalues`); its top K = min(``fit_k``, N - 1) are
    fitted with [001]'s MLE (eq. 8), beta = 1 + K / sum ln(lambda_i / lambda_K), and
    s = 1 / (beta - 1). [001] reports s ~ 0.9-1.4 from 1000 eigenvalues; with N - 1 values the
    estimate is rougher.

    Direction: maximize — a larger s concentrates the noise in fewer directions ([000]'s
    "anisotropic", structured noise of the reproducible early layers). Neither paper links s to
    trained accuracy; the direction is a hypothesis to validate. Cost: the shared per-example pass
    plus an N x N eigendecomposition.

    Args:
        fit_k: K of the fit.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.

    Raises:
        ValueError: a zero covariance (identical per-example gradients), too few eigenvalues.
    """
    spec = probe_spectrum(model, inputs, targets, loss_fn, probe, fit_k, bn_mode=bn_mode,
                          mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.check_finite(spec.power_law.s, "spectrum_s")
