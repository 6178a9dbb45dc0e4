"""mlp_looks_linear: exact linearity of looks-linear CReLU nets at init (Balduzzi et al. 2017, thesis Def. 3.9)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import ConfigError, get_space


def _build(seed=0, shape=(3, 8, 8), **config):
    return get_space("mlp_looks_linear").build(config, num_classes=10, input_shape=shape, seed=seed)


@pytest.mark.parametrize("depth", [2, 3, 100])
def test_looks_linear_crelu_net_is_exactly_linear(depth, linearity_error):
    model = _build(depth=depth, width=64, activation="crelu", init="looks_linear", norm="none")
    x, y = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    assert linearity_error(model, x, y) < 1e-5


def test_looks_linear_net_is_the_product_of_its_w_halves():
    model = _build(depth=4, width=32, activation="crelu", init="looks_linear", norm="none")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    x = torch.randn(3, 3, 8, 8)
    h = x.flatten(1)
    with torch.no_grad():
        h = h @ linears[0].weight.T
        for layer in linears[1:]:
            h = h @ layer.weight[:, : layer.in_features // 2].T
        assert torch.allclose(model(x), h, atol=1e-5)


@pytest.mark.parametrize(("activation", "init"), [("relu", "orthogonal"), ("crelu", "orthogonal")])
def test_other_nets_are_not_linear(activation, init, linearity_error):
    model = _build(depth=6, width=64, activation=activation, init=init, norm="none")
    x, y = torch.randn(5, 3, 8, 8), torch.randn(5, 3, 8, 8)
    assert linearity_error(model, x, y) > 1e-2


@pytest.mark.parametrize(("activation", "norm"), [("relu", "none"), ("crelu", "none"), ("crelu", "bn")])
def test_parameter_count_closed_form(activation, norm, n_params):
    """depth d, width w, input n, C classes, m = 2 for CReLU: n*w + w + (d-2)(m*w*w + w) + m*w*C + C (+ 2w per BN)."""
    d, w, n, c = 7, 48, 3 * 8 * 8, 10
    m = 2 if activation == "crelu" else 1
    expected = n * w + w + (d - 2) * (m * w * w + w) + m * w * c + c + (2 * w * (d - 1) if norm == "bn" else 0)
    model = _build(depth=d, width=w, activation=activation, norm=norm)
    assert n_params(model) == expected
    assert sum(isinstance(mod, nn.Linear) for mod in model.modules()) == d


def test_deep_orthogonal_nets_keep_their_scale():
    """Looks-linear nets are norm-preserving products of orthogonal maps: depth 200 output stays finite."""
    model = _build(depth=200, width=32, activation="crelu", init="looks_linear", norm="none", shape=(32,))
    x = torch.randn(4, 32)
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out).all() and 0 < out.norm() <= x.norm() * (1 + 1e-4)


def test_looks_linear_requires_crelu():
    space = get_space("mlp_looks_linear")
    with pytest.raises(ConfigError) as err:
        space.validate({"activation": "relu", "init": "looks_linear"})
    assert err.value.field == "init" and "orthogonal" in str(err.value) and "crelu" in str(err.value)
    # a missing init under relu defaults to orthogonal
    assert space.validate({"activation": "relu"})["init"] == "orthogonal"
    assert space.with_bounds(activation="relu").default_config()["init"] == "orthogonal"
    # narrowing init to looks_linear implies crelu
    assert space.with_bounds(init="looks_linear").dimensions()[2]["choices"] == ["crelu"]
    with pytest.raises(ConfigError, match="init"):
        space.with_bounds(activation="relu", init="looks_linear")


def test_init_is_a_conditional_parameter(random_trials):
    space = get_space("mlp_looks_linear", depth=(2, 4), width=(32, 64))
    seen = set()
    for trial in random_trials(30, seed=3):
        config = space.sample(trial)
        assert ("init" in trial.params) == (config["activation"] == "crelu")
        seen.add((config["activation"], config["init"]))
    assert seen == {("relu", "orthogonal"), ("crelu", "orthogonal"), ("crelu", "looks_linear")}
