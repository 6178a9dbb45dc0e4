"""What the AZ-NAS components share: the model's feature sequence, found once, and its statistics.

AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search", CVPR 2024;
reference code cvlab-yonsei/AZ-NAS, ``compute_az_nas_score.py``) scores the sequence of feature maps
``f_0, f_1, ..., f_{L-1}`` a network produces at the ends of its stem and of each of its blocks
(NAS-Bench-201: the stem and the 17 cells; MobileNetV2: the blocks). Its reference reads them from a
hand-written ``extract_cell_features`` per search space; here one rule finds them in any model.

The feature rule (:func:`_units`, :func:`_features`):

1. **Units.** The root's children, with every plain container (``nn.Sequential``, ``nn.ModuleList``,
   ``nn.ModuleDict``, exact types, not subclasses) replaced by its own children, recursively. A unit with
   children of its own (``BasicBlock``, an NB201 ``Cell``, torchvision's ``Conv2dNormActivation``) is a
   *block*; a unit without children is a *layer*. When that leaves a single block (a wrapper around the
   real network), its children are taken instead, until there are several units.
2. **Features**, in the order the units run (forward hooks, so the execution order counts, not the
   registration order): every block's output is a feature. Layers are grouped into *runs*: a run starts at
   a weight layer (``nn.Linear`` or a convolution, :data:`LAYER_TYPES`) and takes in the layers without
   weights that follow (normalization, activation, pooling, flatten) up to the next weight layer or block;
   the run's feature is its last layer's output. Layers without weights outside a run (a ``Flatten`` before
   the first ``Linear``, the pooling after the last block) give no feature.
3. **Head.** The run whose output is the model's output (the classifier) is not a feature; features with
   fewer than 2 dimensions (no channel axis) are dropped.

On our spaces this gives: ``nb201`` the stem (conv + BN) and the 17 cells (exactly the reference's features);
``resnet_cifar`` the stem (conv, norm, act) and every ``BasicBlock``; ``vgg`` every conv-norm-act(-pool)
group; ``mlp_looks_linear`` every Linear-(norm)-activation group; torchvision ``resnet18`` the stem
(conv1 ... maxpool) and its 8 ``BasicBlock``s. Channels are dimension 1; every other dimension but the
batch indexes positions.

Each hooked unit passes a copy of its output on, so a later in-place operation (an ``inplace=True`` ReLU at
the start of the next block) cannot change a collected feature. Parameters are detached and buffers cloned
(:class:`._harness._Functional`); the model runs in train mode, as the reference's ``model.train()``, and
every module's own flag is restored on exit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..core.hooks import hooked, restored_training
from ._harness import LAYER_TYPES, _Functional

#: Citation shared by the three AZ-NAS components.
AZ_NAS = (
    "Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search, CVPR 2024 "
    "(cvlab-yonsei/AZ-NAS)"
)
#: The reference's guard in ``1 / (sigma + eps)`` of the trainability score.
TRAINABILITY_EPS = 1e-6
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _is_block(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def _expand(module: nn.Module) -> list[nn.Module]:
    out: list[nn.Module] = []
    for child in module.children():
        out += _expand(child) if type(child) in _CONTAINERS else [child]
    return out


def _units(model: nn.Module) -> list[nn.Module]:
    """The units of ``model`` (rule 1 of the module docstring), in registration order."""
    units = _expand(model)
    while len(units) == 1 and _is_block(units[0]):
        units = _expand(units[0])
    return list({id(u): u for u in units}.values())  # a module shared by two containers is hooked once


class _Feature(NamedTuple):
    """A collected feature: the tensor the unit produced, the copy passed on, and whether it ends a run."""

    tensor: Tensor
    passed: Tensor
    run: bool


class _FeatureHooks:
    """The hooks of rules 2-3 of the module docstring: ``pairs`` to register, ``features(output)`` after the
    pass (the output of the model, to leave out the head)."""

    def __init__(self, units: list[nn.Module]) -> None:
        self.units = units
        self.collected: list[_Feature] = []
        self.open_run = False

    def pairs(self):
        return ((u, self.hook) for u in self.units)

    def hook(self, module: nn.Module, args: tuple, out: object) -> Tensor | None:
        if not isinstance(out, Tensor):
            return None
        passed = out.clone()
        if _is_block(module):
            self.collected.append(_Feature(out, passed, run=False))
            self.open_run = False
        elif isinstance(module, LAYER_TYPES):
            self.collected.append(_Feature(out, passed, run=True))
            self.open_run = True
        elif self.open_run:  # a layer without weights extends the current run
            self.collected[-1] = _Feature(out, passed, run=True)
        return passed

    def features(self, output: Tensor) -> list[Tensor]:
        return [f.tensor for f in self.collected if not (f.run and f.passed is output) and f.tensor.dim() >= 2]


def _inputs_problem(inputs: Tensor) -> str | None:
    """Why AZ-NAS cannot score ``inputs`` (None: it can)."""
    if not inputs.is_floating_point():
        return f"AZ-NAS needs floating inputs, got {inputs.dtype}"
    if not bool(torch.isfinite(inputs).all()):
        return "inputs contain NaN or inf values"
    return None


def _features(model: nn.Module, inputs: Tensor, *, graph: bool) -> list[Tensor]:
    """The feature sequence of ``model`` on ``inputs`` (rules 2-3 of the module docstring), in train mode.

    Args:
        model: the network (not modified).
        inputs: a batch of floating inputs.
        graph: keep the autograd graph between the features (the inputs become a leaf requiring grad);
            otherwise the forward pass runs without gradients.

    Raises:
        ValueError: non-finite or non-floating inputs, or a model without units.
    """
    problem = _inputs_problem(inputs)
    if problem:
        raise ValueError(problem)
    units = _units(model)
    if not units:
        raise ValueError("the model has no submodules: AZ-NAS needs a sequence of layers or blocks")
    hooks = _FeatureHooks(units)
    x = inputs.detach()
    with restored_training(model), torch.set_grad_enabled(graph), hooked(hooks.pairs()):
        model.train()
        if graph:
            x = x.clone().requires_grad_(True)
        output = _Functional(model)(x)
    return hooks.features(output)


def _rows(t: Tensor) -> Tensor:
    """``(N, C, *S)`` -> ``(N * prod(S), C)``: one row per example and position, channels as columns."""
    return t.movedim(1, -1).reshape(-1, t.shape[1])


def spectral_entropy(feature: Tensor) -> float:
    """Expressivity of one feature map: the entropy of its normalized covariance spectrum.

    ``X``: the feature as rows (example, position) x channels, centered per channel; ``Σ = X^T X / P``
    (``P`` rows); ``p = λ(Σ) / Σ_k λ_k``; ``H = -Σ_k p_k log p_k`` in ``[0, log C]`` (``log C``: an
    isotropic feature, ``0``: rank one). Computed in float64; eigenvalues below 0 (rounding of a PSD
    matrix) count as 0 and ``0 log 0 = 0`` (the reference's ``-p log(p + 1e-8)`` in float32 returns NaN when
    a rounding-negative ``p`` is below ``-1e-8``).

    Returns:
        ``H``, or ``-inf`` for a constant feature (zero total variance: the reference's NaN, mapped to -inf).
    """
    x = _rows(feature.detach()).double()
    x = x - x.mean(dim=0, keepdim=True)
    eig = torch.linalg.eigvalsh(x.T @ x / x.shape[0]).clamp_min(0.0)
    total = eig.sum()
    if not bool(total > 0):
        return -math.inf
    p = eig / total
    return float(-torch.special.xlogy(p, p).sum())


def stage_entropies(model: nn.Module, inputs: Tensor, probe: Any = None) -> list[float]:
    """:func:`spectral_entropy` of every feature of :func:`_features` (one forward pass, no gradients); with a
    probe of this batch, computed once for the metrics of one :func:`objectives.score` call and read from the
    pass they share (:mod:`._passes`)."""
    from ._passes import shared_passes

    passes = shared_passes(probe, model, inputs)
    if passes is None:
        return [spectral_entropy(f) for f in _features(model, inputs, graph=False)]
    return passes.stage_entropies()


def _space_to_depth(t: Tensor, factors: list[int]) -> Tensor:
    """Fold each spatial dimension's ``factor`` neighbours into channels (``pixel_unshuffle`` for 2-D, any
    number of spatial dimensions); sizes not divisible by their factor are cropped to a multiple."""
    n, c, *sizes = t.shape
    target = [s // f for s, f in zip(sizes, factors)]
    t = t[(slice(None), slice(None), *(slice(0, size * f) for size, f in zip(target, factors)))]
    shape = [n, c]
    for size, f in zip(target, factors):
        shape += [size, f]
    k = len(sizes)
    order = [0, 1, *(3 + 2 * d for d in range(k)), *(2 + 2 * d for d in range(k))]
    return t.reshape(shape).permute(order).reshape(n, c * math.prod(factors), *target)


def paired_rows(g_in: Tensor, g_out: Tensor) -> tuple[Tensor, Tensor]:
    """The two gradients as row matrices with one row per (example, position) of ``g_out``.

    Same spatial sizes: channels per position. Smaller output maps (a stride): each ``s x s`` patch of
    ``g_in`` is folded into channels (the reference's ``PixelUnshuffle(stride)``); larger output maps: the
    output is folded instead. Different numbers of dimensions (e.g. a flatten): one row per example.
    """
    if g_in.dim() != g_out.dim() or g_in.dim() <= 2:
        return g_in.reshape(g_in.shape[0], -1), g_out.reshape(g_out.shape[0], -1)
    s_in, s_out = g_in.shape[2:], g_out.shape[2:]
    if s_in != s_out:
        f_in = [max(a // b, 1) if a >= b else 1 for a, b in zip(s_in, s_out)]
        f_out = [max(b // a, 1) if b > a else 1 for a, b in zip(s_in, s_out)]
        g_in, g_out = _space_to_depth(g_in, f_in), _space_to_depth(g_out, f_out)
        if g_in.shape[2:] != g_out.shape[2:]:  # a ratio that is not an integer on some axis
            return g_in.reshape(g_in.shape[0], -1), g_out.reshape(g_out.shape[0], -1)
    return _rows(g_in), _rows(g_out)


def jacobian_score(g_in: Tensor, g_out: Tensor) -> float:
    """Trainability of one block from ``g_in = J^T g_out`` for a Rademacher ``g_out``.

    ``M = G_in^T G_out / P`` (:func:`paired_rows`, ``P`` rows) estimates the block's per-position Jacobian
    (``E[g g^T] = I``); with ``σ`` its largest singular value, the score is ``2 - σ - 1 / (σ + 1e-6)``:
    at most ~0, reached at ``σ = 1``. A block whose backward pass returns ``g_out`` unchanged (an identity,
    e.g. a cell that is a single skip connection) scores ``-inf``, as in the reference.
    """
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    rows_in, rows_out = paired_rows(g_in.detach().double(), g_out.detach().double())
    sigma = float(torch.linalg.svdvals(rows_in.T @ rows_out / rows_out.shape[0]).max())
    return 2.0 - sigma - 1.0 / (sigma + TRAINABILITY_EPS)


def rademacher(shape: torch.Size, gen: torch.Generator, like: Tensor) -> Tensor:
    """Independent ±1 entries drawn on the CPU from ``gen`` (the same on every device), as ``like``."""
    signs = torch.randint(0, 2, tuple(shape), generator=gen).to(device=like.device, dtype=like.dtype)
    return signs * 2 - 1


def block_scores(
    model: nn.Module,
    inputs: Tensor,
    seed: int,
    score: Callable[[Tensor, Tensor], float] = jacobian_score,
) -> list[float]:
    """``score(g_in, g_out)`` of every consecutive pair ``(f_{i-1}, f_i)`` of :func:`_features`.

    The pairs are visited from the last to the first (the reference's order); for each, a Rademacher
    ``g_out`` of ``f_i``'s shape is drawn from ``torch.Generator().manual_seed(seed)`` and
    ``g_in = (df_i / df_{i-1})^T g_out`` is one vector-Jacobian product (zero when ``f_i`` does not depend on
    ``f_{i-1}``). Runs with gradients even inside a caller's ``torch.no_grad()``.

    Returns:
        One score per pair, in pair order ``(f_0, f_1), (f_1, f_2), ...``.

    Raises:
        ValueError: fewer than 2 features.
    """
    with torch.enable_grad():
        feats = _features(model, inputs, graph=True)
        if len(feats) < 2:
            raise ValueError(
                f"AZ-NAS trainability needs at least 2 features (blocks); the model has {len(feats)}")
        gen = torch.Generator().manual_seed(seed)
        scores: list[float] = [0.0] * (len(feats) - 1)
        for i in reversed(range(1, len(feats))):
            f_in, f_out = feats[i - 1], feats[i]
            g_out = rademacher(f_out.shape, gen, f_out)
            g_in = None
            if f_out.requires_grad and f_in.requires_grad:
                (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
            if g_in is None:
                g_in = torch.zeros_like(f_in)
            scores[i - 1] = score(g_in, g_out)
    return scores
