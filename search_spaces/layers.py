"""Building blocks shared by the spaces: CReLU, looks-linear initialization, normalization factory.

CReLU and looks-linear (LL) initialization (Balduzzi et al. 2017, "The Shattered Gradients Problem: If
resnets are the answer, then what is the question?", ICML, arXiv:1702.08591, Sec. 5; Nelson 2022 thesis,
Def. 3.8-3.9)::

    CReLU(x)      = [relu(x), relu(-x)]            (concatenated along the channel dimension)
    W_LL          = [W, -W]                         (W orthogonal, mirrored column blocks)
    W_LL CReLU(x) = W relu(x) - W relu(-x) = W x    (exactly linear at initialization)

.. note::
    Sign convention. The project's first design notes wrote CReLU as ``concat(relu(x), -relu(-x))`` *and* the
    mirrored blocks as ``[W, -W]``; these two together give ``W relu(x) + W relu(-x) = W |x|``, which
    is not linear. We follow Shang et al. (2016, "Understanding and Improving Convolutional Neural
    Networks via Concatenated Rectified Linear Units", ICML, arXiv:1603.05201) for CReLU,
    ``[relu(x), relu(-x)]``, and the thesis's eq. 3.23 for the weights, ``[W, -W]`` (its Fig. 3.11
    measures mirrored pairs by ``|w + w'|``, i.e. opposite signs), so the composition is ``W x``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "CReLU",
    "activation_width",
    "group_count",
    "looks_linear_",
    "make_activation",
    "make_norm",
]

#: Activation names accepted by :func:`make_activation`.
ACTIVATIONS = ("relu", "crelu")
#: Normalization names accepted by :func:`make_norm`.
NORMS = ("bn", "gn", "ln", "none")


class CReLU(nn.Module):
    """Concatenated ReLU: ``CReLU(x) = [relu(x), relu(-x)]`` along ``dim``; doubles that dimension.

    ``relu(x) - relu(-x) = x``, so the input is recovered exactly from the two halves, and a layer with
    mirrored weights ``[W, -W]`` after it computes ``W x`` (see :func:`looks_linear_`).
    Shang et al. 2016, arXiv:1603.05201.

    Args:
        dim: the channel dimension (1 for ``(N, C)`` and ``(N, C, H, W)`` tensors).
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((F.relu(x), F.relu(-x)), dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def activation_width(kind: str) -> int:
    """How many channels an activation emits per input channel: 1 for relu, 2 for crelu."""
    if kind not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)}; got {kind!r}")
    return 2 if kind == "crelu" else 1


def make_activation(kind: str) -> nn.Module:
    """``nn.ReLU()`` for ``"relu"``, :class:`CReLU` (channel dim 1) for ``"crelu"``."""
    activation_width(kind)  # validates
    return CReLU(dim=1) if kind == "crelu" else nn.ReLU()


@torch.no_grad()
def looks_linear_(weight: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Fill ``weight`` in place with the looks-linear pattern ``[W, -W]`` along the input dimension.

    ``weight`` has shape ``(out, 2 * in, *kernel)`` (a ``Linear`` or ``ConvNd`` that follows a
    :class:`CReLU`). ``W`` of shape ``(out, in, *kernel)`` is drawn with ``nn.init.orthogonal_`` (rows or
    columns of its ``(out, in * prod(kernel))`` matrix orthonormal, scaled by ``gain``); the first half
    of the input channels gets ``W`` and the second half ``-W``. Then for any ``x``::

        layer(CReLU(x)) = W * relu(x) - W * relu(-x) = W * x     (* : matmul or convolution)

    (zero padding commutes with ``relu``, so the identity holds for convolutions too).

    Args:
        weight: the tensor to fill; its dimension 1 must be even.
        gain: multiplier of the orthogonal matrix.

    Returns:
        ``weight``.
    """
    if weight.dim() < 2 or weight.shape[1] % 2:
        raise ValueError(f"looks-linear init needs an even input dimension; got weight of shape {tuple(weight.shape)}")
    half = weight.shape[1] // 2
    w = torch.empty((weight.shape[0], half, *weight.shape[2:]), dtype=weight.dtype, device=weight.device)
    nn.init.orthogonal_(w, gain=gain)
    weight[:, :half].copy_(w)
    weight[:, half:].copy_(-w)
    return weight


def group_count(channels: int, max_groups: int = 32, min_group_size: int = 4) -> int:
    """Number of GroupNorm groups for ``channels``: the largest divisor of ``channels`` that is at most
    ``max_groups`` and leaves at least ``min_group_size`` channels per group (1 if none does).

    Wu & He (2018, "Group Normalization", ECCV, arXiv:1803.08494) use 32 groups; narrow CIFAR nets
    (8-64 channels) cannot, so we cap the group count by the group size instead: 8 -> 2, 16 -> 4,
    24 -> 6, 64 -> 16, 256 -> 32, 13 -> 1.
    """
    if channels < 1:
        raise ValueError(f"channels must be positive; got {channels}")
    limit = max(1, min(max_groups, channels // min_group_size))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def make_norm(kind: str, channels: int, *, dim: int = 2, groups: int | None = None) -> nn.Module:
    """Normalization layer factory.

    Args:
        kind: ``"bn"`` (BatchNorm), ``"gn"`` (GroupNorm, ``groups`` or :func:`group_count` groups),
            ``"ln"`` (layer norm over all non-batch dimensions with a per-channel affine: ``GroupNorm(1, C)``
            for feature maps, ``nn.LayerNorm(C)`` for vectors) or ``"none"`` (``nn.Identity``).
        channels: number of channels (feature maps) or features (vectors).
        dim: 2 for ``(N, C, H, W)`` feature maps, 1 for ``(N, C)`` vectors.
        groups: GroupNorm group count (must divide ``channels``); default :func:`group_count`.

    Returns:
        The normalization module, with the default affine init (weight 1, bias 0).
    """
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}; got {kind!r}")
    if dim not in (1, 2):
        raise ValueError(f"dim must be 1 (vectors) or 2 (feature maps); got {dim!r}")
    if kind == "bn":
        return nn.BatchNorm2d(channels) if dim == 2 else nn.BatchNorm1d(channels)
    if kind == "gn":
        g = group_count(channels) if groups is None else groups
        return nn.GroupNorm(g, channels)
    if kind == "ln":
        return nn.GroupNorm(1, channels) if dim == 2 else nn.LayerNorm(channels)
    return nn.Identity()
