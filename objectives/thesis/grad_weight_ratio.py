"""``grad_weight_ratio``: ||gbar|| / ||w||, the relative size of a gradient step per unit learning rate.

One SGD step of learning rate ``lr`` moves the weights by omega = -lr * gbar, a relative step
||omega|| / ||w|| = lr * ||gbar|| / ||w||: the quantity the thesis's step-consistency divides by
(Def. 2.5: kappa_W = ||gbar(w + omega) - gbar(w)|| ||w|| / (||omega|| ||gbar(w)||)). Multiplied by a
config's learning rate it says how far one real step goes; multiplied by kappa_W as well it predicts the
relative change of the gradient that step causes (``objectives.combine`` builds these products from a
table that holds ``lr``). Metrics see no config, so the learning rate is left out here.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS

__all__ = ["grad_weight_ratio"]


@register_metric(
    "grad_weight_ratio",
    direction="maximize",
    needs=("data", "labels", "batch_grad"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 2.5: the relative step ||omega|| / ||w|| of omega = lr * gbar, per unit lr",
)
def grad_weight_ratio(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient-to-weight norm ratio ||gbar(w)|| / ||w|| over the (masked) trainable parameters.

    ``lr * grad_weight_ratio`` is the relative weight change of one SGD step (without momentum) at
    learning rate ``lr``. A dead network (zero gradients) gives 0; a larger value means the same
    learning rate moves the weights further. The direction (maximize) is a placeholder hypothesis: the
    ratio is meant to be combined with the learning rate (see :mod:`objectives.combine`). Cost: one
    batch gradient (shared with kappa_w and its adaptations in :func:`objectives.score`).

    Args:
        model, inputs, targets, loss_fn: the network, one batch, and a mean-reduced loss.
        probe: a shared :class:`~objectives.core.probe.Probe` (then the probe options below are unused).
        bn_mode, mask_fraction, seed, chunk_size: probe options, see :class:`Probe`.

    Returns:
        ||gbar|| / ||w|| as a float.

    Raises:
        ValueError: bad batch or options, non-finite loss, all-zero weights.

    Example:
        >>> r = grad_weight_ratio(model, x, y)  # doctest: +SKIP
        >>> relative_step = 0.1 * r             # at lr = 0.1
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                  mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    w_norm = float(p.masked(p.weights).double().norm())
    if w_norm == 0:
        raise ValueError("grad_weight_ratio is undefined for all-zero weights")
    return C.check_finite(float(p.masked(p.batch_grad()).double().norm()) / w_norm, "grad_weight_ratio")
