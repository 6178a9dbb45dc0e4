"""Step-consistency: how much the batch gradient changes under a small weight step.

Definitions from J. Nelson, *Gradient Step-Consistency and Batch-Dissonance* (MS thesis, BYU 2022),
chapter 2 and Def. 4.1. gbar(w) is the batch gradient of the probe batch; omega_k are small weight
perturbations of scale eta (``directions``, thesis Sec. 2.3). Norms are 2-norms over the flattened,
optionally masked, trainable parameters.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core import vectors as C
from .core.probe import Probe, get_probe
from .registry import register_metric

__all__ = [
    "step_consistency",
    "min_gradient_cosine",
    "weight_gradient_diversity",
    "weight_gradient_coherence",
    "InTrainingStepConsistency",
]

_THESIS = "Nelson, Gradient Step-Consistency and Batch-Dissonance, BYU MS thesis 2022"


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
        probe: a shared :class:`~objectives.probe.Probe` (then the probe options below are unused).
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


def _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions, **po):
    p = get_probe(model, inputs, targets, loss_fn, probe, **po)
    return p.perturbed_grads(directions, num_directions, eta)


@register_metric(
    "min_cosine",
    direction="maximize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.1)",
)
def min_gradient_cosine(
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
    """Minimum weight-gradient cosine similarity C* (thesis Def. 4.1, eq. 4.1)::

        C* = min_k cos(gbar(w + omega_k), gbar(w))

    The step-consistency adaptation of gradient confusion (without its outer clamp at 0). Higher is
    better (1 = the gradient direction does not change under a small step). Shares the perturbed
    gradients of :func:`step_consistency` (same options, same cost, free when scored together).
    """
    _, grads, g0 = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                              bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                              chunk_size=chunk_size)
    return min(C.cosine(gk, g0) for gk in grads)


@register_metric(
    "weight_diversity",
    direction="minimize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.2)",
)
def weight_gradient_diversity(
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
    """Weight-gradient diversity D_n (thesis Def. 4.1, eq. 4.2)::

        D_n = sum_k ||gbar(w + omega_k)||^2 / ||sum_k gbar(w + omega_k)||^2

    1/n when the perturbed gradients coincide (perfect step-consistency), larger when they differ.
    Lower is better. Same options and cost as :func:`step_consistency`.
    """
    _, grads, _ = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                             bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                             chunk_size=chunk_size)
    return C.diversity(grads)


@register_metric(
    "weight_coherence",
    direction="maximize",
    needs=("data", "labels", "perturbed"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 4.1 (eq. 4.3)",
)
def weight_gradient_coherence(
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
    """Weight-gradient coherence H_n (thesis Def. 4.1, eq. 4.3)::

        H_n = sum_k <gbar(w), gbar(w + omega_k)> / sum_k ||gbar(w + omega_k)||^2

    1 when the perturbed gradients equal gbar(w). Higher is better (closer to 1). Same options and
    cost as :func:`step_consistency`.
    """
    _, grads, g0 = _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions,
                              bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                              chunk_size=chunk_size)
    return C.coherence(g0, grads)


class InTrainingStepConsistency:
    """In-training step-consistency kappa_W, free during training (thesis Sec. 2.2, after eq. 2.24).

    With n = 1 and consecutive batches chi_i, chi_j, the step the optimizer takes *is* the
    perturbation: for plain SGD omega = -lr * gbar(w, chi_i) and::

        kappa_W ~= ||gbar(w + omega, chi_j) - gbar(w, chi_i)|| * ||w|| / (lr * ||gbar(w, chi_i)||^2)

    This helper uses the displacement the optimizer actually made, ||omega|| = ||w_{t+1} - w_t||,
    which equals lr * ||gbar|| under plain SGD and stays a valid condition-number ratio under
    momentum or weight decay. Call :meth:`update` after ``loss.backward()`` and before
    ``optimizer.step()`` on every step; it returns None on the first call, then the value for the
    previous step. Cost: two parameter-sized copies and a few norms per step.

    Example::

        tracker = InTrainingStepConsistency(model)
        for x, y in loader:
            opt.zero_grad(); loss_fn(model(x), y).backward()
            k = tracker.update()          # kappa_W of the previous step (None at first)
            opt.step()
    """

    def __init__(self, model: nn.Module) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self._prev_w: Tensor | None = None
        self._prev_g: Tensor | None = None
        self.history: list[float] = []

    def _flat(self, grads: bool) -> Tensor:
        parts = []
        for p in self.params:
            if grads:
                parts.append(torch.zeros_like(p).reshape(-1) if p.grad is None else p.grad.reshape(-1))
            else:
                parts.append(p.detach().reshape(-1))
        return torch.cat(parts).detach().clone()

    def update(self) -> float | None:
        """Read the current weights and gradients; return kappa_W of the step just taken."""
        w, g = self._flat(False), self._flat(True)
        value = None
        if self._prev_w is not None:
            step = float((w - self._prev_w).norm())
            den = step * float(self._prev_g.norm())
            if den > 0:
                value = float((g - self._prev_g).norm()) * float(self._prev_w.norm()) / den
                self.history.append(value)
        self._prev_w, self._prev_g = w, g
        return value
