"""Perturbation directions omega_k of step-consistency (thesis Sec. 2.3), drawn for a :class:`~objectives.Probe`.

``mean`` (Def. 2.7): omega = +-eta * gbar / ||gbar||_inf (at most 2). ``examples`` (Def. 2.6): omega =
zeta * eta * g_i / ||g_i||, zeta = +-1 at random, for ``num_directions`` examples chosen at random from the batch
(full, unmasked g_i). ``random``: Gaussian entries scaled per tensor by that tensor's weight std (1 where it is
0), omega = eta * z / ||z||_inf — the thesis's random baseline (Fig. 2.4). Every random choice comes from the
probe's seeded generators; :meth:`Probe.weight_directions` caches the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .probe import Probe

__all__ = ["weight_directions"]


def weight_directions(probe: Probe, directions: str, num_directions: int | None, eta: float) -> Tensor:
    """The rows omega_k (full parameter space) for ``probe``; see the module docstring.

    Raises:
        ValueError: an unknown ``directions``, a count out of range, a zero batch gradient (``mean``) or a
            zero example gradient (``examples``).
    """
    w = probe.weights
    if directions == "mean":
        n = 2 if num_directions is None else int(num_directions)
        if not 1 <= n <= 2:
            raise ValueError("directions='mean' draws at most 2 directions (+gbar and -gbar)")
        g = probe.batch_grad()
        scale = g.abs().max()
        if scale == 0:
            raise ValueError("the batch gradient is exactly zero: step-consistency is undefined")
        base = eta * g / scale
        omegas = torch.stack([base, -base][:n])
    elif directions == "examples":
        n = 4 if num_directions is None else int(num_directions)
        if not 1 <= n <= probe.batch_size:
            raise ValueError(f"num_directions must be in 1..{probe.batch_size}, got {n}")
        gen = probe.generator(11)
        idx = torch.randperm(probe.batch_size, generator=gen)[:n]
        signs = torch.randint(0, 2, (n,), generator=gen).to(w) * 2 - 1
        rows = []
        for k, i in enumerate(idx.tolist()):
            gi = probe.full_example_grad(i)
            norm = gi.norm()
            if norm == 0:
                raise ValueError(f"example {i} has a zero gradient: use directions='mean'")
            rows.append(signs[k] * eta * gi / norm)
        omegas = torch.stack(rows)
    elif directions == "random":
        n = 4 if num_directions is None else int(num_directions)
        if n < 1:
            raise ValueError(f"num_directions must be >= 1, got {n}")
        gen = probe.generator(13)
        rows = []
        for _ in range(n):
            parts = []
            for p in probe.params.values():
                std = p.float().std().item() if p.numel() > 1 else 0.0
                z = torch.randn(p.numel(), generator=gen) * (std if std > 0 else 1.0)
                parts.append(z)
            z = torch.cat(parts).to(w)
            rows.append(eta * z / z.abs().max())
        omegas = torch.stack(rows)
    else:
        raise ValueError(f"directions must be 'mean', 'examples' or 'random', got {directions!r}")
    return omegas
