"""Tests of objectives/zero_cost/_harness.py: scored layers, functional evaluation, weight gradients."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import objectives.zero_cost as zc
from objectives.zero_cost._harness import (
    LAYER_TYPES,
    _Functional,
    _layers,
    _required_layers,
    _weight_grads,
)


def test_layer_types_reexported():
    assert zc.LAYER_TYPES is LAYER_TYPES
    scored = (nn.Linear(2, 2), nn.Conv1d(2, 2, 1), nn.ConvTranspose2d(2, 2, 1))
    assert all(isinstance(m, LAYER_TYPES) for m in scored)
    assert not isinstance(nn.BatchNorm2d(2), LAYER_TYPES)


def test_layers_each_weight_once_in_module_order():
    tied = nn.Linear(4, 4, bias=False)
    model = nn.Sequential(nn.Conv1d(2, 4, 1), nn.BatchNorm1d(4), nn.Flatten(), tied, nn.ReLU(), tied,
                          nn.Linear(4, 3))
    layers = _layers(model)
    assert [(l.name, l.weight) for l in layers] == [("0", "0.weight"), ("3", "3.weight"), ("6", "6.weight")]
    assert [l.module for l in layers] == [model[0], tied, model[6]]
    assert all(tuple(l) == (l.name, l.module, l.weight) for l in layers)  # still plain triples


def test_layers_skip_computed_weights_loudly(caplog):
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))

    class Doubled(nn.Module):
        def forward(self, w):
            return 2 * w

    parametrize.register_parametrization(model[0], "weight", Doubled())
    with caplog.at_level(logging.WARNING, logger="objectives.zero_cost"):
        layers = _layers(model)
    assert [l.name for l in layers] == ["1"]
    assert "not a registered parameter" in caplog.text and "['0']" in caplog.text


def test_required_layers_names_the_metric():
    with pytest.raises(ValueError, match="grad_norm scores Linear/conv weights"):
        _required_layers(nn.Sequential(nn.ReLU()), "grad_norm")
    no_layers = nn.Sequential(nn.BatchNorm1d(3), nn.ReLU())  # trainable (affine) but no Linear/conv
    for name in ("grad_norm", "snip", "grasp", "fisher", "synflow", "zico"):
        with pytest.raises(ValueError, match=f"{name} scores Linear/conv weights"):
            getattr(zc, name)(no_layers, torch.randn(4, 3), torch.zeros(4, dtype=torch.long))


def test_functional_matches_model_and_updates_only_cloned_buffers(mlp, batch):
    model = mlp(bn=True).train()
    reference = copy.deepcopy(model)
    x, _ = batch((6,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fn = _Functional(model, ["0.weight"])
    out = fn(x)
    assert torch.equal(out, reference(x))  # same train-mode forward
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert not torch.equal(fn.tensors["1.running_mean"], before["1.running_mean"])  # clones were updated
    assert int(fn.tensors["1.num_batches_tracked"]) == 1
    (leaf,) = fn.leaves
    assert leaf.requires_grad and leaf is not model[0].weight and torch.equal(leaf, model[0].weight)
    assert model[0].weight.grad is None


def test_functional_transform_applies_to_floating_tensors_only(mlp):
    model = mlp(bn=True)
    fn = _Functional(model, transform=lambda t: t.abs().double())
    assert torch.equal(fn.tensors["0.weight"], model[0].weight.detach().abs().double())
    assert fn.tensors["1.running_var"].dtype == torch.float64
    assert fn.tensors["1.num_batches_tracked"].dtype == torch.long


def test_functional_rejects_non_tensor_outputs():
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x), x

    with pytest.raises(TypeError, match="returning a Tensor"):
        _Functional(Pair())(torch.randn(3, 2))


def test_weight_grads_match_backward_and_zero_for_unused(batch, layer_weights):
    class Unused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.used = nn.Linear(4, 3)
            self.unused = nn.Linear(4, 3)

        def forward(self, x):
            return self.used(x)

    model = Unused()
    x, y = batch((4,))
    net = copy.deepcopy(model)
    F.cross_entropy(net(x), y).backward()
    with torch.no_grad():  # gradients are enabled inside
        weights, grads = _weight_grads(model, x, y, F.cross_entropy, _layers(model))
    assert [torch.equal(w, p) for w, p in zip(weights, layer_weights(model))] == [True, True]
    assert torch.allclose(grads[0], net.used.weight.grad, rtol=1e-6, atol=0)
    assert torch.equal(grads[1], torch.zeros(3, 4))
    assert model.used.weight.grad is None
