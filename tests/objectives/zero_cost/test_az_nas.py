"""Tests of objectives/zero_cost/_az_nas.py: the feature rule on our spaces and torchvision's resnet18, the
copy that protects features from in-place operations, and the patch folding of strided blocks."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from objectives.zero_cost import _az_nas as az
from search_spaces import get_space
from search_spaces.nb201 import Cell, ReductionBlock

X32 = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _manual(model: nn.Module, x: torch.Tensor, modules: list[nn.Module]) -> list[torch.Tensor]:
    """The outputs of ``modules`` (call order) on a deep copy of ``model`` in train mode, by plain hooks."""
    names = {id(m): n for n, m in model.named_modules()}
    net = copy.deepcopy(model).train()
    outs: list[torch.Tensor] = []
    handles = [net.get_submodule(names[id(m)]).register_forward_hook(
        lambda mod, a, o: outs.append(o.detach().clone())) for m in modules]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return outs


def _assert_features(model: nn.Module, x: torch.Tensor, expected_modules: list[nn.Module]) -> None:
    got = az._features(model, x, graph=False)
    want = _manual(model, x, expected_modules)
    assert len(got) == len(want) == len(expected_modules)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert torch.allclose(g, w, rtol=1e-5, atol=1e-6)


def _build(space_name: str, **overrides):
    space = get_space(space_name)
    return space.build(space.validate({**space.default_config(), **overrides}), 10, (3, 32, 32), seed=0)


def test_nb201_features_are_the_stem_and_every_cell():
    # the reference's extract_cell_features: stem output, then each cell / reduction block output
    model = get_space("nb201").build(
        {"arch": "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|",
         "channels": 4, "cells": 2}, 10, (3, 32, 32), seed=0)
    blocks = list(model.cells)
    assert sum(isinstance(b, Cell) for b in blocks) == 6
    assert sum(isinstance(b, ReductionBlock) for b in blocks) == 2
    _assert_features(model, X32, [model.stem[1], *blocks])


def test_resnet_cifar_features_are_the_stem_and_every_basic_block():
    model = _build("resnet_cifar", blocks=2, width=8)
    blocks = [b for stage in model.stages for b in stage]
    _assert_features(model, X32, [model.stem[2], *blocks])


def test_vgg_features_are_the_conv_norm_act_groups():
    model = _build("vgg", layout="vgg11", width_mult=0.125)
    layers = list(model.features)
    convs = [i for i, m in enumerate(layers) if isinstance(m, nn.Conv2d)]
    # each group ends just before the next conv; the last one takes in the final max-pool and the global pool
    ends = [layers[j - 1] for j in convs[1:]] + [model.pool]
    _assert_features(model, X32, ends)


def test_mlp_features_are_the_linear_act_groups():
    model = _build("mlp_looks_linear", depth=4, width=32)
    layers = list(model.layers)
    linears = [i for i, m in enumerate(layers) if isinstance(m, nn.Linear)]
    ends = [layers[j - 1] for j in linears[1:]]  # the leading Flatten and the classifier give no feature
    assert len(ends) == 3
    _assert_features(model, X32, ends)


def test_torchvision_resnet18_features_are_the_stem_and_its_blocks():
    model = torchvision.models.resnet18(num_classes=10)
    blocks = [b for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer]
    _assert_features(model, X32, [model.maxpool, *blocks])


class Wrapper(nn.Module):
    """A network wrapped in a custom module: its one child is descended into."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def test_a_single_wrapped_block_is_descended():
    inner = _build("resnet_cifar", blocks=1, width=8)
    blocks = [b for stage in inner.stages for b in stage]
    _assert_features(Wrapper(inner), X32, [inner.stem[2], *blocks])


class PreActBlock(nn.Module):
    """Starts with an in-place ReLU on its input: the previous block's output must not change."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.act = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(self.act(x))


def test_collected_features_survive_in_place_operations():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), PreActBlock(4), PreActBlock(4), nn.Flatten(),
                          nn.Linear(4 * 32 * 32, 2))
    feats = az._features(model, X32, graph=False)
    assert len(feats) == 3
    with torch.no_grad():
        first = model[0](X32)
    assert (first < 0).any()  # an in-place ReLU would have zeroed these
    assert torch.equal(feats[0], first)
    # and the Jacobian of the pre-activation block includes its ReLU (gradient zero where the input < 0)
    feats = az._features(model, X32, graph=True)
    g = torch.ones_like(feats[1])
    (g_in,) = torch.autograd.grad(feats[1], feats[0], g)
    with torch.enable_grad():
        x0 = first.clone().requires_grad_(True)
        (ref,) = torch.autograd.grad(model[1].conv(torch.relu(x0)), x0, g)
    assert torch.allclose(g_in, ref, atol=1e-6)


def test_head_run_and_leading_layers_without_weights_are_not_features():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(8, 6)
    feats = az._features(model, x, graph=False)
    assert len(feats) == 1
    with torch.no_grad():
        assert torch.allclose(feats[0], torch.relu(model[1](x)))
    assert az._features(nn.Sequential(nn.Linear(6, 3)), x, graph=False) == []


def test_execution_order_not_registration_order():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 2)
            self.second = nn.Linear(4, 4)
            self.first = nn.Linear(3, 4)

        def forward(self, x):
            return self.head(self.second(self.first(x)))

    torch.manual_seed(0)
    model = Reversed()
    x = torch.randn(5, 3)
    feats = az._features(model, x, graph=False)
    with torch.no_grad():
        h1 = model.first(x)
        assert [f.shape for f in feats] == [h1.shape, h1.shape]
        assert torch.allclose(feats[0], h1) and torch.allclose(feats[1], model.second(h1))


def test_features_in_train_mode_whatever_the_callers_mode():
    model = _build("resnet_cifar", blocks=1, width=8).eval()
    feats = az._features(model, X32, graph=False)
    want = _manual(model, X32, [model.stem[2]])  # _manual runs a train-mode copy
    assert torch.allclose(feats[0], want[0], atol=1e-6)
    assert not model.training


@pytest.mark.parametrize("factor", [2, 4])
def test_space_to_depth_is_pixel_unshuffle_in_2d(factor):
    t = torch.randn(2, 3, 8, 8)
    assert torch.equal(az._space_to_depth(t, [factor, factor]), F.pixel_unshuffle(t, factor))


def test_space_to_depth_1d_and_cropping():
    t = torch.arange(2 * 1 * 7, dtype=torch.float32).reshape(2, 1, 7)
    out = az._space_to_depth(t, [3])
    assert out.shape == (2, 3, 2)
    assert out[0, :, 0].tolist() == [0.0, 1.0, 2.0] and out[0, :, 1].tolist() == [3.0, 4.0, 5.0]


def test_paired_rows_shapes():
    a, b = az.paired_rows(torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4))
    assert a.shape == (2 * 16, 16) and b.shape == (2 * 16, 6)
    a, b = az.paired_rows(torch.randn(2, 4, 4, 4), torch.randn(2, 6, 8, 8))  # upsampling: fold the output
    assert a.shape == (32, 4) and b.shape == (32, 24)
    a, b = az.paired_rows(torch.randn(2, 4, 4, 4), torch.randn(2, 6))  # a flatten: one row per example
    assert a.shape == (2, 64) and b.shape == (2, 6)


def test_rademacher_is_seeded_plus_minus_one():
    like = torch.zeros(3, dtype=torch.float64)
    a = az.rademacher(torch.Size([1000]), torch.Generator().manual_seed(0), like)
    b = az.rademacher(torch.Size([1000]), torch.Generator().manual_seed(0), like)
    assert torch.equal(a, b) and a.dtype == torch.float64
    assert set(a.tolist()) == {-1.0, 1.0}
