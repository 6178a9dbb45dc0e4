"""``kappa_w``: step-consistency, the relative change of the batch gradient under a small weight step."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS

__all__ = ["step_consistency"]


@register_metric(
    "kappa_w",
    direction="minimize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 2.5 (eq. 2.24), directions Def. 2.6/2.7",
)
def step_consistency(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    eta: float = 1e-3,
    directions: str = "mean",
    num_directions: int | None = None,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Step-consistency kappa_W: relative condition number of the batch gradient w.r.t. the weights.

    Thesis Def. 2.5, eq. 2.24 (same batch, i = j)::

        kappa_W = max_k ||gbar(w + omega_k) - gbar(w)|| * ||w|| / (||omega_k|| * ||gbar(w)||)

    Directions (Sec. 2.3): ``"mean"`` (Def. 2.7, default): omega = +-eta * gbar / ||gbar||_inf
    (2 directions); ``"examples"`` (Def. 2.6): omega = zeta * eta * g_i / ||g_i||, zeta = +-1,
    ``num_directions`` (default 4) random examples; ``"random"``: per-tensor-scaled Gaussian.

    Lower is better: a very high kappa_W means the gradient changes erratically from step to step
    (no convergence in the thesis' experiments). Cost: one batch gradient plus one per direction
    (3 training-step equivalents with the default).

    Args:
        model, inputs, targets, loss_fn: the network, one batch, and a mean-reduced loss.
        eta: perturbation scale (thesis default 1e-3).
        directions: ``"mean"``, ``"examples"`` or ``"random"``.
        num_directions: number of directions (``mean``: at most 2).
        probe: a shared :class:`~objectives.core.probe.Probe` (then the probe options below are unused).
        bn_mode, mask_fraction, seed, chunk_size: probe options, see :class:`Probe`.

    Returns:
        kappa_W as a float.

    Raises:
        ValueError: bad batch or options, non-finite loss, zero gradient.

    Example:
        >>> kw = step_consistency(model, x, y)  # doctest: +SKIP
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    omegas, grads, g0 = p.perturbed_grads(directions, num_directions, eta)
    w_norm = float(p.masked(p.weights).double().norm())
    values = [
        C.condition_ratio(gk - g0, g0, w_norm, float(o.double().norm()))
        for o, gk in zip(omegas, grads)
    ]
    return C.check_finite(max(values), "kappa_w")
