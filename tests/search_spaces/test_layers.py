"""CReLU, looks-linear initialization and the normalization factory, against closed forms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces.layers import CReLU, activation_width, group_count, looks_linear_, make_activation, make_norm


def test_crelu_closed_form():
    x = torch.tensor([[-2.0, 0.0, 3.0]])
    # [relu(x), relu(-x)]
    assert torch.equal(CReLU()(x), torch.tensor([[0.0, 0.0, 3.0, 2.0, 0.0, 0.0]]))
    fmap = torch.randn(2, 5, 4, 4)
    out = CReLU()(fmap)
    assert out.shape == (2, 10, 4, 4)
    assert torch.equal(out[:, :5] - out[:, 5:], fmap)  # relu(x) - relu(-x) = x
    assert torch.allclose(out.norm(), fmap.norm())  # ||CReLU(x)|| = ||x||


def test_activation_factory():
    assert isinstance(make_activation("relu"), nn.ReLU)
    assert isinstance(make_activation("crelu"), CReLU)
    assert (activation_width("relu"), activation_width("crelu")) == (1, 2)
    with pytest.raises(ValueError, match="crelu"):
        make_activation("gelu")


def test_looks_linear_linear_layer_computes_wx():
    torch.manual_seed(0)
    layer = nn.Linear(2 * 6, 4, bias=False)
    looks_linear_(layer.weight)
    w = layer.weight[:, :6]
    assert torch.equal(layer.weight[:, 6:], -w)  # mirrored blocks [W, -W]
    assert torch.allclose(w @ w.T, torch.eye(4), atol=1e-6)  # orthonormal rows (4 <= 6)
    x = torch.randn(7, 6)
    with torch.no_grad():
        assert torch.allclose(layer(CReLU()(x)), x @ w.T, atol=1e-6)


def test_looks_linear_conv_block_is_linear(linearity_error):
    """CReLU -> LL conv -> CReLU -> LL conv (stride 2, zero padding) is exactly linear at init."""
    torch.manual_seed(0)
    conv1, conv2 = nn.Conv2d(2 * 3, 8, 3, padding=1), nn.Conv2d(2 * 8, 8, 3, stride=2, padding=1)
    for conv in (conv1, conv2):
        looks_linear_(conv.weight)
        nn.init.zeros_(conv.bias)
    block = nn.Sequential(CReLU(), conv1, CReLU(), conv2)
    x, y = torch.randn(2, 3, 9, 9), torch.randn(2, 3, 9, 9)
    assert linearity_error(block, x, y) < 1e-5
    # and it equals the convolution by the W halves
    with torch.no_grad():
        ref = nn.functional.conv2d(nn.functional.conv2d(x, conv1.weight[:, :3], padding=1), conv2.weight[:, :8],
                                   stride=2, padding=1)
        assert torch.allclose(block(x), ref, atol=1e-5)


def test_relu_conv_block_is_not_linear(linearity_error):
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    x, y = torch.randn(2, 3, 9, 9), torch.randn(2, 3, 9, 9)
    assert linearity_error(block, x, y) > 1e-2


def test_crelu_without_mirrored_weights_is_not_linear(linearity_error):
    torch.manual_seed(0)
    block = nn.Sequential(CReLU(), nn.Conv2d(6, 8, 3, padding=1))
    nn.init.orthogonal_(block[1].weight)
    x, y = torch.randn(2, 3, 9, 9), torch.randn(2, 3, 9, 9)
    assert linearity_error(block, x, y) > 1e-2


def test_looks_linear_rejects_odd_input_dim():
    with pytest.raises(ValueError, match="even"):
        looks_linear_(torch.empty(4, 5))


@pytest.mark.parametrize(("channels", "groups"), [(8, 2), (16, 4), (24, 6), (64, 16), (256, 32), (13, 1), (1, 1)])
def test_group_count_examples(channels, groups):
    assert group_count(channels) == groups


def test_group_count_properties():
    for c in range(1, 600):
        g = group_count(c)
        assert c % g == 0 and 1 <= g <= 32
        assert g == 1 or c // g >= 4


def test_make_norm_kinds():
    assert isinstance(make_norm("bn", 8), nn.BatchNorm2d)
    assert isinstance(make_norm("bn", 8, dim=1), nn.BatchNorm1d)
    gn = make_norm("gn", 64)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 16
    ln = make_norm("ln", 12)
    assert isinstance(ln, nn.GroupNorm) and ln.num_groups == 1
    assert isinstance(make_norm("ln", 12, dim=1), nn.LayerNorm)
    assert isinstance(make_norm("none", 8), nn.Identity)
    with pytest.raises(ValueError, match="'bn', 'gn', 'ln', 'none'"):
        make_norm("batch", 8)


def test_channel_layer_norm_normalizes_each_example():
    """``ln`` on feature maps: zero mean and unit variance over (C, H, W) per example, at init."""
    x = 3.0 * torch.randn(4, 6, 5, 5) + 2.0
    out = make_norm("ln", 6)(x)
    flat = out.flatten(1)
    assert torch.allclose(flat.mean(1), torch.zeros(4), atol=1e-5)
    assert torch.allclose(flat.var(1, unbiased=False), torch.ones(4), atol=1e-3)
