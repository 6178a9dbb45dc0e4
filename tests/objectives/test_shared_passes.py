"""Shared passes inside one ``objectives.score`` call (issue 24 item 3): fewer network passes, same values.

References: metrics scored together equal the same metrics scored one by one, bit for bit (each alone
computes everything itself); the number of forward passes through the network, counted with a forward hook
on the root module, equals the count done by hand from the passes each quantity needs. Among them the rung-0
pool a budgeted search scores at every candidate, with the zero-cost proxies' shared own-mode pass
(objectives/zero_cost/_passes.py), on a model in train mode, in eval mode, and with train-mode dropout.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from objectives import Probe, registry, score
from search_spaces import get_space

PROBE_METRICS = [n for n in registry.names() if "probe" in registry.get(n).options]
#: The metrics a budgeted search scores at every candidate's rung 0.
RUNG0_POOL = ["az_expressivity", "az_progressivity", "grad_weight_ratio", "meco", "synflow", "params", "flops",
              "snip", "grad_norm"]


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


def _resnet(mode: str) -> nn.Module:
    space = get_space("resnet_cifar")
    config = space.validate({**space.default_config(), "blocks": 1, "width": 8, "norm": "bn"})
    model = space.build(config, 10, (3, 8, 8), seed=3)
    if mode == "eval":
        model.eval()
    if mode == "one_bn_eval":  # train mode but one BN in eval: AZ-NAS (which sets train mode) needs its own pass
        next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d)).eval()
    if mode == "dropout":  # train-mode dropout draws from the generator score() seeds before every metric
        block = model.stages[0][0]
        block.conv2 = nn.Sequential(nn.Dropout(0.5), block.conv2)
    return model


@pytest.mark.parametrize("mode,bn_mode", [("train", "frozen"), ("train", "contribution"), ("eval", "frozen"),
                                          ("one_bn_eval", "frozen"), ("dropout", "frozen")])
def test_the_rung0_pool_scored_together_equals_each_metric_alone(mode, bn_mode):
    model, (x, y) = _resnet(mode), _batch()
    together = score(model, x, y, metrics=RUNG0_POOL, seed=1, bn_mode=bn_mode)
    assert together.errors == {}
    for name in RUNG0_POOL:
        alone = score(model, x, y, metrics=[name], seed=1, bn_mode=bn_mode)[name]
        assert together[name] == alone, f"{name}: {together[name]!r} together, {alone!r} alone"
    if mode == "train":  # the proxies called directly, without a probe: their code from before passes were shared
        for name in ["az_expressivity", "az_progressivity", "meco", "snip", "grad_norm"]:
            assert registry.get(name).fn(model, x, y) == together[name], name


def _forward_passes(metrics, model=None, **opts) -> int:
    model, (x, y) = model if model is not None else _net(), _batch()
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


def test_the_rung0_pool_runs_the_network_five_times():
    # by hand: the probe's BN-statistics pass and grad_weight_ratio's batch gradient (frozen BN); one pass in the
    # model's own (train) mode with gradients for snip and grad_norm, meco's module outputs and the AZ-NAS
    # features; flops's counted pass; synflow's pass on one all-ones example. Before passes were shared: 9.
    assert _forward_passes(RUNG0_POOL, _resnet("train")) == 5
    # in eval mode AZ-NAS's train-mode pass is not the model's own: one more
    assert _forward_passes(RUNG0_POOL, _resnet("eval")) == 6
    # a probe that only carries the zero-cost passes computes nothing of its own (no BN-statistics pass)
    assert _forward_passes(["az_expressivity", "az_progressivity"]) == 1
    assert _forward_passes(["snip", "grad_norm", "meco"]) == 1
    assert _forward_passes(["snip"]) == 1


def test_a_probe_for_zero_cost_passes_only_does_not_compute_its_loss():
    model, (x, y) = _net(), _batch()
    bad_loss = lambda out, t: out.sum() * float("inf")  # noqa: E731
    with pytest.raises(ValueError, match="not finite"):
        score(model, x, y, metrics=["grad_weight_ratio"], loss_fn=bad_loss)
    values = score(model, x, y, metrics=["meco", "az_expressivity"], loss_fn=bad_loss)
    assert values.errors == {} and values["meco"] == score(model, x, y, metrics=["meco"])["meco"]


def test_expect_only_changes_the_number_of_passes():
    model, (x, y) = _net(), _batch()
    plain = Probe(model, x, y)
    shared = Probe(model, x, y).expect({"batch_grad", "input_grad"})
    assert torch.equal(shared.input_grads(), plain.input_grads())
    assert torch.equal(shared.batch_grad(), plain.batch_grad())
    assert shared.loss == plain.loss
