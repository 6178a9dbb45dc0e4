"""A custom model family searched on your own image folder: a small MobileNet-style space.

    python -m nas search --space examples/image_folder/space.py:space --dataset folder:PATH --budget 5m

``PATH`` is a folder with one subfolder of images per class (``PATH/cat/*.jpg``, ``PATH/dog/*.jpg``, ...),
or ``PATH/train/<class>/`` and ``PATH/test/<class>/``; see docs/data.md. No images at hand?
``python examples/image_folder/make_images.py /tmp/shapes`` writes a small demo folder (3 classes: the
colour of a small square on noise, 32 x 32), and ``sh examples/image_folder/search.sh`` does both.

What it shows: a define-by-run function ``space(trial, num_classes)`` (Optuna style) is a search space.
gradnas discovers its dimensions (``python -m nas spaces examples/image_folder/space.py:space``), samples
them, scores every candidate at initialization, trains the promising ones, and saves the best as
``runs/<study>/best_model.pt``, which ``nas.load_model(path, with_info=True)`` rebuilds from this file
with the folder's class names and normalization.

The family: a stem convolution, then three stages of MobileNetV2 inverted residual blocks (1x1 expand,
k x k depthwise, 1x1 project; a residual connection where the shapes match), global average pooling and
a linear head. Searched: the width multiplier, the blocks per stage (depth), the expansion ratio, the
depthwise kernel and the activation; gradnas adds the batch size and learning rate. The stem is a lazy
layer (it takes the folder's channels, 1 for grayscale or 3 for RGB, on its first forward pass, which
gradnas runs before anything else); the other layers have explicit sizes. ``space.smoke_bounds`` and
``space.cpu_bounds`` (set after the function) narrow it for ``--smoke`` and for a budget search on a CPU.

Run time on a 2-core CPU: the search takes the budget you give (``--budget 5m``: about 5 minutes, plus a
few seconds to read the images; on the demo folder the best of 208 candidates reached 0.675 test accuracy); the example's test (60 images of 12 x 12 pixels, ``--budget 30s
--smoke``) about 35 seconds.
"""

from torch import nn

#: Channels of the stem and of the three stages at width multiplier 1.
BASE_CHANNELS = (16, 24, 32, 64)
ACTIVATIONS = {"relu6": nn.ReLU6, "hardswish": nn.Hardswish}


def scaled(channels: int, width_mult: float) -> int:
    """Channels times the width multiplier, rounded to a multiple of 8 (at least 8), as MobileNet does."""
    return max(8, int(channels * width_mult + 4) // 8 * 8)


class InvertedResidual(nn.Module):
    """1x1 expand -> k x k depthwise (stride) -> 1x1 project, residual when input and output shapes match."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int, kernel: int, act: type[nn.Module]) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:  # expansion 1: the depthwise-separable block of MobileNetV1
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), act()]
        layers += [nn.Conv2d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), act(),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


def space(trial, num_classes=10):
    """A small MobileNet-style family: width multiplier, blocks per stage, expansion, kernel, activation."""
    width_mult = trial.suggest_categorical("width_mult", [0.25, 0.5, 0.75, 1.0])
    depth = trial.suggest_int("depth", 1, 3)
    expand = trial.suggest_categorical("expand", [1, 2, 4, 6])
    kernel = trial.suggest_categorical("kernel", [3, 5])
    act = ACTIVATIONS[trial.suggest_categorical("activation", ["relu6", "hardswish"])]
    stem, *stages = (scaled(c, width_mult) for c in BASE_CHANNELS)
    layers: list[nn.Module] = [nn.LazyConv2d(stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), act()]
    c_in = stem
    for i, c_out in enumerate(stages):
        for j in range(depth):
            stride = 2 if i > 0 and j == 0 else 1  # halve the resolution at the start of stages 2 and 3
            layers.append(InvertedResidual(c_in, c_out, stride, expand, kernel, act))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


# What --smoke (tiny networks, for tests) and a budget search on a CPU without --bounds search: the largest
# networks of the full space score slowly on a 2-core CPU and leave little of a 5-minute budget for training.
space.smoke_bounds = {"width_mult": [0.25], "depth": (1, 1), "expand": [1, 2], "kernel": [3]}
space.cpu_bounds = {"width_mult": [0.25, 0.5], "depth": (1, 2), "expand": [1, 2, 4], "batch_size": (32, 128)}
