"""The gradient gate: rung-0 values against plain autograd, the quantile rule against hand-computed log-ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from nas.integrations.gate import Decision, decide, early_values, phase_features, rung0_values
from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, Feature

A = (Feature("a", "maximize"),)
#: A rung-0 set with a derived feature (relative_step = lr * grad_weight_ratio), whatever the shipped set is.
RICH = (Feature("az_expressivity", "maximize"), Feature("batch_size", "minimize"), Feature("relative_step", "maximize"))


def _batch(n=12, d=6, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def _mlp(width=5, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, width), nn.Tanh(), nn.Linear(width, 3))


def test_rung0_values_relative_step_is_lr_times_grad_over_weight_norm():
    model, (x, y) = _mlp(), _batch()
    before = [p.detach().clone() for p in model.parameters()]
    values = rung0_values(model, x, y, lr=0.05, batch_size=32, features=RICH)
    # reference: one plain backward pass of the mean loss, norms over every parameter
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    g = torch.cat([p.grad.flatten() for p in model.parameters()]).double().norm()
    w = torch.cat([p.detach().flatten() for p in model.parameters()]).double().norm()
    assert values["grad_weight_ratio"] == pytest.approx(float(g / w), rel=1e-5)
    assert values["relative_step"] == pytest.approx(0.05 * float(g / w), rel=1e-5)
    assert values["lr"] == 0.05 and values["batch_size"] == 32.0
    assert math.isfinite(values["az_expressivity"])
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # model unchanged


def test_rung0_values_defaults_and_errors():
    model, (x, y) = _mlp(), _batch(n=10)
    values = rung0_values(model, x, y, features=RICH)
    assert values["lr"] == 1.0 and values["batch_size"] == 10.0  # unknown lr: 1; batch size: the batch's
    assert values["relative_step"] == values["grad_weight_ratio"]
    with pytest.raises(ValueError, match="lr must be a positive number"):
        rung0_values(model, x, y, lr=0)
    with pytest.raises(ValueError, match="batch_size"):
        rung0_values(model, x, y, batch_size=-3)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        rung0_values("model", x, y)
    with pytest.raises(ValueError):
        rung0_values(model, x, y[:3])  # mismatched batch


def test_early_values_mean_of_last_five_losses():
    assert early_values([9, 8, 7, 6, 5, 4, 3]) == {"train_loss_last": (7 + 6 + 5 + 4 + 3) / 5}
    assert early_values([2.0, 4.0]) == {"train_loss_last": 3.0}
    assert math.isnan(early_values([1.0, float("nan")])["train_loss_last"])
    with pytest.raises(ValueError, match="empty"):
        early_values([])
    with pytest.raises(TypeError):
        early_values(["x"])


def test_phase_features():
    assert phase_features("init") == BUDGET_INIT_FEATURES
    assert phase_features("early") == BUDGET_EARLY_FEATURES
    with pytest.raises(ValueError, match="phase"):
        phase_features("late")


def test_quantile_rule_one_feature_by_hand():
    earlier = [{"a": v} for v in (1.0, 2.0, 3.0, 4.0)]
    # candidate 2.5: ranks of (1, 2, 3, 4, 2.5) are (1, 2, 4, 5, 3); scores log(rank / 5)
    d = decide({"a": 2.5}, earlier, quantile=0.5, warmup=4, features=A)
    assert d.score == pytest.approx(math.log(3 / 5))
    assert d.threshold == pytest.approx((math.log(2 / 5) + math.log(4 / 5)) / 2)  # median of 4: midpoint
    assert not d.prune and d.position == 0.5 and d.earlier == 4
    # candidate 1.5: ranks (1, 3, 4, 5, 2): log(2/5) < (log(3/5) + log(4/5)) / 2
    d = decide({"a": 1.5}, earlier, quantile=0.5, warmup=4, features=A)
    assert d.threshold == pytest.approx((math.log(3 / 5) + math.log(4 / 5)) / 2)
    assert d.prune and d.position == 0.25
    # quantile 0.1 of log([1, 3, 4, 5] / 5): position 0.3 of 3 gaps, 0.3 of the way from log(1/5) to log(3/5)
    d = decide({"a": 1.5}, earlier, quantile=0.1, warmup=4, features=A)
    assert d.threshold == pytest.approx(math.log(1 / 5) + 0.3 * (math.log(3 / 5) - math.log(1 / 5)))
    assert not d.prune  # log(2/5) = -0.92 is above it (-1.28)
    assert decide({"a": 1.5}, earlier, quantile=0.25, warmup=4, features=A).prune  # threshold -0.79


def test_warmup_and_no_earlier():
    earlier = [{"a": v} for v in (1.0, 2.0, 3.0, 4.0)]
    assert not decide({"a": 0.0}, earlier, warmup=5, features=A).prune  # 4 < warmup
    assert decide({"a": 0.0}, earlier, warmup=4, features=A).prune
    d = decide({"a": 0.0}, [], warmup=0, features=A)
    assert not d.prune and d.earlier == 0 and math.isnan(d.threshold)
    assert d.as_dict()["threshold"] is None


def test_two_weighted_features_and_undefined_value_by_hand():
    feats = (Feature("a", "maximize", 2.0), Feature("b", "minimize"))
    earlier = [{"a": 1.0, "b": 5.0}, {"a": 2.0, "b": 1.0}, {"a": float("nan"), "b": 2.0}]
    cand = {"a": 3.0, "b": 3.0}
    # a (maximize): nan ranks 1, then 1.0 -> 2, 2.0 -> 3, 3.0 -> 4; b (minimize): 5 -> 1, 3 -> 2, 2 -> 3, 1 -> 4
    expect = [2 * math.log(2 / 4) + math.log(1 / 4), 2 * math.log(3 / 4) + math.log(4 / 4),
              2 * math.log(1 / 4) + math.log(3 / 4)]
    mine = 2 * math.log(4 / 4) + math.log(2 / 4)
    d = decide(cand, earlier, quantile=0.5, warmup=0, features=feats)
    assert d.score == pytest.approx(mine)
    assert d.threshold == pytest.approx(float(np.median(expect)))
    assert not d.prune and d.position == pytest.approx(2 / 3)  # above rows 1 and 3, below row 2 (-0.58)


def test_init_set_uses_derived_relative_step():
    # relative_step = lr * grad_weight_ratio is derived from the rows when they do not store it
    rows = [{"az_expressivity": 1.0, "batch_size": 64, "lr": lr, "grad_weight_ratio": 1.0} for lr in (0.1, 0.2, 0.3)]
    d = decide({"az_expressivity": 1.0, "batch_size": 64, "lr": 0.01, "grad_weight_ratio": 1.0}, rows, warmup=3,
               features=RICH)
    # equal on az and batch size; lowest relative step: ranks 1 of 4 there, every earlier row ties elsewhere
    assert d.prune and d.position == 0.0
    assert d.score == pytest.approx(2 * math.log(2.5 / 4) + math.log(1 / 4))


def test_decide_errors():
    with pytest.raises(ValueError, match="quantile"):
        decide({"a": 1.0}, [], quantile=1.5, features=A)
    with pytest.raises(ValueError, match="warmup"):
        decide({"a": 1.0}, [], warmup=-1, features=A)
    with pytest.raises(ValueError, match="lack the inputs"):
        decide({"b": 1.0}, [], features=A)
    with pytest.raises(ValueError, match="phase"):
        decide({"a": 1.0}, [], phase="late")
    assert isinstance(decide({"a": 1.0}, [{"a": 2.0}], features=A), Decision)
