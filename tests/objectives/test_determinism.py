"""Deterministic scores (issue 26 item 5): the same seed gives the same values and ranking.

The reference is the property itself: a model built from a seed and a batch drawn from a seed, scored twice
after the caller's global RNG was moved to different states, give bit-identical values for every
registered metric; the caller's RNG state is left as it was. The model has a ``Dropout`` layer, so the
metrics evaluated in train mode (AZ-NAS, ZiCo, jacob_cov) draw dropout masks from the global generator:
before ``objectives.core.rng.seeded`` their values changed from call to call.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from objectives import combined_score, registry, score
from objectives.combine import INIT_FEATURES, feature_inputs
from objectives.core.rng import seeded

NAMES = registry.names()
#: Metrics whose own random draws (directions, weight subsets, Rademacher vectors) come from ``seed``.
SEEDED = ("kappa_x", "az_trainability", "sgn_berry_esseen", "sgn_gaussianity")


def _net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()),
        nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 8 * 8, 10),
    )


def _batch(seed: int, n: int = 8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _options(name: str, seed: int) -> dict:
    opts = {"seed": seed}
    if "group_size" in registry.get(name).options:
        opts["group_size"] = 4
    return opts


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_value_whatever_the_global_rng(name):
    values, errors = [], []
    for global_seed in (1, 2):
        model, (x, y) = _net(7), _batch(7)
        torch.manual_seed(global_seed)  # the caller's stream differs between the two calls
        before = torch.get_rng_state()
        s = score(model, x, y, metrics=[name], **_options(name, 3))
        assert torch.equal(torch.get_rng_state(), before), f"{name} moved the caller's RNG state"
        values.append(s[name])
        errors.append(s.errors)
    assert _same(*values), f"{name}: {values[0]!r} then {values[1]!r} for the same seed"
    assert errors[0] == errors[1]


@pytest.mark.parametrize("name", SEEDED)
def test_a_seeded_metric_changes_with_the_seed(name):
    model, (x, y) = _net(0), _batch(0, n=16)
    # the noise metrics draw a random subset of weights per layer: keep it smaller than a layer
    extra = {"max_weights": 16} if "max_weights" in registry.get(name).options else {}
    a = score(model, x, y, metrics=[name], **_options(name, 0), **extra)[name]
    b = score(model, x, y, metrics=[name], **_options(name, 1), **extra)[name]
    assert math.isfinite(a) and math.isfinite(b) and a != b


def test_dropout_in_train_mode_follows_the_seed():
    # az_expressivity runs the model in train mode: its dropout masks are the only randomness, so the
    # value depends on the seed exactly when the model has dropout
    model, (x, y) = _net(0), _batch(0)
    a = score(model, x, y, metrics=["az_expressivity"], seed=0)["az_expressivity"]
    b = score(model, x, y, metrics=["az_expressivity"], seed=1)["az_expressivity"]
    assert a != b
    model[4].p = 0.0  # dropout off: nothing random left
    a = score(model, x, y, metrics=["az_expressivity"], seed=0)["az_expressivity"]
    b = score(model, x, y, metrics=["az_expressivity"], seed=1)["az_expressivity"]
    assert a == b


def test_a_direct_call_is_seeded_too():
    model, (x, y) = _net(0), _batch(0)
    fn = registry.get("az_expressivity").fn
    torch.manual_seed(11)
    a = fn(model, x, None)
    torch.manual_seed(12)
    b = fn(model, x, None)
    assert a == b == score(model, x, y, metrics=["az_expressivity"])["az_expressivity"]


def test_seeded_restores_the_state_and_nests_with_the_outer_seed():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(9):
        inner = torch.rand(3)
        with seeded(123):  # nested: the outer stream goes on
            nested = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)  # the caller's stream as if nothing happened
    torch.manual_seed(9)
    assert torch.equal(inner, torch.rand(3)) and torch.equal(nested, torch.rand(3))


def _ranking(seed: int) -> np.ndarray:
    metrics = [k for k in feature_inputs(INIT_FEATURES) if k in NAMES]
    x, y = _batch(seed)
    rows = []
    for width in (4, 8):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                              nn.Dropout(0.2), nn.Flatten(), nn.Linear(width * 64, 10))
        rows.append(score(model, x, y, metrics=metrics, seed=seed))
    table = pd.DataFrame(rows)
    table["lr"], table["batch_size"] = 0.05, 64
    return combined_score(table, phase="init")


def test_combined_score_repeats_for_the_same_seed():
    torch.manual_seed(0)
    a = _ranking(4)
    torch.manual_seed(1)
    b = _ranking(4)
    assert np.array_equal(a, b) and np.isfinite(a).all()
