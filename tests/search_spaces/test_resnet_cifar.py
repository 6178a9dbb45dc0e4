"""resnet_cifar: parameter counts of the published CIFAR ResNets, shapes, looks-linear, no-norm stability."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import get_space


def _build(seed=0, shape=(3, 32, 32), **config):
    return get_space("resnet_cifar").build(config, num_classes=10, input_shape=shape, seed=seed)


# He et al. 2016 Table 6 (0.27M, 0.46M, 0.66M, 0.85M); exact counts of the option-A implementation
# akamaster/pytorch_resnet_cifar10 ("Total number of params").
@pytest.mark.parametrize(("blocks", "params"), [(3, 269_722), (5, 464_154), (7, 658_586), (9, 853_018)])
def test_parameter_counts_match_published_resnets(blocks, params, n_params):
    assert n_params(_build(blocks=blocks, width=16)) == params
    # plain nets with option-A shortcuts have exactly the same parameters (He et al. Sec. 4.2)
    assert n_params(_build(blocks=blocks, width=16, skip=False)) == params


@pytest.mark.parametrize("blocks", [1, 3, 9])
def test_depth_is_6n_plus_2(blocks):
    model = _build(blocks=blocks, width=8)
    weight_layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weight_layers) == 6 * blocks + 2


def test_crelu_doubles_the_inputs_of_following_layers(n_params):
    """ResNet-20 with CReLU: every conv after the stem and the head see 2x channels.

    Closed form: 267,264 non-stem conv weights x 2 + stem 432 + BN 2 * (16 + 6*16 + 6*32 + 6*64)
    + head 2*64*10 + 10 = 537,626.
    """
    model = _build(activation="crelu")
    assert n_params(model) == 267_264 * 2 + 432 + 2 * (16 + 6 * 16 + 6 * 32 + 6 * 64) + 2 * 64 * 10 + 10
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].in_channels == 3
    assert all(c.in_channels == 2 * (c.out_channels if c.stride == (1, 1) else c.out_channels // 2)
               for c in convs[1:])


@pytest.mark.parametrize("norm", ["bn", "gn", "ln", "none"])
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 17, 23)])
def test_any_input_shape(norm, shape):
    model = _build(blocks=1, width=8, norm=norm, shape=shape)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("skip", [True, False])
def test_looks_linear_resnet_without_norm_is_linear(skip, linearity_error):
    model = _build(blocks=2, width=8, norm="none", activation="crelu", skip=skip)
    x, y = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    assert linearity_error(model, x, y) < 1e-5


def test_relu_resnet_is_not_linear(linearity_error):
    model = _build(blocks=2, width=8, norm="none", activation="relu")
    x, y = torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16)
    assert linearity_error(model, x, y) > 1e-2


@pytest.mark.parametrize("activation", ["relu", "crelu"])
def test_deep_residual_net_without_norm_stays_bounded(activation):
    """ResNet-56 without normalization: the output keeps the scale of the input at init (no 2^(L/2) blow-up)."""
    model = _build(blocks=9, width=8, norm="none", activation=activation)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        feats = model.stages(model.stem(x))
    assert torch.isfinite(feats).all()
    assert feats.pow(2).mean().sqrt() < 10 * x.pow(2).mean().sqrt()


def test_skip_connections_change_the_function():
    x = torch.randn(2, 3, 16, 16)
    a = _build(blocks=1, width=8, skip=True)
    b = _build(blocks=1, width=8, skip=False)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))


def test_narrowed_bounds_for_fast_tests():
    space = get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))
    dims = {d["name"]: d for d in space.dimensions()}
    assert (dims["width"]["low"], dims["width"]["high"]) == (8, 16)
    assert (dims["blocks"]["low"], dims["blocks"]["high"]) == (1, 2)
    assert space.default_config()["blocks"] == 2  # default 3 clipped into the narrowed range
    assert get_space("resnet_cifar").with_bounds(width=(8, 16), blocks=(1, 2)).dimensions() == space.dimensions()
