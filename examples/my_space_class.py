"""Your own model family as a registered SearchSpace subclass (declared dimensions, validated configs).

    python -m nas spaces examples/my_space_class.py:TinyMobileNetSpace
    python -m nas score --space examples/my_space_class.py:TinyMobileNetSpace --dataset synthetic

A subclass declares its fields once (``_default_dimensions``: names, domains, defaults; the shared training
fields from ``training_dimensions()``) and builds the network from a validated config (``_build``).
``@register_space`` also makes it available by name (``get_space("tiny_mobilenet")``) in any process that
imported this file; the ``FILE.py:ATTR`` reference works with or without it and is what gradnas stores.
"""

from torch import nn

from search_spaces import SearchSpace, categorical, integer, register_space, training_dimensions


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (stride) -> 1x1 project, residual when shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, act: type[nn.Module]) -> None:
        super().__init__()
        hidden = c_in * expand
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), act(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


@register_space("tiny_mobilenet")
class TinyMobileNetSpace(SearchSpace):
    """A small MobileNetV2-style family: stages of inverted residual blocks (width, depth, expansion)."""

    smoke_bounds = {"width": (8, 8), "blocks": (1, 1), "expand": [2]}

    @classmethod
    def _default_dimensions(cls):
        return [
            integer("width", 8, 32, default=16, log=True, description="channels of the first stage"),
            integer("blocks", 1, 3, default=1, description="inverted residual blocks per stage"),
            categorical("expand", (2, 4, 6), default=4, description="expansion ratio of the blocks"),
            categorical("activation", ("relu6", "silu"), description="activation"),
            *training_dimensions(batch_size=128, lr=0.05),
        ]

    def _build(self, config, num_classes, input_shape):
        act = nn.ReLU6 if config["activation"] == "relu6" else nn.SiLU
        w = config["width"]
        layers = [nn.Conv2d(input_shape[0], w, 3, padding=1, bias=False), nn.BatchNorm2d(w), act()]
        c_in = w
        for stage, c_out in enumerate((w, 2 * w, 4 * w)):
            for j in range(config["blocks"]):
                stride = 2 if stage > 0 and j == 0 else 1
                layers.append(InvertedResidual(c_in, c_out, stride, config["expand"], act))
                c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
        return nn.Sequential(*layers)
