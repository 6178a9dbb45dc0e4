"""VGG-style plain convnets (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale
Image Recognition", ICLR, arXiv:1409.1556, Table 1 configurations A/B/D/E), in the CIFAR form common in
the literature (e.g. the VGG-16-BN backbone of Yun 2025, "Insights from Gradient Dynamics: Gradient
Autoscaled Normalization", arXiv:2509.03677, shared paper 002; its exact head is not specified there):
3x3 convolutions with bias, optional normalization after each conv, ReLU, 2x2 max-pooling between
blocks, then global average pooling and one linear layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from search_spaces._base import Dimension, SearchSpace, categorical, conv_input_shape, training_dimensions
from search_spaces._registry import register_space
from search_spaces.layers import NORMS, make_norm

__all__ = ["LAYOUTS", "VGG", "VGGSpace"]

#: Conv widths per layer, "M" = 2x2 max-pool (Simonyan & Zisserman, Table 1: A = vgg11, B = vgg13,
#: D = vgg16, E = vgg19).
LAYOUTS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
    """VGG feature extractor + ``AdaptiveAvgPool2d(1)`` + ``Linear``.

    A max-pool is skipped when the feature map is already smaller than 2x2, so any input size works
    (32x32 pools 5 times down to 1x1; 28x28 pools 4 times: 14, 7, 3, 1).

    Initialization (as torchvision's VGG): convs He-normal (fan-out, ReLU gain), biases zero; norm
    weight 1, bias 0; the linear head ``N(0, 0.01^2)``, bias zero.

    Args:
        layout: one of :data:`LAYOUTS`' keys.
        width_mult: multiplier of every conv width (rounded, at least 1 channel).
        norm: ``"bn" | "gn" | "ln" | "none"`` after each conv (``"bn"`` gives VGG-BN).
        num_classes: outputs.
        input_shape: ``(channels, height, width)``.
    """

    def __init__(self, layout: str, width_mult: float, norm: str, num_classes: int,
                 input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        c_in, h, w = input_shape
        layers: list[nn.Module] = []
        for item in LAYOUTS[layout]:
            if item == "M":
                if h >= 2 and w >= 2:
                    layers.append(nn.MaxPool2d(2, 2))
                    h, w = h // 2, w // 2
                continue
            c_out = max(1, round(int(item) * width_mult))
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), make_norm(norm, c_out), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)
        self._init()

    @torch.no_grad()
    def _init(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_space("vgg")
class VGGSpace(SearchSpace):
    """VGG space.

    Fields (searched): ``layout`` vgg11 | vgg13 | vgg16 | vgg19, ``width_mult`` 0.125 | 0.25 | 0.5 | 1.0,
    ``norm`` bn | gn | ln | none, ``batch_size`` 32-512 (log), ``lr`` 1e-3-1 (log). Fixed: ``optimizer``
    "sgd", ``momentum`` 0.9, ``weight_decay`` 5e-4. Defaults: VGG-16-BN at full width (paper 002's
    backbone; 14,728,266 parameters for 10 classes), batch 128, lr 0.05.
    """

    #: The network class :meth:`build` returns (its docstring: the building and initialization rules).
    model_class = VGG

    smoke_bounds = {"width_mult": (0.125,)}

    @classmethod
    def _default_dimensions(cls) -> list[Dimension]:
        return [
            categorical("layout", tuple(LAYOUTS), default="vgg16", description="VGG configuration (A/B/D/E)"),
            categorical("width_mult", (0.125, 0.25, 0.5, 1.0), default=1.0, description="conv width multiplier"),
            categorical("norm", NORMS, default="bn", description="normalization after each conv"),
            *training_dimensions(batch_size=128, lr=0.05, grad_transform=True),
        ]

    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        return VGG(config["layout"], config["width_mult"], config["norm"], num_classes,
                   conv_input_shape(input_shape, self.name))
