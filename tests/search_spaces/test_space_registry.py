"""Registry: list_spaces / get_space / register_space (timm-style)."""

from __future__ import annotations

import pytest

import search_spaces
from search_spaces import SearchSpace, UnknownSpaceError, get_space, list_spaces, register_space
from search_spaces import _registry


@pytest.fixture()
def scratch_registry(monkeypatch):
    """Registrations made in a test are discarded afterwards."""
    monkeypatch.setattr(_registry, "_SPACES", dict(_registry._SPACES))


def test_list_spaces_sorted_and_filtered():
    names = list_spaces()
    assert names == sorted(names)
    assert list_spaces("res*") == ["resnet_cifar"]
    assert list_spaces("*looks_linear") == ["mlp_looks_linear"]
    assert list_spaces("nothing*") == []


def test_unknown_space_lists_registered_ones():
    with pytest.raises(UnknownSpaceError) as err:
        get_space("resnet_imagenet")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    message = str(err.value)
    assert "resnet_imagenet" in message
    assert all(name in message for name in list_spaces())


def test_get_space_returns_instances():
    for name in list_spaces():
        space = get_space(name)
        assert isinstance(space, SearchSpace) and space.name == name


def test_register_custom_space(scratch_registry):
    @register_space("tiny_test_space")
    class Tiny(SearchSpace):
        @classmethod
        def _default_dimensions(cls):
            return []

        def _build(self, config, num_classes, input_shape):
            import torch

            return torch.nn.Linear(input_shape[-1], num_classes)

    assert "tiny_test_space" in list_spaces()
    assert get_space("tiny_test_space").build({}, 3, (5,)).out_features == 3
    with pytest.raises(ValueError, match="already registered"):
        register_space("tiny_test_space")(Tiny)


def test_register_rejects_non_spaces(scratch_registry):
    with pytest.raises(ValueError):
        register_space("not_a_space")(dict)
    with pytest.raises(ValueError):
        register_space("")


def test_only_the_package_imports_space_modules():
    assert {"resnet_cifar", "mlp_looks_linear", "vgg", "nb201"} <= set(list_spaces())
    assert search_spaces.get_space is get_space
