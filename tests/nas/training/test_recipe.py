"""The one training recipe (nas/training/recipe.py): optimizer of a config, device, JSON-safe values."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.training import (
    GRAD_TRANSFORMS, AutoscaledNormalization, GradientCentralization, TransformedOptimizer, ZScoreNormalization,
    jsonable, make_optimizer, resolve_device,
)


def linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(4, 3)


def set_grads(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


# ------------------------------------------------------------------------------------ make_optimizer
def test_sgd_with_the_configs_lr_momentum_weight_decay_and_nesterov():
    model = linear()
    opt = make_optimizer(model, {"lr": 0.05, "momentum": 0.8, "weight_decay": 1e-3})
    assert type(opt) is torch.optim.SGD
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.05, 0.8, 1e-3)
    assert group["nesterov"] is True and group["dampening"] == 0
    assert [id(p) for p in group["params"]] == [id(p) for p in model.parameters()]


def test_defaults_of_a_config_without_the_fields():
    group = make_optimizer(linear(), {}).param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]) == (0.1, 0.9, 5e-4, True)


def test_no_momentum_means_plain_sgd():
    group = make_optimizer(linear(), {"lr": 0.1, "momentum": 0.0}).param_groups[0]
    assert group["momentum"] == 0.0 and group["nesterov"] is False


def test_accepts_parameters_as_well_as_a_module():
    model = linear()
    a = make_optimizer(model, {"lr": 0.2})
    b = make_optimizer(list(model.parameters()), {"lr": 0.2})
    assert [id(p) for p in a.param_groups[0]["params"]] == [id(p) for p in b.param_groups[0]["params"]]


def test_two_steps_follow_the_nesterov_update_written_out():
    # PyTorch's SGD (Sutskever et al. 2013 form): d = g + wd p; b = m b + d (b_1 = d); p -= lr (d + m b)
    lr, m, wd = 0.1, 0.9, 5e-4
    model = linear()
    opt = make_optimizer(model, {"lr": lr, "momentum": m, "weight_decay": wd})
    ref = [p.detach().clone().double() for p in model.parameters()]
    buf = [None] * len(ref)
    for step in range(2):
        set_grads(model, seed=step)
        for i, p in enumerate(model.parameters()):
            d = p.grad.double() + wd * ref[i]
            buf[i] = d.clone() if buf[i] is None else m * buf[i] + d
            ref[i] = ref[i] - lr * (d + m * buf[i])
        opt.step()
    for p, r in zip(model.parameters(), ref):
        torch.testing.assert_close(p.detach().double(), r, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,kind", [
    ("gan", AutoscaledNormalization), ("gc", GradientCentralization), ("zscore", ZScoreNormalization)])
def test_the_configs_grad_transform_wraps_the_sgd(name, kind):
    model = linear()
    opt = make_optimizer(model, {"lr": 0.05, "grad_transform": name})
    assert isinstance(opt, TransformedOptimizer) and isinstance(opt.transform, kind)
    inner = opt.optimizer
    assert type(inner) is torch.optim.SGD and inner.param_groups[0]["nesterov"] is True
    assert opt.param_groups is inner.param_groups and opt.param_groups[0]["lr"] == 0.05


def test_grad_transform_none_is_the_sgd_itself_and_names_are_the_spaces():
    assert type(make_optimizer(linear(), {"grad_transform": "none"})) is torch.optim.SGD
    from search_spaces._base import GRAD_TRANSFORMS as SPACE_CHOICES

    assert GRAD_TRANSFORMS is SPACE_CHOICES  # one definition
    for name in GRAD_TRANSFORMS:
        make_optimizer(linear(), {"grad_transform": name})


def test_a_bad_transform_or_optimizer_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown grad_transform 'adam'.*none, gan, gc, zscore"):
        make_optimizer(linear(), {"grad_transform": "adam"})
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        make_optimizer(linear(), {"optimizer": "adam"})
    assert type(make_optimizer(linear(), {"optimizer": "sgd"})) is torch.optim.SGD


def test_the_transform_runs_before_the_sgd_step():
    # gc removes each output unit's mean gradient; with momentum 0 and no decay: p -= lr * centred g
    model = linear()
    before = model.weight.detach().clone()
    opt = make_optimizer(model, {"lr": 0.5, "momentum": 0.0, "weight_decay": 0.0, "grad_transform": "gc"})
    set_grads(model, seed=3)
    g = model.weight.grad.clone()
    opt.step()
    torch.testing.assert_close(model.weight.detach(), before - 0.5 * (g - g.mean(dim=1, keepdim=True)))


def test_adamw_first_step_is_the_closed_form_after_the_transform():
    # Adam's first bias-corrected step is lr * g / (|g| + eps); AdamW's decay is decoupled: p * (1 - lr * wd)
    model = linear()
    before = model.weight.detach().clone()
    opt = make_optimizer(model, {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1, "grad_transform": "gc"})
    set_grads(model, seed=4)
    g = model.weight.grad.clone()
    opt.step()
    centred = g - g.mean(dim=1, keepdim=True)
    expected = before * (1 - 0.01 * 0.1) - 0.01 * centred / (centred.abs() + 1e-8)
    torch.testing.assert_close(model.weight.detach(), expected)


# ------------------------------------------------------------------------------------ resolve_device
def test_resolve_device():
    default = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device(None) == torch.device(default)
    assert resolve_device("") == torch.device(default)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # named devices are taken as given
    with pytest.raises(RuntimeError):
        resolve_device("nosuchdevice")


# ------------------------------------------------------------------------------------ jsonable
def test_jsonable_replaces_non_finite_numbers_recursively():
    value = {"a": float("nan"), "b": [1.0, float("inf"), (2, -float("inf"))], "c": {"d": np.float32("nan")},
             "e": np.array([1.5, np.inf]), "f": np.int64(3), "g": "nan", "h": None, "i": True, "j": 0.25}
    out = jsonable(value)
    assert out == {"a": None, "b": [1.0, None, [2, None]], "c": {"d": None}, "e": [1.5, None], "f": 3,
                   "g": "nan", "h": None, "i": True, "j": 0.25}
    assert type(out["f"]) is int and type(out["e"][0]) is float
    json.dumps(out, allow_nan=False)
    assert jsonable(float("nan")) is None and jsonable(2.5) == 2.5 and jsonable(-math.inf) is None
