"""Shared passes inside one ``objectives.score`` call (issue 24 item 3): fewer network passes, same values.

References: metrics scored together equal the same metrics scored one by one, bit for bit (each alone
computes everything itself); the number of forward passes through the network, counted with a forward hook
on the root module, equals the count done by hand from the passes each quantity needs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from objectives import Probe, registry, score

PROBE_METRICS = [n for n in registry.names() if "probe" in registry.get(n).options]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


def _batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("bn_mode", ["frozen", pytest.param("contribution", marks=pytest.mark.slow)])
def test_scored_together_equals_scored_alone(bn_mode):
    model, (x, y) = _net(), _batch()
    opts = {"seed": 2, "bn_mode": bn_mode, "group_size": 4}
    together = score(model, x, y, metrics=PROBE_METRICS, **opts)
    for name in PROBE_METRICS:
        alone = score(model, x, y, metrics=[name], **{k: v for k, v in opts.items()
                                                         if k != "group_size" or k in registry.get(name).options})
        a, b = together[name], alone[name]
        assert a == b or (math.isnan(a) and math.isnan(b)), f"{name}: {a!r} together, {b!r} alone"


def _forward_passes(metrics, **opts) -> int:
    model, (x, y) = _net(), _batch()
    count = [0]
    handle = model.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    try:
        score(model, x, y, metrics=metrics, **opts)
    finally:
        handle.remove()
    return count[0]


def test_kappa_x_with_the_batch_gradient_runs_the_network_three_times():
    # by hand: the BN-statistics pass of the probe; one forward for the batch gradient and the input
    # gradients together; one vmapped per-example pass for kappa_x's m examples and their n x m perturbed
    # copies (one chunk). Before passes were shared it was 5: BN stats, gbar, h_X, the per-example pass
    # over the batch, the perturbed examples.
    assert _forward_passes(["kappa_x", "grad_weight_ratio"]) == 3
    assert _forward_passes(["kappa_x"]) == 3  # BN stats, h_X, one per-example pass
    assert _forward_passes(["grad_weight_ratio"]) == 2  # BN stats, gbar
    # kappa_w: BN stats, gbar (with h_X for kappa_x), two perturbed batch gradients, kappa_x's pass
    assert _forward_passes(["kappa_w", "kappa_x", "grad_weight_ratio"]) == 5


def test_expect_only_changes_the_number_of_passes():
    model, (x, y) = _net(), _batch()
    plain = Probe(model, x, y)
    shared = Probe(model, x, y).expect({"batch_grad", "input_grad"})
    assert torch.equal(shared.input_grads(), plain.input_grads())
    assert torch.equal(shared.batch_grad(), plain.batch_grad())
    assert shared.loss == plain.loss
