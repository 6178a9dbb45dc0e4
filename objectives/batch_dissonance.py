"""Batch-dissonance: how much the gradients of different examples (or groups) disagree.

Definitions from J. Nelson, *Gradient Step-Consistency and Batch-Dissonance* (MS thesis, BYU 2022),
chapter 3, and the papers it reviews (Sankararaman et al. 2020; Yin et al. 2018; Chatterjee &
Zielinski 2020; Balduzzi et al. 2017). g_i are per-example weight gradients of the probe batch
(optionally masked), h_X(x_i) per-example input gradients.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core import vectors as C
from .core.linalg import gaussian_stable_rank, stable_rank
from .core.probe import Probe, get_probe
from .registry import register_metric

__all__ = [
    "batch_dissonance",
    "gradient_confusion",
    "gradient_diversity",
    "gradient_coherence",
    "relative_gradient_rank",
]

_THESIS = "Nelson, Gradient Step-Consistency and Batch-Dissonance, BYU MS thesis 2022"


@register_metric(
    "kappa_x",
    direction="minimize",
    needs=("data", "labels", "per_example", "input_grad"),
    cost="moderate",
    citation=f"{_THESIS}, Def. 3.4 (eqs. 3.15-3.16), directions Def. 3.5",
)
def batch_dissonance(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    eta: float = 1e-3,
    num_directions: int = 4,
    num_examples: int | None = 8,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Batch-dissonance kappa_X: relative condition number of h_W w.r.t. the input (Def. 3.4)::

        kappa_X = (1/m) sum_{i<m} max_k ||h_W(w, x_i + delta_k, t_i) - h_W(w, x_i, t_i)|| * ||x_i||
                                        / (||delta_k|| * ||h_W(w, x_i, t_i)||)

    with one shared set of n directions (Def. 3.5) delta_k = zeta * eta * h_X(x_j)/||h_X(x_j)||,
    zeta = +-1 and x_j drawn at random from the batch. Lower is better.

    Cost: one input-gradient backward plus n per-example-gradient passes over m examples
    (``num_directions`` x ``num_examples`` / B of a per-example pass over the batch). In
    contribution mode each direction needs a pass over the whole batch.

    Args:
        eta: perturbation scale (1e-3).
        num_directions: n, the number of input directions.
        num_examples: m, the examples averaged over (default 8, the first m of the batch;
            ``None``: the whole batch). The thesis only asks m, n <= b; 8 x 4 perturbed per-example
            gradients keep the whole thesis suite near 6 training steps (benchmarks/metric_cost.py).
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    b = p.batch_size
    m = b if num_examples is None else min(int(num_examples), b)
    n = int(num_directions)
    if m < 1 or not 1 <= n <= b:
        raise ValueError(f"need num_examples >= 1 and 1 <= num_directions <= {b}, got {m}, {n}")
    if not eta > 0:
        raise ValueError(f"eta must be positive, got {eta}")
    hx = p.input_grads()
    gen = p.generator(17)
    idx = torch.randperm(b, generator=gen)[:n]
    signs = (torch.randint(0, 2, (n,), generator=gen) * 2 - 1).to(hx)
    base = p.per_example_grads()[:m]
    x_norms = p.inputs.reshape(b, -1)[:m].double().norm(dim=1)
    deltas = []
    for k, j in enumerate(idx.tolist()):
        d = hx[j]
        if d.norm() == 0:
            raise ValueError(f"example {j} has a zero input gradient: batch-dissonance undefined")
        deltas.append((signs[k] * eta * d / d.norm()).reshape(p.inputs.shape[1:]))
    if p.bn_mode == "frozen":  # all n x m perturbed examples in one vmapped pass
        xs = torch.cat([p.inputs[:m] + d for d in deltas])
        moved_all = p.per_example_grads_at(xs, p.targets[:m].repeat(n, *[1] * (p.targets.dim() - 1)))
        moved = list(moved_all.split(m))
    else:  # train-mode statistics: each perturbed batch is a whole-batch pass
        moved = [p.per_example_grads(inputs=p.inputs + d, count=m) for d in deltas]
    base_norms = base.double().norm(dim=1)
    if (base_norms == 0).any():
        raise ValueError("an example has a zero weight gradient: batch-dissonance undefined")
    best = torch.zeros(m, dtype=torch.float64)
    for d, g in zip(deltas, moved):
        ratio = (g - base).double().norm(dim=1) * x_norms / (float(d.double().norm()) * base_norms)
        best = torch.maximum(best, ratio.cpu())
    return C.check_finite(float(best.mean()), "kappa_x")


def _group_grads(p: Probe, group_size: int) -> Tensor:
    return C.group_means(p.per_example_grads(), group_size)


@register_metric(
    "confusion",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.11 (eq. 3.24); Sankararaman et al., ICML 2020",
)
def gradient_confusion(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient confusion (thesis Def. 3.11, eq. 3.24; Sankararaman et al. 2020)::

        C = -min( min_{i != j} cos(gbar_i, gbar_j), 0 )

    over the batch gradients gbar_i of consecutive groups of ``group_size`` examples of the probe
    batch (default 8 groups of 8 for a batch of 64; all pairs). 0 when no two groups' gradients point
    apart; up to 1. Lower is better. Cost: one per-example gradient pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.confusion(_group_grads(p, group_size))


@register_metric(
    "diversity",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.12 (eq. 3.25); Yin et al., AISTATS 2018",
)
def gradient_diversity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Gradient diversity (thesis Def. 3.12, eq. 3.25; Yin et al. 2018)::

        D_n = sum_i ||gbar_i||^2 / ||sum_i gbar_i||^2

    over the n group gradients gbar_i (groups of ``group_size`` examples). 1/n for identical
    gradients, 1 for orthogonal ones of equal norm. Lower is better (thesis Fig. 3.17). Depends on n:
    compare networks at the same batch and group size. Cost: one per-example pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.diversity(_group_grads(p, group_size))


@register_metric(
    "coherence",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.13 (eq. 3.26); Chatterjee & Zielinski 2020",
)
def gradient_coherence(
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
    """Gradient coherence (thesis Def. 3.13, eq. 3.26; Chatterjee & Zielinski 2020)::

        H_b = sum_i <gbar, g_i> / sum_i ||g_i||^2,   gbar = mean_i g_i

    over the examples of the batch. 1 for identical per-example gradients, 1/b for orthogonal ones of
    equal norm. Higher means more coherent. Cost: one per-example pass (shared).
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    g = p.per_example_grads()
    return C.coherence(g.mean(0), g)


def relative_gradient_rank(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    variant: str = "input",
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = None,
) -> float:
    """Relative gradient rank R(A) / R(Y) (thesis Def. 3.7, eqs. 3.18-3.21; Balduzzi et al. 2017).

    A has the per-example gradients as columns — input gradients h_X (``variant="input"``, as in
    Balduzzi et al.) or weight gradients h_W (``variant="weight"``) — R is the stable rank
    ||A||_F^2 / ||A||_2^2 and Y a standard Gaussian matrix of the same shape (R(Y) cached per shape).
    Near 1: unstructured, white-noise gradients (shattered); near 0: correlated, informative ones.
    Lower is better; the thesis found input rank > 0.15 at initialization mostly fails to train.
    Cost: one backward (input) or one per-example pass (weight), plus a B x B eigendecomposition.
    """
    if variant not in ("input", "weight"):
        raise ValueError(f"variant must be 'input' or 'weight', got {variant!r}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    a = p.input_grads() if variant == "input" else p.per_example_grads()
    if a.shape[0] < 2:
        raise ValueError("relative gradient rank needs a batch of at least 2 examples")
    return stable_rank(a) / gaussian_stable_rank(a.shape[0], a.shape[1])


@register_metric(
    "rank_input",
    direction="minimize",
    needs=("data", "labels", "input_grad"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.7 with h = h_X; Balduzzi et al., ICML 2017",
)
def _rank_input(
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
    """Relative gradient rank of the input gradients (``relative_gradient_rank(variant="input")``)."""
    return relative_gradient_rank(model, inputs, targets, loss_fn, variant="input", probe=probe,
                                  bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                                  chunk_size=chunk_size)


@register_metric(
    "rank_weight",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_THESIS}, Def. 3.7 with h = h_W",
)
def _rank_weight(
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
    """Relative gradient rank of the weight gradients (``relative_gradient_rank(variant="weight")``)."""
    return relative_gradient_rank(model, inputs, targets, loss_fn, variant="weight", probe=probe,
                                  bn_mode=bn_mode, mask_fraction=mask_fraction, seed=seed,
                                  chunk_size=chunk_size)
