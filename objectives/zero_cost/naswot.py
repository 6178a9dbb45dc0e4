"""naswot: ``log |det K_H|`` of the Hamming kernel of binary ReLU codes (Mellor et al., ICML 2021)."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.hooks import activation_calls, hooked
from ..registry import register_metric
from ._harness import LossFn, _Functional

_LOG = logging.getLogger(__name__)

__all__ = ["NASWOT_SINGULAR", "naswot"]


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
    project's ``CReLU`` — and every functional ReLU call made outside such a module (``F.relu``,
    ``torch.relu``, ``x.relu()``, leaky and ReLU6 forms: models written without activation modules,
    intercepted by :func:`~objectives.core.hooks.activation_calls`) records the binary code ``c = 1[input > 0]`` of each example (flattened over
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
        ValueError: the forward pass made no ReLU activation, as module or function (the kernel would be 0).

    Example::

        score = naswot(model, x, y, random_inputs=True, seed=0)  # the data-free variant
    """
    del targets, loss_fn
    relus = _relu_modules(model)
    x = inputs.detach()
    if random_inputs:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    n = x.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    layers = 0

    def add(pre_activation: Tensor) -> None:
        nonlocal kernel, layers
        layers += 1
        codes = pre_activation.detach().reshape(n, -1) > 0
        units = codes.shape[1]
        # c c^T + (1 - c)(1 - c)^T = 2 c c^T - s 1^T - 1 s^T + units, s = c 1 (active units per example):
        # one matmul. Its entries are integers <= units, exact in float32 below 2^24 (float64 beyond).
        c = codes.to(torch.float32 if units < _FLOAT32_EXACT else torch.float64)
        active = c.sum(dim=1, dtype=torch.float64)
        with torch.autocast(c.device.type, enabled=False):  # a caller's autocast would round the counts
            gram = (c @ c.T).double()
        kernel = kernel + 2.0 * gram - active[:, None] - active[None, :] + float(units)

    def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
        add(args[0])

    with torch.no_grad(), hooked((m, hook) for m in relus), activation_calls(add, relus):
        _Functional(model)(x)
    if layers == 0:
        raise ValueError("naswot needs ReLU activations (modules whose class name contains 'ReLU', or "
                         "F.relu / torch.relu calls); the model has none")
    sign, logdet = torch.linalg.slogdet(kernel)
    # K_H has integer entries, so a nonsingular K_H has det >= 1: anything below 1/2 is rounding around 0
    if sign <= 0 or not bool(logdet >= _HALF_LOG):
        _LOG.warning("naswot: the activation kernel is singular; returning %s", NASWOT_SINGULAR)
        return NASWOT_SINGULAR
    return float(logdet)
