"""vgg: conv parameter counts of the reference VGG configurations, any input size, VGG-16-BN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from search_spaces import get_space

# torchvision's vgg11/13/16/19 totals (132,863,336 / 133,047,848 / 138,357,544 / 143,667,240) minus their
# 25088-4096-4096-1000 classifier (123,642,856); vgg16/19 equal Keras' VGG16/VGG19(include_top=False).
CONV_PARAMS = {"vgg11": 9_220_480, "vgg13": 9_404_992, "vgg16": 14_714_688, "vgg19": 20_024_384}


@pytest.mark.parametrize("layout", sorted(CONV_PARAMS))
def test_conv_parameters_match_reference(layout, n_params):
    model = get_space("vgg").build({"layout": layout, "norm": "none", "width_mult": 1.0}, 10, (3, 32, 32))
    assert n_params(model, nn.Conv2d) == CONV_PARAMS[layout]


def test_vgg16_bn(n_params):
    """VGG-16-BN (paper 002's backbone): 13 conv+BN layers; BN adds torchvision's 138,365,992 - 138,357,544."""
    model = get_space("vgg").build({}, 10, (3, 32, 32))  # defaults: vgg16, bn, full width
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 13
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert n_params(model, nn.BatchNorm2d) == 138_365_992 - 138_357_544
    assert n_params(model, nn.Linear) == 512 * 10 + 10


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 7, 9), (1, 1, 1)])
@pytest.mark.parametrize("layout", ["vgg11", "vgg19"])
def test_any_input_size(shape, layout):
    model = get_space("vgg").build({"layout": layout, "width_mult": 0.125}, 10, shape, seed=0)
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(("shape", "pools"), [((3, 32, 32), 5), ((1, 28, 28), 4)])
def test_pooling_stops_at_one_pixel(shape, pools):
    model = get_space("vgg").build({"width_mult": 0.125}, 10, shape)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == pools


def test_width_multiplier(n_params):
    """At width 1/8 every conv has 1/8 of the channels: first conv 3 -> 8, last 64 -> 64."""
    model = get_space("vgg").build({"layout": "vgg16", "width_mult": 0.125, "norm": "none"}, 10, (3, 32, 32))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64]
