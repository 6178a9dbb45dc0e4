"""jacob_cov: eigenvalue score of the input-Jacobian correlation matrix (Mellor et al., arXiv v1, 2020)."""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import register_metric
from ._harness import _ABDELFATTAH, LossFn, _Functional

_LOG = logging.getLogger(__name__)

#: The additive constant of the jacob_cov score (the reference's ``k``).
JACOB_COV_K = 1e-5

__all__ = ["JACOB_COV_K", "jacob_cov"]


@register_metric(
    "jacob_cov",
    direction="maximize",
    needs=("data",),
    cost="cheap",
    citation=f"Mellor et al., NAS without Training, arXiv:2006.04647v1 (2020); {_ABDELFATTAH}",
)
def jacob_cov(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Jacobian covariance: ``-sum_i [log(v_i + k) + 1/(v_i + k)]`` over the eigenvalues ``v_i`` of corr(J).

    ``J`` has one row per example: the gradient of ``sum(model(x))`` (all outputs of the whole batch) with
    respect to that example's input, flattened; corr(J) is its ``B x B`` Pearson correlation matrix and
    ``k = 1e-5`` (Mellor et al., "Neural Architecture Search without Training", arXiv v1, 2020; ``jacob_cov``
    in Abdelfattah et al., ICLR 2021). Uncorrelated Jacobians (corr = I) give the maximum.
    In train mode, BatchNorm couples the examples, and the row of example ``i`` includes the effect of
    ``x_i`` on the other examples' outputs, as in the reference.

    The eigenvalues come from ``numpy.linalg.eigvalsh`` in float64 (the reference uses ``eig``; the matrix is
    symmetric, so the values agree up to rounding and are never complex). When an example's Jacobian is
    constant (zero variance, e.g. the output does not depend on the input) the correlation is undefined and
    the score is ``float("nan")`` (logged as a warning), as the reference's ``np.nan``.

    Direction: maximize. Cost: one forward and one backward pass to the inputs.

    Args:
        model: the network (not modified).
        inputs: a batch of at least 2 inputs.
        targets: ignored (the score uses no labels).
        loss_fn: ignored.

    Returns:
        The score, or ``nan`` when the correlation matrix is undefined.

    Raises:
        ValueError: fewer than 2 examples.

    Example::

        score = jacob_cov(model, x, y)
    """
    del targets, loss_fn
    if inputs.shape[0] < 2:
        raise ValueError("jacob_cov needs at least 2 examples")
    with torch.enable_grad():
        fn = _Functional(model)
        x = inputs.detach().clone().requires_grad_(True)
        total = fn(x).sum()
        (jac,) = torch.autograd.grad(total, x, allow_unused=True) if total.requires_grad else (None,)
    if jac is None:  # the output does not depend on the input
        jac = torch.zeros_like(x)
    j = jac.detach().reshape(jac.shape[0], -1).double().cpu().numpy()
    if np.any(j.std(axis=1) == 0):
        _LOG.warning("jacob_cov: an input Jacobian is constant, the correlation is undefined; returning nan")
        return float("nan")
    corr = np.corrcoef(j)
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOB_COV_K) + 1.0 / (v + JACOB_COV_K)))
