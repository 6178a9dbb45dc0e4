"""The contract every zero-cost proxy keeps: registered with its metadata, a deterministic finite float,
and the model left exactly as found (state, train/eval flags, ``requires_grad``, ``.grad``, hooks)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import objectives.zero_cost as zc
from objectives import registry

PROXIES = [
    "grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "zico", "params", "flops",
    "az_expressivity", "az_progressivity", "az_trainability", "meco",
]
MODEL_NAMES = ["mlp", "mlp_bn", "convnet_bn"]


def test_registered_with_metadata():
    expected_needs = {
        "grad_norm": {"data", "labels", "weight_grad"}, "snip": {"data", "labels", "weight_grad"},
        "grasp": {"data", "labels"},
        "fisher": {"data", "labels"}, "zico": {"data", "labels"}, "jacob_cov": {"data"}, "naswot": {"data"},
        "synflow": set(), "params": set(), "flops": set(),
        "az_expressivity": {"stage_features"}, "az_progressivity": {"stage_features"}, "az_trainability": set(),
        "meco": {"module_outputs"},
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


def test_each_proxy_lives_in_the_file_named_by_its_key():
    root = Path(__file__).resolve().parents[3]
    for name in PROXIES:
        entry = registry.get(name)
        assert entry.fn.__module__ == f"objectives.zero_cost.{name}"
        assert entry.family == "zero_cost"
        assert entry.file == f"objectives/zero_cost/{name}.py" and (root / entry.file).is_file()
        assert entry.test == f"tests/objectives/zero_cost/test_{name}.py" and (root / entry.test).is_file()
    assert sorted(registry.names(family="zero_cost")) == sorted(PROXIES)


def test_model_names_cover_the_shared_models(models):
    assert sorted(MODEL_NAMES) == sorted(models)


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


@pytest.mark.parametrize("model_name", MODEL_NAMES)
@pytest.mark.parametrize("name", PROXIES)
def test_contract(name, model_name, models, batch):
    build, shape = models[model_name]
    model = build()
    # a mixed state to restore: train mode with one module in eval, a frozen parameter, existing .grad
    model.train()
    list(model.modules())[2].eval()
    params = list(model.parameters())
    params[1].requires_grad_(False)
    params[0].grad = torch.full_like(params[0], 0.25)
    x, y = batch(shape)
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
def test_eval_mode_model(name, models, batch):
    build, shape = models["convnet_bn"]
    model = build().eval()
    x, y = batch(shape)
    before = _snapshot(model)
    value = registry.get(name)(model, x, y)
    _assert_unchanged(model, before)
    assert math.isfinite(value)


def test_proxies_inside_no_grad_context(mlp, batch):
    model = mlp(bn=True)
    x, y = batch((6,))
    expected = {n: registry.get(n)(model, x, y) for n in PROXIES}
    with torch.no_grad():
        got = {n: registry.get(n)(model, x, y) for n in PROXIES}
    assert got == pytest.approx(expected, rel=1e-6)
