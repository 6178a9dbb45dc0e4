"""Invalid configs and bounds raise ConfigError naming the field and the allowed values."""

from __future__ import annotations

import math
import pickle

import pytest

from search_spaces import ConfigError, get_space


def _error(space, config) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        space.validate(config)
    assert isinstance(err.value, ValueError)
    return err.value


def test_unknown_norm_lists_the_norms():
    err = _error(get_space("resnet_cifar"), {"norm": "batchnorm"})
    assert err.field == "norm" and err.value == "batchnorm"
    assert all(f"'{n}'" in str(err) for n in ("bn", "gn", "ln", "none"))
    assert "resnet_cifar" in str(err) and "batchnorm" in str(err)


@pytest.mark.parametrize("depth", [-3, 0, 1, 201])
def test_depth_out_of_range(depth):
    err = _error(get_space("mlp_looks_linear"), {"depth": depth})
    assert err.field == "depth" and "[2, 200]" in str(err)


@pytest.mark.parametrize(("space", "field", "value"), [
    ("resnet_cifar", "width", "16"),  # str for int
    ("resnet_cifar", "blocks", 2.0),  # float for int
    ("resnet_cifar", "blocks", True),  # bool is not an int here
    ("resnet_cifar", "skip", "yes"),  # str for bool
    ("resnet_cifar", "skip", 1),  # int for bool
    ("resnet_cifar", "lr", "0.1"),
    ("resnet_cifar", "lr", math.nan),
    ("vgg", "layout", "vgg17"),
    ("vgg", "width_mult", 0.3),
    ("mlp_looks_linear", "batch_size", 1024),
    ("nb201", "momentum", -0.1),
])
def test_wrong_type_or_value(space, field, value):
    err = _error(get_space(space), {field: value})
    assert err.field == field and repr(field) in str(err)
    assert "must be" in str(err)


def test_ints_for_floats_are_normalized():
    config = get_space("resnet_cifar").validate({"lr": 1, "weight_decay": 0})
    assert config["lr"] == 1.0 and isinstance(config["lr"], float)
    assert isinstance(config["weight_decay"], float)


def test_unknown_field_lists_the_fields():
    err = _error(get_space("resnet_cifar"), {"nrom": "bn"})
    assert err.field == "nrom" and "'norm'" in str(err) and "'blocks'" in str(err)


def test_config_must_be_a_mapping():
    assert _error(get_space("vgg"), ["vgg16"]).field == "config"


def test_fixed_defaults_are_filled_and_checked():
    config = get_space("resnet_cifar").validate({})
    assert (config["optimizer"], config["momentum"], config["weight_decay"]) == ("sgd", 0.9, 5e-4)
    assert _error(get_space("resnet_cifar"), {"optimizer": "adam"}).field == "optimizer"


def test_narrowed_space_rejects_values_outside_its_bounds():
    space = get_space("resnet_cifar", width=(8, 16), norm=["bn", "none"])
    assert _error(space, {"width": 32}).field == "width"
    err = _error(space, {"norm": "gn"})
    assert "['bn', 'none']" in str(err)
    assert space.validate({"width": 12, "norm": "none"})["width"] == 12


@pytest.mark.parametrize("bounds", [
    {"width": (4, 16)},  # below the full range
    {"width": (16, 8)},  # low > high
    {"width": (8, 16, 32)},  # not a pair
    {"norm": ["bn", "batch"]},  # unknown choice
    {"norm": []},  # empty
    {"depth": (1, 2)},  # unknown field for this space
])
def test_bad_bounds(bounds):
    with pytest.raises(ConfigError) as err:
        get_space("resnet_cifar", **bounds)
    assert err.value.field == next(iter(bounds))


def test_bounds_compose_and_fix():
    space = get_space("resnet_cifar", width=(8, 32)).with_bounds(blocks=2, activation="crelu")
    assert space.bounds == {"width": (8, 32), "blocks": 2, "activation": "crelu"}
    config = space.default_config()
    assert (config["blocks"], config["activation"]) == (2, "crelu")
    with pytest.raises(ConfigError):
        space.with_bounds(width=(32, 64))  # outside the narrowed range


def test_config_error_survives_pickling():
    """Trial workers (Ray) send exceptions between processes."""
    err = _error(get_space("resnet_cifar"), {"norm": "batchnorm"})
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, ConfigError)
    assert (copy.field, copy.value, str(copy)) == (err.field, err.value, str(err))


def test_grad_transform_dimension_matches_the_optimizer_factory():
    from nas.training import GRAD_TRANSFORMS
    from search_spaces import get_space

    for name in ("resnet_cifar", "vgg"):
        dims = {d["name"]: d for d in get_space(name).dimensions()}
        assert tuple(dims["grad_transform"]["choices"]) == tuple(GRAD_TRANSFORMS)
        assert dims["grad_transform"]["default"] == "none" and not dims["grad_transform"]["fixed"]
    assert "grad_transform" not in {d["name"] for d in get_space("nb201").dimensions()}
