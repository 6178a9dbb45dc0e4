"""CIFAR ResNets (He et al. 2016, "Deep Residual Learning for Image Recognition", CVPR, Sec. 4.2).

Three stages of ``blocks`` basic blocks at widths ``w, 2w, 4w`` (depth ``6 * blocks + 2``:
ResNet-20/32/44/56 for 3/5/7/9 blocks at ``w = 16``), the first block of stages 2 and 3 with stride 2,
parameter-free "option A" shortcuts (subsample, then zero-pad the new channels), global average pooling
and a linear head. The space varies depth, width, skip connections (residual vs plain), normalization
and the activation (ReLU, or CReLU with looks-linear initialization, see :mod:`search_spaces.layers`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from search_spaces._base import Dimension, SearchSpace, categorical, conv_input_shape, integer, training_dimensions
from search_spaces._registry import register_space
from search_spaces.layers import ACTIVATIONS, NORMS, activation_width, looks_linear_, make_activation, make_norm

__all__ = ["BasicBlock", "ResNetCifar", "ResNetCifarSpace"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class _ShortcutA(nn.Module):
    """He et al.'s option A identity shortcut: subsample by ``stride``, zero-pad the extra channels.

    With CReLU the block input is ``a = [relu(z), relu(-z)]``; the shortcut carries the pre-activation
    ``z = a[:, :C] - a[:, C:]`` (the exact inverse of CReLU), so that a looks-linear residual net
    without normalization is exactly linear at initialization.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, crelu: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.crelu = in_channels, out_channels, stride, crelu

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        z = a[:, : self.in_channels] - a[:, self.in_channels :] if self.crelu else a
        if self.stride > 1:
            z = z[:, :, :: self.stride, :: self.stride]
        if self.out_channels > self.in_channels:
            z = F.pad(z, (0, 0, 0, 0, 0, self.out_channels - self.in_channels))
        return z

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride={self.stride}, crelu={self.crelu}"


class BasicBlock(nn.Module):
    """``act(norm2(conv2(act(norm1(conv1(a))))) + shortcut(a))``; without ``skip`` the shortcut is dropped.

    ``a`` has ``m * in_channels`` channels where ``m`` is :func:`~search_spaces.layers.activation_width`
    (2 for CReLU), and so has the output (``m * out_channels``).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str, activation: str,
                 skip: bool) -> None:
        super().__init__()
        m = activation_width(activation)
        self.conv1 = _conv3x3(m * in_channels, out_channels, stride)
        self.norm1 = make_norm(norm, out_channels)
        self.act1 = make_activation(activation)
        self.conv2 = _conv3x3(m * out_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)
        self.shortcut = _ShortcutA(in_channels, out_channels, stride, activation == "crelu") if skip else None
        self.act2 = make_activation(activation)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(a)))))
        if self.shortcut is not None:
            h = h + self.shortcut(a)
        return self.act2(h)


class ResNetCifar(nn.Module):
    """CIFAR ResNet: stem conv3x3 -> 3 stages of :class:`BasicBlock` -> global average pool -> linear.

    Initialization:
        * ReLU: convolutions He-normal (``kaiming_normal_``, fan-in, ReLU gain); head He-normal with linear
          gain; biases zero.
        * CReLU: the stem conv is orthogonal (gain 1), every conv/linear that follows a CReLU is
          looks-linear (``[W, -W]``, W orthogonal); biases zero. Without normalization the whole residual
          or plain network is then an exactly linear map at initialization.
        * Without normalization and with skip connections, the last conv of every residual branch is
          scaled by ``L ** -0.5`` (``L = 3 * blocks`` residual blocks), the Fixup rule ``L^(-1/(2m-2))``
          for ``m = 2`` layers per branch (Zhang, Dauphin & Ma 2019, "Fixup Initialization: Residual
          Learning Without Normalization", ICLR, arXiv:1901.09321) applied to the branch output, so the
          activations grow at most by about ``(1 + 1/L)^(L/2) <= e^(1/2)`` instead of ``2^(L/2)``. (Fixup
          zero-initializes that layer instead; we keep it nonzero so every weight has a gradient at init.)
        * Normalization layers: weight 1, bias 0.

    Args:
        blocks: basic blocks per stage.
        width: channels of the first stage (stages have ``width, 2 * width, 4 * width``).
        skip: residual (True) or plain (False) blocks.
        norm: ``"bn" | "gn" | "ln" | "none"`` (see :func:`~search_spaces.layers.make_norm`).
        activation: ``"relu" | "crelu"``.
        num_classes: outputs of the head.
        in_channels: channels of the input images.
    """

    def __init__(self, blocks: int, width: int, skip: bool, norm: str, activation: str, num_classes: int,
                 in_channels: int = 3) -> None:
        super().__init__()
        m = activation_width(activation)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), make_norm(norm, width),
                                  make_activation(activation))
        stages, c_in = [], width
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            layers = [BasicBlock(c_in if j == 0 else c_out, c_out, 2 if i > 0 and j == 0 else 1, norm, activation, skip)
                      for j in range(blocks)]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(m * c_in, num_classes)
        self._init(activation, norm, skip, blocks)

    @torch.no_grad()
    def _init(self, activation: str, norm: str, skip: bool, blocks: int) -> None:
        crelu = activation == "crelu"
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if crelu:
                    if module is self.stem[0]:
                        nn.init.orthogonal_(module.weight)
                    else:
                        looks_linear_(module.weight)
                elif isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
                else:
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if norm == "none" and skip:
            scale = (3 * blocks) ** -0.5
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    module.conv2.weight.mul_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


@register_space("resnet_cifar")
class ResNetCifarSpace(SearchSpace):
    """CIFAR ResNet space, the flagship space.

    Fields (searched): ``blocks`` 1-9 per stage (depth ``6 * blocks + 2``: 8-56), ``width`` 8-64 (log),
    ``skip`` True/False, ``norm`` bn | gn | ln | none, ``activation`` relu | crelu, ``batch_size`` 32-512
    (log), ``lr`` 1e-3-1 (log), ``grad_transform`` none | gan | gc | zscore. Fixed: ``optimizer`` "sgd", ``momentum`` 0.9, ``weight_decay`` 5e-4.
    Defaults give ResNet-20 with BatchNorm (269,722 parameters for 10 classes), batch 128, lr 0.1.
    Any ``(channels, height, width)`` input works (global average pooling before the head).

    Narrow it for fast tests with ``get_space("resnet_cifar", width=(8, 16), blocks=(1, 2))``.
    See :class:`ResNetCifar` for the initialization rules.
    """

    #: The network class :meth:`build` returns (its docstring: the building and initialization rules).
    model_class = ResNetCifar

    smoke_bounds = {"blocks": (1, 2), "width": (8, 16)}
    cpu_bounds = {"blocks": (1, 2), "width": (8, 16), "batch_size": (32, 128)}

    @classmethod
    def _default_dimensions(cls) -> list[Dimension]:
        return [
            integer("blocks", 1, 9, default=3, description="basic blocks per stage (depth 6*blocks+2)"),
            integer("width", 8, 64, default=16, log=True, description="channels of stage 1 (stages: w, 2w, 4w)"),
            categorical("skip", (True, False), description="residual (True) or plain (False) blocks"),
            categorical("norm", NORMS, description="normalization after each conv"),
            categorical("activation", ACTIVATIONS,
                        description="relu, or crelu with looks-linear init (next conv takes 2x channels)"),
            *training_dimensions(batch_size=128, lr=0.1, grad_transform=True),
        ]

    def _build(self, config: dict[str, Any], num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
        channels, _, _ = conv_input_shape(input_shape, self.name)
        return ResNetCifar(config["blocks"], config["width"], config["skip"], config["norm"], config["activation"],
                           num_classes, in_channels=channels)

