"""objectives.score: one shared probe, the same values as single calls, clear errors."""

import pytest
import torch
from torch import nn

from objectives import gradient_confusion, score, step_consistency

THESIS = [
    "kappa_w", "min_cosine", "weight_diversity", "weight_coherence", "kappa_x",
    "confusion", "diversity", "coherence", "rank_input", "rank_weight",
]


def small_net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 4))


def data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 2, 2, generator=g), torch.randint(0, 4, (n,), generator=g)


@pytest.mark.parametrize("mode", ["frozen", "contribution"])
def test_score_is_deterministic_and_equals_single_calls(mode):
    model = small_net()
    x, y = data()
    a = score(model, x, y, metrics=THESIS, bn_mode=mode, seed=3, group_size=4)
    b = score(model, x, y, metrics=THESIS, bn_mode=mode, seed=3, group_size=4)
    assert a == b
    assert all(torch.isfinite(torch.tensor(v)) for v in a.values())
    assert a["confusion"] == gradient_confusion(model, x, y, group_size=4, bn_mode=mode, seed=3)
    assert a["kappa_w"] == step_consistency(model, x, y, bn_mode=mode, seed=3)


def test_bad_inputs_raise_value_error():
    model = small_net()
    x, y = data()
    with pytest.raises(ValueError, match="empty batch"):
        score(model, x[:0], y[:0], metrics=["coherence"])
    with pytest.raises(ValueError, match="batch size"):
        score(model, x, y[:5], metrics=["coherence"])
    frozen = small_net()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        score(frozen, x, y, metrics=["coherence"])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        score(model, bad, y, metrics=["coherence"])
    with pytest.raises(ValueError, match="not finite"):
        score(model, x, y, metrics=["coherence"], loss_fn=lambda o, t: o.sum() * float("inf"))
    with pytest.raises(ValueError, match="unknown metric 'nope'.*valid metrics"):
        score(model, x, y, metrics=["nope"])
    with pytest.raises(ValueError, match="unknown option"):
        score(model, x, y, metrics=["coherence"], etaa=1)
    with pytest.raises(ValueError, match="bn_mode"):
        score(model, x, y, metrics=["coherence"], bn_mode="batch")


def test_a_failing_metric_keeps_the_others_and_says_why():
    model = small_net()
    x, y = data()  # 16 examples: group_size 16 leaves one group, so confusion is undefined
    values = score(model, x, y, metrics=["coherence", "confusion"], group_size=16)
    assert list(values) == ["coherence", "confusion"]
    assert values["coherence"] == score(model, x, y, metrics=["coherence"])["coherence"]
    assert values["confusion"] != values["confusion"]  # NaN
    assert list(values.errors) == ["confusion"] and "group_size" in values.errors["confusion"]
    assert score(model, x, y, metrics=["coherence"]).errors == {}
    with pytest.raises(ValueError, match="group_size"):
        score(model, x, y, metrics=["coherence", "confusion"], group_size=16, on_error="raise")
