"""Contract tests run over every registered space (new spaces are covered automatically).

Each space is narrowed with its ``smoke_bounds`` so 25 random configs build tiny networks.
"""

from __future__ import annotations

import json
import math
import pickle
import zlib

import pytest
import torch

import search_spaces
from search_spaces import SearchSpace, get_space, list_spaces

SPACES = list_spaces()
SHAPES = ((3, 32, 32), (1, 28, 28))  # CIFAR-like and MNIST-like inputs
N_CONFIGS = 25


def _small(name: str) -> SearchSpace:
    space = get_space(name)
    return space.with_bounds(**space.smoke_bounds)


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _differs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(sa[k].is_floating_point() and not torch.equal(sa[k], sb[k]) for k in sa)


def test_builtin_spaces_registered():
    assert {"resnet_cifar", "mlp_looks_linear", "vgg", "nb201"} <= set(SPACES)


@pytest.mark.parametrize("name", SPACES)
def test_random_configs_build_and_train_one_step(name, random_trials):
    """25 configs from a seeded RandomSampler: JSON round trip, seeded rebuild, finite forward/backward."""
    space = _small(name)
    gen = torch.Generator().manual_seed(0)
    for i, trial in enumerate(random_trials(N_CONFIGS, seed=zlib.crc32(name.encode()))):
        config = space.sample(trial)
        assert trial.params, "sample() must go through trial.suggest_*"
        # JSON round trip: a plain dict that survives serialization unchanged
        restored = json.loads(json.dumps(config))
        assert restored == config
        assert space.validate(restored) == config
        shape = SHAPES[i % 2]
        model = space.build(restored, num_classes=10, input_shape=shape, seed=i)
        assert isinstance(model, torch.nn.Module)
        x = torch.randn(3, *shape, generator=gen)
        t = torch.randint(0, 10, (3,), generator=gen)
        out = model(x)
        assert out.shape == (3, 10)
        assert torch.isfinite(out).all(), config
        loss = torch.nn.functional.cross_entropy(out, t)
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert any(g is not None for g in grads)
        assert all(torch.isfinite(g).all() for g in grads if g is not None), config


@pytest.mark.parametrize("name", SPACES)
def test_seed_determinism(name, random_trials):
    """Same config and seed -> identical state_dict; another seed -> different; global RNG untouched."""
    space = _small(name)
    for trial in random_trials(5, seed=1):
        config = space.sample(trial)
        state = torch.get_rng_state()
        a = space.build(config, 10, (3, 32, 32), seed=123)
        assert torch.equal(torch.get_rng_state(), state), "build(seed=...) must not disturb the global RNG"
        b = space.build(json.loads(json.dumps(config)), 10, (3, 32, 32), seed=123)
        c = space.build(config, 10, (3, 32, 32), seed=124)
        _assert_same_state(a, b)
        assert _differs(a, c)


@pytest.mark.parametrize("name", SPACES)
def test_sample_stays_in_narrowed_bounds(name, random_trials):
    """Every value sampled from a narrowed space lies in the narrowed domain given in dimensions()."""
    space = _small(name)
    dims = {d["name"]: d for d in space.dimensions()}
    for trial in random_trials(N_CONFIGS, seed=2):
        config = space.sample(trial)
        assert list(config) == list(dims)
        for key, value in config.items():
            d = dims[key]
            if d["type"] in ("int", "float"):
                assert d["low"] <= value <= d["high"], (key, value)
                assert isinstance(value, int if d["type"] == "int" else float)
            elif d["type"] == "categorical":
                assert value in d["choices"], (key, value)
    for key, bound in space.smoke_bounds.items():
        d = dims[key]
        if d["type"] in ("int", "float") and isinstance(bound, tuple):
            assert (d["low"], d["high"]) == bound


@pytest.mark.parametrize("name", SPACES)
def test_dimensions_describe_every_field(name):
    space = get_space(name)
    assert space.summary
    dims = space.dimensions()
    json.dumps(dims)  # printable by the CLI as JSON
    assert [d["name"] for d in dims] == list(space.default_config())
    for d in dims:
        assert {"name", "type", "log", "default", "fixed", "description"} <= set(d)
        assert d["description"]
        if d["type"] in ("int", "float"):
            assert d["low"] <= d["default"] <= d["high"]
            if d["log"]:
                assert d["low"] > 0
        elif d["type"] == "categorical":
            assert d["default"] in d["choices"]
    fixed = {d["name"]: d["default"] for d in dims if d["fixed"]}
    # the training defaults (search_spaces._base.training_dimensions), stored in every config
    assert fixed["optimizer"] == "sgd" and fixed["momentum"] == 0.9 and fixed["weight_decay"] == 5e-4
    searched = {d["name"]: d for d in dims if not d["fixed"]}
    bs, lr = searched["batch_size"], searched["lr"]
    assert (bs["low"], bs["high"], bs["log"]) == (32, 512, True)
    assert (lr["low"], lr["high"], lr["log"]) == (1e-3, 1.0, True)


@pytest.mark.parametrize("name", SPACES)
def test_default_config_is_complete_and_builds(name):
    space = _small(name)
    config = space.default_config()
    assert space.validate({}) == config
    assert space.validate(config) == config
    assert math.isfinite(config["lr"])
    model = space.build({}, num_classes=4, input_shape=(3, 16, 16), seed=0)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)


@pytest.mark.parametrize("name", SPACES)
def test_build_rejects_bad_arguments(name):
    space = _small(name)
    with pytest.raises(ValueError, match="num_classes"):
        space.build({}, num_classes=0, input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        space.build({}, num_classes=10, input_shape=(3, -8, 8))


def test_public_api_is_small():
    assert sorted(search_spaces.__all__) == sorted(
        ["ConfigError", "Dimension", "GRAD_TRANSFORMS", "SearchSpace", "UnknownSpaceError", "get_space", "list_spaces",
         "register_space", "SpaceError", "resolve_space_ref", "categorical", "integer", "real", "training_dimensions"]
    )
    assert issubclass(search_spaces.ConfigError, ValueError)
    assert issubclass(search_spaces.SpaceError, ValueError)
    assert issubclass(search_spaces.UnknownSpaceError, (KeyError, search_spaces.SpaceError))


@pytest.mark.parametrize("name", SPACES)
def test_narrowed_space_pickles_and_rebuilds_from_its_bounds(name):
    """Spaces travel to trial workers; ``get_space(name, **space.bounds)`` reproduces a narrowed space."""
    space = _small(name)
    assert pickle.loads(pickle.dumps(space)).dimensions() == space.dimensions()
    assert get_space(name, **space.bounds).dimensions() == space.dimensions()
