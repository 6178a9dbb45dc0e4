"""[002] Gradient std tracking over training: the global std s_t of GAN and per-layer std and norm.

Yun tracks the layer-wise and global standard deviation of the raw gradients over training (Figs. 1-2)
and normalizes by the global one (GAN; the gradient transform lives with the training code). The same
tracker records [000]'s per-layer norms, so one pass over a training run feeds both papers' tables.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from ._common import is_layer
from .norms import NormProfile, layer_norm_profile

__all__ = ["eligible_grads", "global_gradient_std", "GradientStdTracker"]


def eligible_grads(params: Iterable[Tensor]) -> list[Tensor]:
    """The ``.grad`` of every parameter whose gradient has more than one dimension (GAN's S_t)."""
    return [p.grad for p in params if p.grad is not None and p.grad.dim() > 1]


def global_gradient_std(params: Iterable[Tensor]) -> float:
    """s_t = Std(concat of the raw gradients of all tensors with ndim > 1), unbiased (GAN eq. 1).

    Combined exactly from per-tensor means and variances (Chan et al.'s parallel formula, in float64),
    without concatenating the gradients. Returns NaN when fewer than two eligible entries exist.

    Args:
        params: parameters (their ``.grad`` is read; ``None`` gradients are skipped).
    """
    grads = eligible_grads(params)
    if not grads:
        return float("nan")
    moments = []
    for g in grads:
        var, mean = torch.var_mean(g.detach(), correction=0)
        moments.append(torch.stack([var.float(), mean.float()]))
    table = torch.stack(moments).double().cpu()  # one device -> host transfer
    counts = torch.tensor([float(g.numel()) for g in grads], dtype=torch.float64)
    n = counts.sum()
    if n < 2:
        return float("nan")
    mean = (counts * table[:, 1]).sum() / n
    m2 = (counts * table[:, 0]).sum() + (counts * (table[:, 1] - mean) ** 2).sum()
    return float(torch.sqrt(m2 / (n - 1)))


class GradientStdTracker:
    """Per-layer gradient std and norm, and the global gradient std s_t, over training steps ([002]).

    Call :meth:`update` after ``loss.backward()`` and *before* ``optimizer.step()`` (before a gradient
    transform such as GAN rewrites the ``.grad``s). Per step it records, for each layer, the unbiased
    std of vec(G_l) ([002] Fig. 1) and ||G_l||_2 ([000] Fig. 1), and the global std s_t of the
    concatenated raw gradients of all tensors with ndim > 1 ([002] Fig. 2; the same s_t GAN uses).
    Cost: one reduction per tensor per recorded step.

    Args:
        model: the network being trained.
        weights_only: record only tensors with ``ndim > 1`` (default).
        stride: record every ``stride``-th call.
        order: layer names in depth order (e.g. ``layer_order(model, x)``); default registration order.

    Example::

        tracker = GradientStdTracker(model)
        for x, y in loader:
            opt.zero_grad(); F.cross_entropy(model(x), y).backward()
            tracker.update()
            opt.step()
        tracker.summary()["global_std_spearman"]   # [002]: negative (global std decreases)
        tracker.norm_profile()                     # [000] Table 1
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        weights_only: bool = True,
        stride: int = 1,
        order: Sequence[str] | None = None,
    ) -> None:
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        named = dict(model.named_parameters())
        names = list(order) if order is not None else list(named)
        self.params = {n: named[n] for n in names if n in named and is_layer(named[n], weights_only)}
        self._all = [p for p in model.parameters() if p.requires_grad]
        self.stride = int(stride)
        self.calls = 0
        self.steps: list[int] = []
        self.global_std: list[float] = []
        self.layer_std: dict[str, list[float]] = {n: [] for n in self.params}
        self.layer_norm: dict[str, list[float]] = {n: [] for n in self.params}

    def update(self) -> float | None:
        """Record the current gradients; returns s_t (None when this call is skipped by the stride)."""
        self.calls += 1
        if (self.calls - 1) % self.stride:
            return None
        vals = []
        for p in self.params.values():
            g = p.grad
            if g is None:
                vals.append(torch.tensor([float("nan"), 0.0], dtype=torch.float64))
                continue
            g = g.detach()
            std = torch.std(g) if g.numel() > 1 else torch.zeros((), device=g.device)
            vals.append(torch.stack([std.float(), torch.linalg.vector_norm(g.float())]).double().cpu())
        for n, v in zip(self.params, vals):
            self.layer_std[n].append(float(v[0]))
            self.layer_norm[n].append(float(v[1]))
        s = global_gradient_std(self._all)
        self.global_std.append(s)
        self.steps.append(self.calls)
        return s

    def norm_profile(self, early: float = 0.2, late: float = 0.2) -> NormProfile:
        """[000]'s per-layer norm table over the recorded steps (:func:`layer_norm_profile`)."""
        return layer_norm_profile(self.layer_norm, early=early, late=late)

    def summary(self) -> dict[str, Any]:
        """Trends of the recorded series.

        Returns:
            ``global_std_spearman`` (rho of s_t vs step; [002]: negative), ``global_std_log_slope``
            (OLS slope of ln s_t per step), ``global_std_first``/``_last``, ``layers_rising`` (layers
            whose std has a positive Spearman rho with the step; [002]: layer-wise std is not
            monotone for every layer), ``layer_std_spearman`` (per layer), ``min_layer_std`` (the
            smallest layer std seen: a z-score normalization risk), ``num_steps``.
        """
        steps = np.asarray(self.steps, dtype=np.float64)
        s = np.asarray(self.global_std, dtype=np.float64)

        def rho(v: np.ndarray) -> float:
            ok = np.isfinite(v)
            if ok.sum() < 3 or np.ptp(v[ok]) == 0:
                return float("nan")
            return float(stats.spearmanr(steps[ok], v[ok]).statistic)

        ok = np.isfinite(s) & (s > 0)
        slope = float(np.polyfit(steps[ok], np.log(s[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
        per_layer = {n: rho(np.asarray(v, dtype=np.float64)) for n, v in self.layer_std.items()}
        all_std = [x for v in self.layer_std.values() for x in v if math.isfinite(x)]
        return {
            "num_steps": len(self.steps),
            "global_std_first": float(s[0]) if s.size else float("nan"),
            "global_std_last": float(s[-1]) if s.size else float("nan"),
            "global_std_spearman": rho(s),
            "global_std_log_slope": slope,
            "layers_rising": int(sum(1 for v in per_layer.values() if v > 0)),
            "layer_std_spearman": per_layer,
            "min_layer_std": float(min(all_std)) if all_std else float("nan"),
        }
