"""Shared pieces of the thesis metrics: the citation, the perturbed batch gradients, group-mean gradients."""

from __future__ import annotations

from torch import Tensor

from ..core import vectors as C
from ..core.probe import Probe, get_probe

_THESIS = "Nelson, Gradient Step-Consistency and Batch-Dissonance, BYU MS thesis 2022"


def _perturbed(model, inputs, targets, loss_fn, probe, eta, directions, num_directions, **po):
    p = get_probe(model, inputs, targets, loss_fn, probe, **po)
    return p.perturbed_grads(directions, num_directions, eta)


def _group_grads(p: Probe, group_size: int) -> Tensor:
    return C.group_means(p.per_example_grads(), group_size)
