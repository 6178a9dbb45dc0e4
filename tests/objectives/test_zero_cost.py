"""Tests of the peer zero-cost proxies (objectives/zero_cost.py).

Each proxy is checked against a hand-computed value or an independent implementation written here (plain
autograd on hand-written forward passes, numpy), then every proxy is run through the same contract:
registered, float, deterministic, finite, and the model left exactly as found.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import objectives.zero_cost as zc
from objectives import registry

PROXIES = [
    "grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "zico", "params", "flops",
]


# ------------------------------------------------------------------------------------------------------------
# Small fixed networks and batches
# ------------------------------------------------------------------------------------------------------------


def _mlp(seed: int = 0, *, bn: bool = False, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(6, 8)]
    if bn:
        layers.append(nn.BatchNorm1d(8))
    layers += [act(), nn.Linear(8, 5), act(), nn.Linear(5, 3)]
    return nn.Sequential(*layers)


def _convnet(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    )


def _batch(shape: tuple[int, ...], n: int = 8, classes: int = 3, seed: int = 1):
    """A fixed Gaussian batch of ``n`` inputs of ``shape`` and random labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g)


MODELS = {
    "mlp": (lambda: _mlp(0), (6,)),
    "mlp_bn": (lambda: _mlp(0, bn=True), (6,)),
    "convnet_bn": (_convnet, (3, 6, 6)),
}


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


# ------------------------------------------------------------------------------------------------------------
# Registry metadata
# ------------------------------------------------------------------------------------------------------------


def test_registered_with_metadata():
    expected_needs = {
        "grad_norm": {"data", "labels"}, "snip": {"data", "labels"}, "grasp": {"data", "labels"},
        "fisher": {"data", "labels"}, "zico": {"data", "labels"}, "jacob_cov": {"data"}, "naswot": {"data"},
        "synflow": set(), "params": set(), "flops": set(),
    }
    for name in PROXIES:
        entry = registry.get(name)
        assert entry.fn is getattr(zc, name)
        assert entry.direction == "maximize"
        assert set(entry.needs) == expected_needs[name]
        assert entry.citation and entry.summary
    assert registry.get("naswot").options == ("random_inputs", "seed")
    assert registry.get("zico").options == ("num_batches",)
    assert sorted(zc.__all__) == sorted(PROXIES)


# ------------------------------------------------------------------------------------------------------------
# Hand-computed values and independent implementations
# ------------------------------------------------------------------------------------------------------------


def test_params_counts_trainable_once():
    model = _mlp()
    expected = sum(p.numel() for p in model.parameters())
    assert zc.params(model, *_batch((6,))) == float(expected) == 6 * 8 + 8 + 8 * 5 + 5 + 5 * 3 + 3
    model[0].bias.requires_grad_(False)
    assert zc.params(model, *_batch((6,))) == expected - 8
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert zc.params(tied, *_batch((4,))) == 16.0


def test_flops_of_linear_and_conv():
    lin = nn.Linear(7, 5)
    assert zc.flops(lin, *_batch((7,), n=4)) == 2 * 7 * 5
    conv = nn.Conv2d(3, 4, 3)  # 8x8 -> 6x6 output
    assert zc.flops(conv, *_batch((3, 8, 8), n=2)) == 2 * 4 * 3 * 3 * 3 * 6 * 6
    model = _convnet()
    assert zc.flops(model, *_batch((3, 6, 6), n=1)) == zc.flops(model, *_batch((3, 6, 6), n=8))


@pytest.mark.parametrize("bn", [False, True])
def test_synflow_closed_form_of_linear_chain(bn):
    # R = 1^T |W2| |W1| 1 and sum |W ⊙ dR/dW| = R for each layer of a bias-free chain, so the score is
    # log(2R); ReLU is the identity on the positive linearized signal and BatchNorm is bypassed.
    torch.manual_seed(3)
    norm = [nn.BatchNorm1d(6)] if bn else []
    layers = [nn.Linear(4, 6, bias=False), *norm, nn.ReLU(), nn.Linear(6, 2, bias=False)]
    model = nn.Sequential(*layers)
    w1, w2 = (layers[0].weight.detach().double().abs(), layers[-1].weight.detach().double().abs())
    r = float(torch.ones(2, dtype=torch.float64) @ w2 @ w1 @ torch.ones(4, dtype=torch.float64))
    dw1 = torch.outer(w2.sum(0), torch.ones(4, dtype=torch.float64))  # dR/d|W1|
    dw2 = torch.outer(torch.ones(2, dtype=torch.float64), w1.sum(1))  # dR/d|W2|
    by_hand = float((w1 * dw1).sum() + (w2 * dw2).sum())
    assert by_hand == pytest.approx(2 * r, rel=1e-12)
    x, y = _batch((4,), n=5)
    assert zc.synflow(model, x, y) == pytest.approx(math.log(2 * r), rel=1e-12)


def test_synflow_zero_flow_is_minus_inf(caplog):
    class Disconnected(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 2, bias=False)
            self.out = nn.Parameter(torch.ones(2))

        def forward(self, x):
            return self.lin(x) * 0.0 + self.out

    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        assert zc.synflow(Disconnected(), *_batch((3,))) == float("-inf")
    assert "synaptic flow is 0" in caplog.text


def test_synflow_matches_reference_procedure_on_bn_convnet():
    # the reference's procedure on a copy we may mutate: |state| in float64, BatchNorm -> identity, ones in
    model = _convnet()
    x, y = _batch((3, 6, 6))
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    for i, m in enumerate(net):
        if isinstance(m, nn.BatchNorm2d):
            net[i] = nn.Identity()
    net(torch.ones(1, 3, 6, 6, dtype=torch.float64)).sum().backward()
    total = sum(float((w.detach() * w.grad).abs().sum()) for w in _weights(net))
    assert zc.synflow(model, x, y) == pytest.approx(math.log(total), rel=1e-12)


def _manual_weight_grads(model, x, y):
    net = copy.deepcopy(model)
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return [(w.detach(), w.grad.detach()) for w in _weights(net)]


@pytest.mark.parametrize("name", ["mlp", "convnet_bn"])
def test_grad_norm_and_snip_match_manual_autograd(name):
    build, shape = MODELS[name]
    model = build()
    x, y = _batch(shape)
    pairs = _manual_weight_grads(model, x, y)
    assert zc.grad_norm(model, x, y) == pytest.approx(sum(float(g.norm()) for _, g in pairs), rel=1e-5)
    assert zc.snip(model, x, y) == pytest.approx(sum(float((w * g).abs().sum()) for w, g in pairs), rel=1e-5)


def test_grasp_matches_full_hessian():
    # independent: hand-written 2-layer tanh net, full Hessian of the loss in the flattened weights
    model = _mlp(2, act=nn.Tanh)[:3]  # Linear(6,8), Tanh, Linear(8,5)
    x, y = _batch((6,), classes=5)
    l1, l2 = model[0], model[2]
    w1, b1, w2, b2 = (t.detach().double() for t in (l1.weight, l1.bias, l2.weight, l2.bias))
    n1 = w1.numel()

    def loss(theta):
        a = torch.tanh(x.double() @ theta[:n1].view_as(w1).T + b1)
        return F.cross_entropy(a @ theta[n1:].view_as(w2).T + b2, y)

    theta = torch.cat([w1.reshape(-1), w2.reshape(-1)])
    g = torch.autograd.functional.jacobian(loss, theta)
    h = torch.autograd.functional.hessian(loss, theta)
    expected = float(-(theta * (h @ g)).sum())
    assert zc.grasp(model, x, y) == pytest.approx(expected, rel=1e-4)


def test_grasp_matches_reference_two_pass_procedure_on_bn_convnet():
    model = _convnet()
    x, y = _batch((3, 6, 6))
    net = copy.deepcopy(model)
    weights = _weights(net)
    grad_w = torch.autograd.grad(F.cross_entropy(net(x), y), weights)
    grad_f = torch.autograd.grad(F.cross_entropy(net(x), y), weights, create_graph=True)
    sum((gw * gf).sum() for gw, gf in zip(grad_w, grad_f)).backward()
    expected = sum(float((-w.detach() * w.grad).sum()) for w in weights)
    assert zc.grasp(model, x, y) == pytest.approx(expected, rel=1e-4)


def _fisher_term(act, grad, fan_in, channel_dim):
    prod = (act * grad).double()
    if prod.dim() > 2:
        prod = prod.sum(dim=tuple(d for d in range(1, prod.dim()) if d != channel_dim))
    return fan_in * float((0.5 * prod.pow(2).mean(0)).sum())


def test_fisher_matches_hand_written_mlp():
    model = _mlp(4)
    x, y = _batch((6,))
    l1, l2, l3 = model[0], model[2], model[4]
    z1 = F.linear(x, l1.weight, l1.bias)
    z2 = F.linear(torch.relu(z1), l2.weight, l2.bias)
    z3 = F.linear(torch.relu(z2), l3.weight, l3.bias)
    grads = torch.autograd.grad(F.cross_entropy(z3, y), [z1, z2, z3])
    expected = sum(
        _fisher_term(z.detach(), g, fan_in, 1) for z, g, fan_in in zip((z1, z2, z3), grads, (6, 8, 5))
    )
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_hand_written_convnet():
    torch.manual_seed(5)
    conv, lin = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 * 5 * 5, 3)
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.Flatten(), lin)  # in-place ReLU after the conv
    x, y = _batch((3, 5, 5))
    z1 = F.conv2d(x, conv.weight, conv.bias, padding=1)
    z2 = F.linear(torch.relu(z1).flatten(1), lin.weight, lin.bias)
    g1, g2 = torch.autograd.grad(F.cross_entropy(z2, y), [z1, z2])
    expected = _fisher_term(z1.detach(), g1, 3 * 3 * 3, 1) + _fisher_term(z2.detach(), g2, 100, 1)
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_fisher_matches_retained_gradients_on_bn_convnet():
    model = _convnet()
    x, y = _batch((3, 6, 6))
    net = copy.deepcopy(model)
    outs = []

    def keep(module, args, out):
        out.retain_grad()
        outs.append((module, out))

    handles = [m.register_forward_hook(keep) for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    F.cross_entropy(net(x), y).backward()
    for h in handles:
        h.remove()
    expected = sum(_fisher_term(o.detach(), o.grad, m.weight[0].numel(), 1) for m, o in outs)
    assert zc.fisher(model, x, y) == pytest.approx(expected, rel=1e-5)


def test_jacob_cov_matches_per_example_loop():
    model = _mlp(6)
    x, y = _batch((6,))
    rows = []
    for i in range(x.shape[0]):  # no BatchNorm: example i's Jacobian involves only its own output
        xi = x[i : i + 1].clone().requires_grad_(True)
        model(xi).sum().backward()
        rows.append(xi.grad.reshape(-1).double().numpy())
    model.zero_grad(set_to_none=True)
    v = np.linalg.eig(np.corrcoef(np.stack(rows)))[0].real
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert zc.jacob_cov(model, x, y) == pytest.approx(float(expected), rel=1e-6)


def test_jacob_cov_identical_jacobians_closed_form():
    # a linear map gives every example the same Jacobian: corr = all ones, eigenvalues (B, 0, ..., 0)
    model = nn.Sequential(nn.Linear(4, 3))
    x, y = _batch((4,))
    k, b = 1e-5, x.shape[0]
    expected = -((math.log(b + k) + 1 / (b + k)) + (b - 1) * (math.log(k) + 1 / k))
    assert zc.jacob_cov(model, x, y) == pytest.approx(expected, rel=1e-6)


class _Constant(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(x) * 0.0


def test_jacob_cov_constant_jacobian_is_nan(caplog):
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        assert math.isnan(zc.jacob_cov(_Constant(), *_batch((4,))))
    assert "constant" in caplog.text


def test_naswot_hand_computed_kernel():
    # codes of [1,-1,2] and [-1,-1,3]: (1,0,1), (0,0,1); agreements K = [[3,2],[2,3]], det = 5
    x = torch.tensor([[1.0, -1.0, 2.0], [-1.0, -1.0, 3.0]])
    y = torch.zeros(2, dtype=torch.long)
    assert zc.naswot(nn.Sequential(nn.ReLU()), x, y) == pytest.approx(math.log(5))


class CReLU(nn.Module):
    """concat(relu(x), -relu(-x)), built from functional relu: hooked only because of its class name."""

    def forward(self, x):
        return torch.cat([F.relu(x), -F.relu(-x)], dim=1)


@pytest.mark.parametrize("seed,singular", [(8, False), (7, True)])
def test_naswot_matches_hand_built_kernel(seed, singular):
    torch.manual_seed(seed)
    l1, l2, l3 = nn.Linear(5, 16), nn.Linear(16, 8), nn.Linear(16, 3)
    model = nn.Sequential(l1, nn.ReLU(), l2, CReLU(), l3)
    x, y = _batch((5,), n=6)
    with torch.no_grad():
        z1 = l1(x)
        z2 = l2(torch.relu(z1))
    codes = torch.cat([z1 > 0, z2 > 0], dim=1).double().numpy()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    distinct = len({tuple(row) for row in codes})
    if singular:  # seed 7: two examples share every code; numpy's slogdet says sign 1, log|det| -21.6
        assert distinct == 5
        assert zc.naswot(model, x, y) == zc.NASWOT_SINGULAR
        return
    assert distinct == 6
    sign, logdet = np.linalg.slogdet(k)
    assert sign > 0 and round(float(np.linalg.det(k))) >= 1
    assert zc.naswot(model, x, y) == pytest.approx(logdet, rel=1e-10)


class ReLUConvBN(nn.Sequential):
    """A container named like NAS-Bench-201's op: the same input as the nn.ReLU inside it."""


def test_naswot_counts_each_relu_unit_once():
    # the reference matches 'ReLU' in str(type(module)), which also hooks such containers (units twice)
    torch.manual_seed(0)
    lin = nn.Linear(4, 6)
    model = nn.Sequential(ReLUConvBN(nn.ReLU(), lin), nn.ReLU())
    x, y = _batch((4,), n=5)
    with torch.no_grad():
        codes = torch.cat([x > 0, lin(torch.relu(x)) > 0], dim=1).double().numpy()
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = np.linalg.slogdet(k)
    assert sign > 0
    assert zc.naswot(model, x, y) == pytest.approx(logdet, rel=1e-10)


def test_naswot_counts_stay_exact_under_a_callers_autocast():
    # 0/1 Gram entries above 256 are not exact in bfloat16: the kernel's matmul must leave autocast
    torch.manual_seed(0)
    model = nn.Sequential(nn.ReLU())
    x = torch.randn(6, 3000)
    y = torch.zeros(6, dtype=torch.long)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = zc.naswot(model, x, y)
    assert under == zc.naswot(model, x, y)


def test_naswot_float64_path_for_huge_layers(monkeypatch):
    # layers with >= 2**24 units per example accumulate in float64; same value as the float32 path
    model = _mlp()
    x, y = _batch((6,), n=8)
    fast = zc.naswot(model, x, y)
    monkeypatch.setattr(zc, "_FLOAT32_EXACT", 1)
    assert zc.naswot(model, x, y) == fast


def test_naswot_identical_inputs_singular_kernel(caplog):
    model = _mlp()
    x = torch.randn(1, 6, generator=torch.Generator().manual_seed(0)).repeat(4, 1)
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        value = zc.naswot(model, x, torch.zeros(4, dtype=torch.long))
    assert value == zc.NASWOT_SINGULAR == float("-inf")
    assert "singular" in caplog.text


def test_naswot_random_inputs_seeded():
    model = _mlp()
    x, y = _batch((6,))
    a = zc.naswot(model, x, y, random_inputs=True, seed=3)
    assert a == zc.naswot(model, x * 100, y, random_inputs=True, seed=3)  # data ignored, seed decides
    assert a != zc.naswot(model, x, y, random_inputs=True, seed=4)
    gaussian = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert a == zc.naswot(model, gaussian, y)


def test_naswot_without_relu_raises():
    with pytest.raises(ValueError, match="ReLU"):
        zc.naswot(nn.Sequential(nn.Linear(3, 2), nn.Tanh()), *_batch((3,)))


def _manual_zico(model, x, y, num_batches=2):
    net = copy.deepcopy(model)
    grads: dict[int, list[np.ndarray]] = {}
    for xb, yb in zip(x.tensor_split(num_batches), y.tensor_split(num_batches)):
        net.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        for i, w in enumerate(_weights(net)):
            grads.setdefault(i, []).append(w.grad.reshape(-1).double().numpy().copy())
    score = 0.0
    for gs in grads.values():
        g = np.array(gs)
        std = np.std(g, axis=0)
        nz = np.nonzero(std)[0]
        tmpsum = np.sum(np.mean(np.abs(g), axis=0)[nz] / std[nz])
        if tmpsum != 0:
            score += np.log(tmpsum)
    return score


@pytest.mark.parametrize("name,num_batches", [("mlp", 2), ("convnet_bn", 2), ("mlp", 4)])
def test_zico_matches_manual_batch_loop(name, num_batches):
    build, shape = MODELS[name]
    model = build()
    x, y = _batch(shape)
    expected = _manual_zico(model, x, y, num_batches)
    assert zc.zico(model, x, y, num_batches=num_batches) == pytest.approx(expected, rel=1e-5)


class _DeadBranch(nn.Module):
    def __init__(self, live: bool) -> None:
        super().__init__()
        torch.manual_seed(8)
        self.live = nn.Linear(4, 3) if live else None
        self.dead = nn.Linear(4, 3)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x):
        out = self.dead(x) * 0.0 + self.bias
        return out + self.live(x) if self.live is not None else out


def test_zico_skips_zero_std_layers_loudly(caplog):
    model = _DeadBranch(live=True)
    x, y = _batch((4,))
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        value = zc.zico(model, x, y)
    assert "skipped 1 of 2 layers" in caplog.text and "dead" in caplog.text
    assert value == pytest.approx(_zico_single(model, x, y), rel=1e-6)
    assert zc.zico(_DeadBranch(live=False), x, y) == float("-inf")


def _zico_single(model, x, y):
    g = []
    for xb, yb in zip(x.tensor_split(2), y.tensor_split(2)):
        (gw,) = torch.autograd.grad(F.cross_entropy(model(xb), yb), model.live.weight)
        g.append(gw.double().reshape(-1).numpy())
    g = np.array(g)
    return float(np.log(np.sum(np.mean(np.abs(g), 0) / np.std(g, 0))))


def test_zico_rejects_bad_num_batches():
    with pytest.raises(ValueError):
        zc.zico(_mlp(), *_batch((6,)), num_batches=1)
    with pytest.raises(ValueError):
        zc.zico(_mlp(), *_batch((6,), n=2), num_batches=3)


# ------------------------------------------------------------------------------------------------------------
# Contract over every proxy and model
# ------------------------------------------------------------------------------------------------------------


def _hook_counts(model: nn.Module) -> list[tuple[int, int, int]]:
    return [
        (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()
    ]


def _snapshot(model: nn.Module):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        _hook_counts(model),
    )


def _assert_unchanged(model: nn.Module, before) -> None:
    state, modes, flags, grads, hooks = before
    after = model.state_dict()
    assert list(after) == list(state)
    for k, v in state.items():
        assert after[k].dtype == v.dtype and torch.equal(after[k], v), k
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)
    assert _hook_counts(model) == hooks


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("name", PROXIES)
def test_contract(name, model_name):
    build, shape = MODELS[model_name]
    model = build()
    # a mixed state to restore: train mode with one module in eval, a frozen parameter, existing .grad
    model.train()
    list(model.modules())[2].eval()
    params = list(model.parameters())
    params[1].requires_grad_(False)
    params[0].grad = torch.full_like(params[0], 0.25)
    x, y = _batch(shape)
    x_before = x.clone()
    before = _snapshot(model)
    fn = registry.get(name)
    value = fn(model, x, y)
    _assert_unchanged(model, before)
    assert torch.equal(x, x_before) and not x.requires_grad
    assert type(value) is float
    assert math.isfinite(value)
    assert fn(model, x, y) == value  # deterministic
    assert fn(build(), x, y) == fn(build(), x, y)  # same seed, same value


@pytest.mark.parametrize("name", PROXIES)
def test_eval_mode_model(name):
    build, shape = MODELS["convnet_bn"]
    model = build().eval()
    x, y = _batch(shape)
    before = _snapshot(model)
    value = registry.get(name)(model, x, y)
    _assert_unchanged(model, before)
    assert math.isfinite(value)


def test_proxies_inside_no_grad_context():
    model = _mlp(bn=True)
    x, y = _batch((6,))
    expected = {n: registry.get(n)(model, x, y) for n in PROXIES}
    with torch.no_grad():
        got = {n: registry.get(n)(model, x, y) for n in PROXIES}
    assert got == pytest.approx(expected, rel=1e-6)
