"""In-training step-consistency: kappa_W of each real SGD step, almost for free."""

from __future__ import annotations


import torch
from torch import Tensor, nn


__all__ = ["InTrainingStepConsistency"]


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
