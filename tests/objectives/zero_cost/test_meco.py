"""Tests of objectives/zero_cost/meco.py: a closed form (two channels with correlation rho: 1 - |rho| per
hooked module), a numpy slow loop over every module, the reference algorithm on an NB201 network,
example 0 only, outputs without positions, the caller's train/eval mode."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import objectives.zero_cost as zc
from objectives.zero_cost.meco import min_correlation_eigenvalue
from search_spaces import get_space


def _identity_conv(c: int) -> nn.Conv2d:
    conv = nn.Conv2d(c, c, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(c)[:, :, None, None])
    return conv


@pytest.mark.parametrize("rho", [0.0, 0.3, -0.8, 0.99])
def test_two_channels_with_known_correlation(rho):
    u = torch.tensor([1.0, -1.0, 1.0, -1.0])  # centered, orthogonal, equal norms: corr(u, rho u + s v) = rho
    v = torch.tensor([1.0, 1.0, -1.0, -1.0])
    example = torch.stack([u, rho * u + (1 - rho ** 2) ** 0.5 * v]).reshape(2, 2, 2)
    x = torch.cat([example[None], torch.randn(3, 2, 2, 2)])  # examples 1..3 are not read
    # hooked: the root Sequential and the conv, both output the same map: 2 (1 - |rho|)
    value = zc.meco(nn.Sequential(_identity_conv(2)), x, None)
    assert value == pytest.approx(2 * (1 - abs(rho)), abs=1e-6)  # the input is float32


def _np_min_eig(feature: np.ndarray) -> float:
    rows = feature.reshape(feature.shape[0], -1)
    if rows.shape[1] < 2:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(rows)
    corr = np.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
    return float(np.linalg.eigvalsh(corr)[0])


def _slow_reference(model: nn.Module, x: torch.Tensor, train: bool) -> float:
    """One hook per ``named_modules()`` entry of a copy in the given mode; numpy correlation of example 0."""
    net = copy.deepcopy(model).train(train)
    values: list[float] = []
    handles = [m.register_forward_hook(lambda mod, a, o: values.append(_np_min_eig(o[0].double().numpy())))
               for _, m in net.named_modules()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return sum(values)


@pytest.mark.parametrize("train", [True, False])
def test_matches_a_slow_loop_in_the_callers_mode(convnet, batch, train):
    model = convnet(seed=2)
    for m in model.modules():  # give BatchNorm non-trivial running statistics for eval mode
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x, _ = batch((3, 6, 6))
    model.train(train)
    assert zc.meco(model, x, None) == pytest.approx(_slow_reference(model, x, train), rel=1e-9, abs=1e-12)
    assert model.training == train
    assert zc.meco(model.train(), x, None) != zc.meco(model.eval(), x, None)


def _reference_nb201(model: nn.Module, x: torch.Tensor) -> float:
    """The reference's get_score: hooks on every module, float32 corrcoef, linalg.eig, NaN/inf left out."""
    net = copy.deepcopy(model).train()
    results = []

    def hook(module, args, out):
        fea = out[0].clone().detach()
        fea = fea.reshape(fea.shape[0], -1)
        corr = torch.corrcoef(fea)
        corr[torch.isnan(corr)] = 0
        corr[torch.isinf(corr)] = 0
        results.append(torch.min(torch.real(torch.linalg.eig(corr)[0])))

    handles = [m.register_forward_hook(hook) for _, m in net.named_modules()]
    try:
        with torch.no_grad(), pytest.warns(UserWarning):  # corrcoef of one position per channel
            net(x)
    finally:
        for h in handles:
            h.remove()
    r = torch.tensor(results)
    return float(r[torch.isfinite(r)].sum())


def test_matches_the_reference_algorithm_on_an_nb201_network():
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    model = get_space("nb201").build({"arch": arch, "channels": 4, "cells": 1}, 10, (3, 16, 16), seed=0)
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # one example, as published
    assert zc.meco(model, x, None) == pytest.approx(_reference_nb201(model, x), abs=1e-4)


def test_only_example_zero_is_read_without_batch_coupling(convnet, batch):
    model = convnet().eval()  # eval mode: no batch statistics
    x, _ = batch((3, 6, 6))
    y = x.clone()
    y[1:] = torch.randn_like(y[1:])
    assert zc.meco(model, x, None) == zc.meco(model, y, None)
    assert zc.meco(model, x[:1], None) == pytest.approx(zc.meco(model, x, None), rel=1e-6)  # conv rounding


def test_outputs_without_positions_add_zero(mlp, batch):
    x, _ = batch((6,))
    assert zc.meco(mlp(), x, None) == 0.0
    assert min_correlation_eigenvalue(torch.randn(5, 1)) == 0.0


def test_constant_channel_gives_zero():
    feature = torch.randn(3, 10, generator=torch.Generator().manual_seed(0))
    assert min_correlation_eigenvalue(feature) > 0.1
    feature[1] = 2.0  # its correlations are NaN, set to 0: a zero row and column
    assert min_correlation_eigenvalue(feature) == pytest.approx(0.0, abs=1e-15)


def test_more_channels_than_positions_gives_zero():
    assert min_correlation_eigenvalue(torch.randn(6, 2, 2)) == pytest.approx(0.0, abs=1e-12)


def test_nan_inputs_raise(convnet, batch):
    x, _ = batch((3, 6, 6))
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        zc.meco(convnet(), x, None)
