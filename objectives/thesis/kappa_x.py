"""``kappa_x``: batch-dissonance, the relative change of an example's gradient under a small input step."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import vectors as C
from ..core.probe import Probe, get_probe
from ..registry import register_metric
from ._common import _THESIS

__all__ = ["batch_dissonance"]


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

    Cost: one input-gradient backward (shared with the batch gradient in :func:`objectives.score`) plus
    one per-example-gradient pass over (n + 1) m examples: the m examples and their n x m perturbed
    copies, vmapped together (the same pass whatever else is scored, so a value does not depend on the
    other metrics of the call). In contribution mode each direction needs a pass over the whole batch.

    Args:
        eta: perturbation scale (1e-3).
        num_directions: n, the number of input directions.
        num_examples: m, the examples averaged over (default 8, the first m of the batch;
            ``None``: the whole batch). The thesis only asks m, n <= b; 8 x 4 perturbed per-example
            gradients keep the whole thesis suite near 6 training steps (benchmarks/metric_cost.py).
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.core.probe.Probe`.
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
    x_norms = p.inputs.reshape(b, -1)[:m].double().norm(dim=1)
    deltas = []
    for k, j in enumerate(idx.tolist()):
        d = hx[j]
        if d.norm() == 0:
            raise ValueError(f"example {j} has a zero input gradient: batch-dissonance undefined")
        deltas.append((signs[k] * eta * d / d.norm()).reshape(p.inputs.shape[1:]))
    if p.bn_mode == "frozen":  # the m examples and their n x m perturbed copies in one vmapped pass
        xs = torch.cat([p.inputs[:m]] + [p.inputs[:m] + d for d in deltas])
        rows = p.per_example_grads_at(xs, p.targets[:m].repeat(n + 1, *[1] * (p.targets.dim() - 1)))
        base, moved = rows[:m], list(rows[m:].split(m))
    else:  # train-mode statistics: each perturbed batch is a whole-batch pass
        base = p.per_example_grads()[:m]
        moved = [p.per_example_grads(inputs=p.inputs + d, count=m) for d in deltas]
    base_norms = base.double().norm(dim=1)
    if (base_norms == 0).any():
        raise ValueError("an example has a zero weight gradient: batch-dissonance undefined")
    best = torch.zeros(m, dtype=torch.float64)
    for d, g in zip(deltas, moved):
        ratio = (g - base).double().norm(dim=1) * x_norms / (float(d.double().norm()) * base_norms)
        best = torch.maximum(best, ratio.cpu())
    return C.check_finite(float(best.mean()), "kappa_x")
