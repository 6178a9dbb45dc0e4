"""Peer zero-cost proxies: grad_norm, snip, grasp, fisher, synflow, jacob_cov, naswot, zico, params, flops.

The definitions follow the reference implementations the NAS literature reports numbers for:
SamsungLabs/zero-cost-nas (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021) for
grad_norm, snip, grasp, fisher, synflow and jacob_cov; Mellor et al., "Neural Architecture Search without
Training" (ICML 2021) for naswot; Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients" (ICLR 2023) for zico. Every function has the registry signature
``(model, inputs, targets, loss_fn=F.cross_entropy, *, <options>) -> float`` and larger is better for all of
them (``direction="maximize"``), as in the papers' correlation tables.

How the caller's model is left untouched (unlike the references, which patch ``forward`` and mutate the net):

* every forward pass goes through :func:`torch.func.functional_call` with detached parameters and *cloned*
  buffers, so BatchNorm running statistics (and ``num_batches_tracked``) are updated on the clones only;
* gradients are taken with :func:`torch.autograd.grad` with respect to fresh leaves, so no parameter's
  ``.grad`` and no ``requires_grad`` flag is touched;
* activations are observed through forward hooks whose handles are removed in ``finally``;
* only :func:`synflow` changes train/eval mode (it evaluates in eval mode); it restores every module's flag.

The model is evaluated in the train/eval mode it is given (the references score freshly built nets, i.e.
train mode: BatchNorm normalizes with batch statistics). "Layers" are the modules the references prune:
``nn.Linear`` and convolutions (``nn.Conv1d/2d/3d`` and transposed; the references list only ``nn.Conv2d``
and ``nn.Linear``), each weight counted once even when shared.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from .core.hooks import eval_mode, hooked
from .registry import register_metric

__all__ = [
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "synflow",
    "jacob_cov",
    "naswot",
    "zico",
    "params",
    "flops",
]

_LOG = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Modules whose weights the proxies score (the references: ``nn.Conv2d`` and ``nn.Linear``).
LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)
#: The additive constant of the jacob_cov score (the reference's ``k``).
JACOB_COV_K = 1e-5

_ABDELFATTAH = (
    "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (SamsungLabs/zero-cost-nas)"
)


# --------------------------------------------------------------------------------------------------
# Helpers: functional evaluation on detached parameters and cloned buffers
# --------------------------------------------------------------------------------------------------


def _layers(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(module name, module, weight parameter name)`` of every Linear/conv layer, each weight once."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen: set[int] = set()
    out = []
    skipped = []
    for mname, module in model.named_modules():
        if not isinstance(module, LAYER_TYPES):
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(weight, Tensor):
            continue
        if id(weight) not in names:  # e.g. a parametrization computes the weight: nothing to differentiate
            skipped.append(mname)
            continue
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        out.append((mname, module, names[id(weight)]))
    if skipped:
        _LOG.warning("zero-cost proxies skip layers whose weight is not a registered parameter: %s", skipped)
    return out


class _Functional:
    """Evaluates ``model`` on its own detached parameters and cloned buffers.

    Args:
        model: the caller's model (never written to).
        wrt: parameter names to differentiate: they become fresh leaves with ``requires_grad=True``.
        transform: applied to every floating parameter and buffer (synflow: ``abs``, float64).
    """

    def __init__(
        self,
        model: nn.Module,
        wrt: Sequence[str] = (),
        transform: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.model = model
        tensors: dict[str, Tensor] = {}
        for name, p in model.named_parameters():
            t = p.detach()
            if transform is not None and t.is_floating_point():
                t = transform(t)
            tensors[name] = t
        for name, b in model.named_buffers():
            t = b.detach().clone()
            if transform is not None and t.is_floating_point():
                t = transform(t)
            tensors[name] = t
        # detach() made new tensor objects: flagging them leaves the caller's parameters as they are
        self.leaves = [tensors[n].requires_grad_(True) for n in wrt]
        tensors.update(zip(wrt, self.leaves))
        self.tensors = tensors

    def __call__(self, x: Tensor) -> Tensor:
        out = functional_call(self.model, self.tensors, (x,))
        if not isinstance(out, Tensor):
            raise TypeError(f"zero-cost proxies need a model returning a Tensor, got {type(out).__name__}")
        return out


def _weight_grads(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
    layers: list[tuple[str, nn.Module, str]],
    *,
    create_graph: bool = False,
) -> tuple[list[Tensor], list[Tensor]]:
    """(weights, dL/dweights) of ``layers`` for one forward pass; unused weights get zero gradients."""
    fn = _Functional(model, [w for _, _, w in layers])
    loss = loss_fn(fn(inputs), targets)
    grads = torch.autograd.grad(loss, fn.leaves, create_graph=create_graph, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(fn.leaves, grads)]
    return fn.leaves, grads


def _require_layers(layers: list, metric: str) -> None:
    if not layers:
        raise ValueError(f"{metric} scores Linear/conv weights and the model has none")


# --------------------------------------------------------------------------------------------------
# Gradient-based proxies (Abdelfattah et al., ICLR 2021)
# --------------------------------------------------------------------------------------------------


@register_metric(
    "grad_norm",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation=_ABDELFATTAH,
)
def grad_norm(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Sum over layers of the Frobenius norm of the loss gradient of each layer's weight.

    ``grad_norm = sum_l || dL/dW_l ||_F`` over Linear/conv weights ``W_l``, with ``L = loss_fn(model(x), t)``
    on the whole batch, as ``grad_norm`` in Abdelfattah et al. (ICLR 2021).

    Direction: maximize. Cost: one forward and one backward pass on the batch (not per example).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.

    Returns:
        The summed per-layer gradient norms.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = grad_norm(model, x, y)
    """
    layers = _layers(model)
    _require_layers(layers, "grad_norm")
    with torch.enable_grad():
        _, grads = _weight_grads(model, inputs, targets, loss_fn, layers)
    return float(sum(g.detach().double().norm() for g in grads))


@register_metric(
    "snip",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation=f"Lee et al., SNIP, ICLR 2019; {_ABDELFATTAH}",
)
def snip(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Connection sensitivity: ``sum |W ⊙ dL/dW|`` over all Linear/conv weights.

    The reference multiplies each weight by a mask of ones and takes ``|dL/dmask|``; since
    ``dL/dmask = W ⊙ dL/dW`` at mask = 1, this is computed directly from the weight gradient (Lee et al.,
    "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019; summed over weights as in
    Abdelfattah et al., ICLR 2021).

    Direction: maximize. Cost: one forward and one backward pass on the batch.

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.

    Returns:
        The summed saliencies.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = snip(model, x, y)
    """
    layers = _layers(model)
    _require_layers(layers, "snip")
    with torch.enable_grad():
        weights, grads = _weight_grads(model, inputs, targets, loss_fn, layers)
    return float(sum((w.detach().double() * g.double()).abs().sum() for w, g in zip(weights, grads)))


@register_metric(
    "grasp",
    direction="maximize",
    needs=("data", "labels"),
    cost="moderate",
    citation=f"Wang et al., GraSP, ICLR 2020; sign as in {_ABDELFATTAH}",
)
def grasp(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Gradient signal preservation: ``sum -θ ⊙ (H g)`` over all Linear/conv weights θ.

    ``g = dL/dθ`` (treated as a constant) and ``H g = d(g · dL/dθ)/dθ`` is the Hessian-gradient product,
    obtained by double backward (Wang et al., "Picking Winning Tickets Before Training by Preserving Gradient
    Flow", ICLR 2020). Sign convention of the zero-cost-nas reference: GraSP prunes the weights with the
    *smallest* ``θ ⊙ Hg``; Abdelfattah et al. negate it so that larger means "keep" and found the negated
    sum to correlate positively with accuracy, hence ``-θ ⊙ Hg`` and direction maximize. Temperature 1.

    .. note::
        The reference runs two forward passes (one for ``g``, one for the double backward); this uses one
        forward pass for both, which gives the same value for any deterministic network (it differs only
        under dropout in train mode).

    Direction: maximize. Cost: one forward pass, one backward with ``create_graph`` and one double backward
    (about 3 training steps).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``; must be twice differentiable.

    Returns:
        ``-sum θ ⊙ Hg``.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = grasp(model, x, y)
    """
    layers = _layers(model)
    _require_layers(layers, "grasp")
    with torch.enable_grad():
        weights, grads = _weight_grads(model, inputs, targets, loss_fn, layers, create_graph=True)
        z = sum((g.detach() * g).sum() for g in grads if g.requires_grad)  # g . dL/dθ, first g constant
        if not isinstance(z, Tensor):  # no weight influences the loss: Hg = 0
            return 0.0
        hg = torch.autograd.grad(z, weights, allow_unused=True)
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for w, h in zip(weights, hg):
        if h is not None:
            total = total - (w.detach().double() * h.double()).sum()
    return float(total)


def _fan_in(module: nn.Module) -> int:
    """Number of weights per output channel (the reference broadcasts each channel's value over them)."""
    w = module.weight
    return w[0].numel() if not isinstance(module, nn.modules.conv._ConvTransposeNd) else w[:, 0].numel()


@register_metric(
    "fisher",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation=f"Theis et al. 2018, Turner et al. (BlockSwap) ICLR 2020; {_ABDELFATTAH}",
)
def fisher(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Channel-wise Fisher information of the layer outputs, summed as in the zero-cost-nas reference.

    For each call of a Linear/conv layer with output activation ``a`` (examples ``n``, channels ``k``,
    positions ``s``) and its loss gradient ``ga = dL/da``::

        Δ_k = 0.5 * mean_n ( sum_s a[n,k,s] * ga[n,k,s] )^2

    and ``fisher = sum_layers fan_in * sum_k Δ_k``, where ``fan_in`` (weights per output channel) comes from
    the reference broadcasting each channel's value to every weight of that channel before summing all
    weights (Theis et al. 2018, "Faster gaze prediction with dense networks and Fisher pruning"; Turner et
    al., "BlockSwap", ICLR 2020; Abdelfattah et al., ICLR 2021). The activation is the layer's output before
    any normalization, captured by a forward hook (the reference swaps ``forward`` for this). A layer called
    several times contributes once per call (the reference accumulates per backward call as well). The
    channel axis is dim 1 for convolutions and the last dim for Linear (identical to the reference for 2-D
    Linear outputs; the reference would sum over channels for 3-D Linear outputs).

    Direction: maximize. Cost: one forward and one backward pass on the batch, plus one copy of every
    layer output (so that in-place ops downstream cannot alter the recorded activation).

    Args:
        model: the network (not modified).
        inputs: a batch of inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``.

    Returns:
        The summed, fan-in weighted channel Fisher information.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = fisher(model, x, y)
    """
    layers = _layers(model)
    _require_layers(layers, "fisher")
    records: list[tuple[nn.Module, Tensor]] = []

    def hook(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        records.append((module, out))
        return out.clone()  # downstream in-place ops (e.g. ReLU(inplace=True)) act on the copy

    with torch.enable_grad(), hooked((m, hook) for _, m, _ in layers):
        fn = _Functional(model, [w for _, _, w in layers])
        loss = loss_fn(fn(inputs), targets)
    records = [(m, out) for m, out in records if out.requires_grad]
    acts = [out for _, out in records]
    act_grads = torch.autograd.grad(loss, acts, allow_unused=True) if acts else ()
    total = torch.zeros((), dtype=torch.float64, device=inputs.device)
    for (module, act), ga in zip(records, act_grads):
        if ga is None:
            continue
        prod = act.detach().double() * ga.double()
        if isinstance(module, nn.Linear):
            g_nk = prod.sum(dim=tuple(range(1, prod.dim() - 1))) if prod.dim() > 2 else prod
        else:
            g_nk = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
        delta = 0.5 * g_nk.pow(2).mean(0)
        total = total + _fan_in(module) * delta.sum()
    return float(total)


# --------------------------------------------------------------------------------------------------
# Data-free: synflow
# --------------------------------------------------------------------------------------------------


@register_metric(
    "synflow",
    direction="maximize",
    needs=(),
    cost="cheap",
    citation=f"Tanaka et al., SynFlow, NeurIPS 2020; {_ABDELFATTAH}",
)
def synflow(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Log of the synaptic flow ``sum |θ ⊙ dR/dθ|`` of the linearized network (data-free).

    Every floating parameter and buffer is replaced by its absolute value in float64; the network is fed a
    single all-ones input of the inputs' per-example shape, ``R = sum(model(1))``, and the score is
    ``log sum_W |W ⊙ dR/dW|`` over Linear/conv weights (Tanaka et al., "Pruning neural networks without any
    data by iteratively conserving synaptic flow", NeurIPS 2020; ``synflow`` in Abdelfattah et al., ICLR 2021,
    which reports the sum itself).

    BatchNorm is disabled as in the reference's ``synflow`` (``bn=False``): the output of every
    ``nn.modules.batchnorm._BatchNorm`` module is replaced by its input through a forward hook (an exact
    identity; the affine parameters are ignored too), and the model is evaluated in eval mode (dropout
    off; the previous mode of every module is restored). ``inputs`` only supply the shape and device;
    ``targets`` and ``loss_fn`` are ignored.

    The logarithm is reported because the sum grows exponentially with depth (and can overflow float32).
    A network with no path from input to output has sum 0: the score is then ``float("-inf")`` (logged as a
    warning), which ranks last under ``maximize``. A float64 overflow gives ``float("inf")`` (also logged).

    Direction: maximize. Cost: one forward and one backward pass on one example in float64.

    Args:
        model: the network (not modified).
        inputs: a batch; only ``inputs.shape[1:]`` and ``inputs.device`` are used.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        ``log(sum |θ ⊙ dR/dθ|)``; ``-inf`` when the sum is 0.

    Raises:
        ValueError: the model has no Linear/conv layer.

    Example::

        score = synflow(model, torch.empty(1, 3, 32, 32), None)  # only the shape is used
    """
    del targets, loss_fn
    layers = _layers(model)
    _require_layers(layers, "synflow")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def bypass(module: nn.Module, args: tuple, out: Tensor) -> Tensor:
        return args[0]

    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    with torch.enable_grad(), eval_mode(model), hooked((m, bypass) for m in bns):
        fn = _Functional(model, [w for _, _, w in layers], transform=lambda t: t.abs().double())
        r = fn(ones).sum()
        grads = torch.autograd.grad(r, fn.leaves, allow_unused=True)
    total = sum(float((w.detach() * g).abs().sum()) for w, g in zip(fn.leaves, grads) if g is not None)
    if total == 0.0:
        _LOG.warning("synflow: the synaptic flow is 0 (no path from input to output); returning -inf")
        return float("-inf")
    if math.isinf(total):
        _LOG.warning("synflow: the synaptic flow overflows float64; returning inf")
        return float("inf")
    return math.log(total)


# --------------------------------------------------------------------------------------------------
# Input-Jacobian and activation-code proxies
# --------------------------------------------------------------------------------------------------


@register_metric(
    "jacob_cov",
    direction="maximize",
    needs=("data",),
    cost="cheap",
    citation=f"Mellor et al., NAS without Training, arXiv:2006.04647v1 (2020); {_ABDELFATTAH}",
)
def jacob_cov(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Jacobian covariance: ``-sum_i [log(v_i + k) + 1/(v_i + k)]`` over the eigenvalues ``v_i`` of corr(J).

    ``J`` has one row per example: the gradient of ``sum(model(x))`` (all outputs of the whole batch) with
    respect to that example's input, flattened; corr(J) is its ``B x B`` Pearson correlation matrix and
    ``k = 1e-5`` (Mellor et al., "Neural Architecture Search without Training", arXiv v1, 2020; ``jacob_cov``
    in Abdelfattah et al., ICLR 2021). Uncorrelated Jacobians (corr = I) give the maximum.
    In train mode, BatchNorm couples the examples, and the row of example ``i`` includes the effect of
    ``x_i`` on the other examples' outputs, as in the reference.

    The eigenvalues come from ``numpy.linalg.eigvalsh`` in float64 (the reference uses ``eig``; the matrix is
    symmetric, so the values agree up to rounding and are never complex). When an example's Jacobian is
    constant (zero variance, e.g. the output does not depend on the input) the correlation is undefined and
    the score is ``float("nan")`` (logged as a warning), as the reference's ``np.nan``.

    Direction: maximize. Cost: one forward and one backward pass to the inputs.

    Args:
        model: the network (not modified).
        inputs: a batch of at least 2 inputs.
        targets: ignored (the score uses no labels).
        loss_fn: ignored.

    Returns:
        The score, or ``nan`` when the correlation matrix is undefined.

    Raises:
        ValueError: fewer than 2 examples.

    Example::

        score = jacob_cov(model, x, y)
    """
    del targets, loss_fn
    if inputs.shape[0] < 2:
        raise ValueError("jacob_cov needs at least 2 examples")
    with torch.enable_grad():
        fn = _Functional(model)
        x = inputs.detach().clone().requires_grad_(True)
        total = fn(x).sum()
        (jac,) = torch.autograd.grad(total, x, allow_unused=True) if total.requires_grad else (None,)
    if jac is None:  # the output does not depend on the input
        jac = torch.zeros_like(x)
    j = jac.detach().reshape(jac.shape[0], -1).double().cpu().numpy()
    if np.any(j.std(axis=1) == 0):
        _LOG.warning("jacob_cov: an input Jacobian is constant, the correlation is undefined; returning nan")
        return float("nan")
    corr = np.corrcoef(j)
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + JACOB_COV_K) + 1.0 / (v + JACOB_COV_K)))


def _relu_modules(model: nn.Module) -> list[nn.Module]:
    """Leaf modules whose class name contains "ReLU" (nn.ReLU, LeakyReLU, ReLU6, the project's CReLU, ...).

    Only leaves (modules without children) count: a container such as NAS-Bench-201's ``ReLUConvBN``
    receives the same input as the ``nn.ReLU`` inside it, and matching it by name would count those units
    twice.
    """
    return [m for m in model.modules() if "ReLU" in type(m).__name__ and next(m.children(), None) is None]


#: The value of :func:`naswot` when the kernel is singular (det K_H = 0).
NASWOT_SINGULAR = float("-inf")
_HALF_LOG = math.log(0.5)
#: Integers up to 2**24 are exact in float32 (sums of 0/1 products stay exact below it).
_FLOAT32_EXACT = 2**24


@register_metric(
    "naswot",
    direction="maximize",
    needs=("data",),
    cost="cheap",
    citation="Mellor et al., Neural Architecture Search without Training, ICML 2021",
)
def naswot(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    random_inputs: bool = False,
    seed: int = 0,
) -> float:
    """NASWOT: ``log |det K_H|`` of the Hamming-similarity kernel of the binary ReLU codes.

    Every activation module — a leaf module whose class name contains "ReLU", so ``nn.ReLU`` and the
    project's ``CReLU`` — records the binary code ``c = 1[input > 0]`` of each example (flattened over
    units), each unit once; over all such modules,
    ``K_H = sum c c^T + (1 - c)(1 - c)^T``, i.e. ``K_H[i, j]`` = number of units on which examples ``i``
    and ``j`` agree (Mellor et al., "Neural Architecture Search without Training", ICML 2021, eq. 2). The
    codes are read from the ReLU's input, as in the reference ``counting_forward_hook``. The forward pass
    runs without gradients; ``K_H`` is accumulated and factorized (``torch.linalg.slogdet``) in float64.

    ``random_inputs=True`` scores Gaussian inputs of the same shape instead of the data (drawn on the CPU
    from ``seed``, so the same on every device): the data-free variant reported by later papers.

    Singular kernel: ``K_H`` is positive semi-definite with integer entries, so its determinant is an
    integer >= 0, and >= 1 when ``K_H`` is nonsingular (the score of a nonsingular kernel is >= 0). When it
    is 0 (e.g. two inputs with the same codes, such as identical inputs, give two identical rows) the score
    is ``float("-inf")`` (:data:`NASWOT_SINGULAR`, logged as a warning): such a network cannot tell those
    inputs apart and ranks last. A computed determinant below 1/2 (any sign) is rounding noise around 0 and
    is reported the same way; the reference returns whatever ``np.linalg.slogdet`` gives there (e.g. -21.6
    or -inf for two equal rows, depending on rounding).

    Direction: maximize. Cost: one forward pass, no backward.

    Args:
        model: the network (not modified).
        inputs: a batch of inputs (with ``random_inputs``, only their shape, dtype and device are used).
        targets: ignored.
        loss_fn: ignored.
        random_inputs: score standard-normal inputs of the same shape instead of ``inputs``.
        seed: seed of the random inputs.

    Returns:
        ``log det K_H``, or ``-inf`` when ``K_H`` is singular.

    Raises:
        ValueError: the model has no module whose class name contains "ReLU" (the kernel would be 0).

    Example::

        score = naswot(model, x, y, random_inputs=True, seed=0)  # the data-free variant
    """
    del targets, loss_fn
    relus = _relu_modules(model)
    if not relus:
        raise ValueError("naswot needs ReLU modules (class name containing 'ReLU'); the model has none")
    x = inputs.detach()
    if random_inputs:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
        nonlocal kernel
        codes = args[0].detach().reshape(n, -1) > 0
        units = codes.shape[1]
        # c c^T + (1 - c)(1 - c)^T = 2 c c^T - s 1^T - 1 s^T + units, s = c 1 (active units per example):
        # one matmul. Its entries are integers <= units, exact in float32 below 2^24 (float64 beyond).
        c = codes.to(torch.float32 if units < _FLOAT32_EXACT else torch.float64)
        active = c.sum(dim=1, dtype=torch.float64)
        with torch.autocast(c.device.type, enabled=False):  # a caller's autocast would round the counts
            gram = (c @ c.T).double()
        kernel = kernel + 2.0 * gram - active[:, None] - active[None, :] + float(units)

    with torch.no_grad(), hooked((m, hook) for m in relus):
        _Functional(model)(x)
    sign, logdet = torch.linalg.slogdet(kernel)
    # K_H has integer entries, so a nonsingular K_H has det >= 1: anything below 1/2 is rounding around 0
    if sign <= 0 or not bool(logdet >= _HALF_LOG):
        _LOG.warning("naswot: the activation kernel is singular; returning %s", NASWOT_SINGULAR)
        return NASWOT_SINGULAR
    return float(logdet)


# --------------------------------------------------------------------------------------------------
# ZiCo
# --------------------------------------------------------------------------------------------------


@register_metric(
    "zico",
    direction="maximize",
    needs=("data", "labels"),
    cost="cheap",
    citation="Li et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients, ICLR 2023",
)
def zico(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
    *,
    num_batches: int = 2,
) -> float:
    """ZiCo: ``sum_l log( sum_θ∈W_l mean_b|G_b(θ)| / std_b(G_b(θ)) )`` over Linear/conv weights ``W_l``.

    The batch is split into ``num_batches`` consecutive chunks (``torch.tensor_split``); ``G_b`` is the loss
    gradient of chunk ``b`` alone (a fresh gradient per chunk, i.e. zero-grad in between); mean and
    population standard deviation (``ddof=0``, as ``np.std``) are taken over the chunks, per weight
    (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", ICLR 2023,
    reference ``ZeroShotProxy/compute_zico.py``). Statistics in float64.

    Zero standard deviation, as in the reference: weights whose gradient is identical in every chunk
    (typically 0, e.g. behind a dead path) are left out of their layer's sum, and a layer where that leaves
    nothing (sum 0) is skipped. Unlike the reference, skipping is not silent: the skipped layers are logged
    (warning), and if *every* layer is skipped the score is ``float("-inf")`` (no gradient signal at all;
    the reference would return 0, which can rank above networks with signal).

    Direction: maximize. Cost: ``num_batches`` forward/backward passes over chunks that together make up
    the batch (about one training step).

    Args:
        model: the network (not modified).
        inputs: a batch of at least ``num_batches`` inputs.
        targets: their labels.
        loss_fn: ``loss_fn(outputs, targets) -> scalar``, applied to each chunk.
        num_batches: number of chunks (>= 2; the paper uses 2 batches).

    Returns:
        The ZiCo score, or ``-inf`` when every layer is skipped.

    Raises:
        ValueError: ``num_batches < 2``, fewer examples than chunks, or no Linear/conv layer.

    Example::

        score = zico(model, x, y, num_batches=2)
    """
    if num_batches < 2:
        raise ValueError(f"zico needs num_batches >= 2, got {num_batches}")
    if inputs.shape[0] < num_batches:
        raise ValueError(f"zico needs at least num_batches={num_batches} examples, got {inputs.shape[0]}")
    layers = _layers(model)
    _require_layers(layers, "zico")
    per_layer: list[list[Tensor]] = [[] for _ in layers]
    with torch.enable_grad():
        for xb, tb in zip(inputs.tensor_split(num_batches), targets.tensor_split(num_batches)):
            _, grads = _weight_grads(model, xb, tb, loss_fn, layers)
            for acc, g in zip(per_layer, grads):
                acc.append(g.detach().double().reshape(-1))
    score = 0.0
    skipped = []
    for (name, _, _), gs in zip(layers, per_layer):
        g = torch.stack(gs)
        std = g.std(dim=0, correction=0)
        keep = std > 0
        ratio_sum = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if ratio_sum == 0.0:
            skipped.append(name)
            continue
        score += math.log(ratio_sum)
    if skipped:
        _LOG.warning(
            "zico: skipped %d of %d layers with zero gradient std: %s", len(skipped), len(layers), skipped
        )
    if len(skipped) == len(layers):
        return float("-inf")
    return score


# --------------------------------------------------------------------------------------------------
# Size proxies
# --------------------------------------------------------------------------------------------------


@register_metric(
    "params",
    direction="maximize",
    needs=(),
    cost="free",
    phases=("init",),
    citation=f"#params baseline of {_ABDELFATTAH}",
)
def params(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Number of trainable parameters, ``sum numel(θ)`` over parameters with ``requires_grad``.

    Shared parameters count once. The baseline every zero-cost paper compares with (Abdelfattah et al.,
    ICLR 2021): larger networks tend to reach higher accuracy.

    Direction: maximize. Cost: free (no forward pass).

    Args:
        model: the network (not modified).
        inputs: ignored.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        The parameter count, as a float.

    Example::

        n = params(torch.nn.Linear(3, 2), None, None)  # 8.0
    """
    del inputs, targets, loss_fn
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


@register_metric(
    "flops",
    direction="maximize",
    needs=(),
    cost="cheap",
    phases=("init",),
    citation=f"FLOPs baseline of {_ABDELFATTAH}",
)
def flops(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn = F.cross_entropy,
) -> float:
    """Forward FLOPs per example, counted by :class:`torch.utils.flop_counter.FlopCounterMode`.

    The batch's forward pass (without gradients) is counted and divided by the batch size: the counted
    operators (matrix products, convolutions, attention) are linear in the batch size, and a whole batch
    avoids batch-of-one errors in train-mode BatchNorm. FlopCounterMode counts a multiply-add as 2 FLOPs
    (``Linear(i, o)``: ``2 i o`` per example) and does not count elementwise operations, normalization or
    pooling. No extra dependency. ``targets`` and ``loss_fn`` are ignored.

    Direction: maximize (the FLOPs baseline of Abdelfattah et al., ICLR 2021). Cost: one forward pass.

    Args:
        model: the network (not modified; BatchNorm running statistics are updated on copies).
        inputs: a batch of inputs.
        targets: ignored.
        loss_fn: ignored.

    Returns:
        FLOPs of one example's forward pass.

    Example::

        flops(torch.nn.Linear(3, 2), torch.randn(4, 3), None)  # 12.0 = 2 * 3 * 2
    """
    del targets, loss_fn
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        _Functional(model)(inputs.detach())
    return float(counter.get_total_flops()) / inputs.shape[0]
