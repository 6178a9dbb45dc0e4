"""Gradient transforms applied between ``backward()`` and ``optimizer.step()``: GAN, GC, z-score.

* **Gradient Autoscaled Normalization (GAN)** — V.-D. Yun, "Insights from Gradient Dynamics: Gradient
  Autoscaled Normalization", arXiv:2509.03677, 2025 (Sec. 3.2, eqs. 1-2). Every gradient tensor with
  more than one dimension is zero-centred over the *whole tensor* and all of them are multiplied by
  one global factor computed from the standard deviation of the raw gradients (see
  :class:`AutoscaledNormalization`). Tensors with ``ndim <= 1`` (biases, norm scales) are untouched.
* **Gradient Centralization (GC)** — H. Yong, J. Huang, X. Hua, L. Zhang, "Gradient Centralization: A
  New Optimization Technique for Deep Neural Networks", ECCV 2020: for every weight with ``ndim > 1``
  the mean over all dimensions but the first (one mean per output channel / unit) is removed.
* **Z-score normalization** — the baseline of GAN's Table 1 (its ref. [25]): every eligible tensor is
  standardized, g <- (g - mean g) / (std g + eps), over the whole tensor.

Each transform is a callable on an iterable of parameters that rewrites their ``.grad`` in place.
:class:`TransformedOptimizer` wraps any ``torch.optim.Optimizer`` so that ``step()`` transforms the
gradients and then calls the inner step; it *is* an ``Optimizer`` (LR schedulers, ``GradScaler`` and
``zero_grad`` work on it) and shares the inner optimizer's ``param_groups`` and ``state``.
:func:`make_grad_transform` builds one from a name of :data:`GRAD_TRANSFORMS` (the ``grad_transform``
categorical dimension of the search spaces, defined once in :mod:`search_spaces._base`, which must not
import :mod:`nas`). The gradient statistic these transforms use, :func:`global_gradient_std`, lives in
:mod:`objectives.noise` (a statistic, not training code) and is re-exported here.

Example::

    opt = make_grad_transform("gan", torch.optim.SGD(model.parameters(), lr=0.1))
    for x, y in loader:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()                      # centre + autoscale the .grads, then SGD
    opt.transform.p, opt.transform.last_scale

With mixed precision, let ``GradScaler.step(opt)`` call the wrapper (it unscales the gradients first),
so the transform sees the true gradients.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, Callable, Iterable

import torch
from torch import Tensor
from torch.optim import Optimizer

from objectives.noise import eligible_grads as _eligible_grads
from objectives.noise import global_gradient_std
from search_spaces import GRAD_TRANSFORMS

__all__ = [
    "GRAD_TRANSFORMS",
    "GradientTransform",
    "AutoscaledNormalization",
    "GradientCentralization",
    "ZScoreNormalization",
    "TransformedOptimizer",
    "GradientAutoscaledNormalization",
    "global_gradient_std",
    "make_grad_transform",
]

logger = logging.getLogger(__name__)
#: Whether the "a_t > 1" warning was logged in this process (later ones go to debug level).
_amplified_logged = False

_GAN_CITATION = (
    "Yun, Insights from Gradient Dynamics: Gradient Autoscaled Normalization, arXiv:2509.03677, 2025"
)


class GradientTransform:
    """Base class: rewrites the ``.grad`` of the parameters it is called on, in place.

    Subclasses implement :meth:`__call__`; a transform with state (GAN's exponent) also overrides
    :meth:`state_dict` / :meth:`load_state_dict` so checkpoints resume exactly.
    """

    name = "none"

    def __call__(self, params: Iterable[Tensor]) -> None:  # identity
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AutoscaledNormalization(GradientTransform):
    """Gradient Autoscaled Normalization (GAN), Yun 2025, Sec. 3.2, eqs. 1-2.

    At every call, with S_t the tensors whose gradient has ``ndim > 1``::

        s_t = Std(concat_{l in S_t} vec(G_l))            raw gradients, unbiased estimator
        a_t = (4 / (|ln s_t| + eps)) ** p                 (eq. 1 simplified; eps = 1e-8)
        G_l <- a_t * (G_l - mean(G_l))   for l in S_t     whole-tensor mean (not per channel)
        G_l unchanged                    otherwise        (biases, norm scales, scalars)

    The exponent is chosen once, at the first call: a_1 = (4/(|ln s_1|+eps))**2 is applied, and
    p = 1 for every later step if a_1 < 0.5, otherwise p = 2 (eq. 1: "p_t = 1 for all t >= 2 if
    a_1 < 0.5, 2 otherwise", so p_1 = 2). With natural logs p = 1 is chosen when s_1 < ~3.5e-3.

    The paper says a_t lies in (0, 1]; that holds only while |ln s_t| >= 4 (s_t <= ~0.018). For
    larger gradient spreads a_t exceeds 1 (a_t -> 4/eps as s_t -> 1). ``max_scale`` (not in the
    paper; default ``None`` = the paper's rule) clips a_t; a first a_t > 1 is logged as a warning.
    A zero (or infinite) s_t gives a_t = 0.

    Attributes:
        p: the exponent (``None`` before the first call).
        steps: number of calls that found eligible gradients.
        last_std, last_scale: s_t and a_t of the last call.

    Args:
        eps: the stabilizer of eq. 1 (1e-8 in the paper).
        max_scale: optional upper bound on a_t (an addition to the paper).
    """

    name = "gan"

    def __init__(self, eps: float = 1e-8, max_scale: float | None = None) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if max_scale is not None and not max_scale > 0:
            raise ValueError(f"max_scale must be positive or None, got {max_scale}")
        self.eps = float(eps)
        self.max_scale = None if max_scale is None else float(max_scale)
        self.p: int | None = None
        self.steps = 0
        self.last_std = float("nan")
        self.last_scale = float("nan")
        self._warned = False

    def scale_for(self, std: float, p: int) -> float:
        """a = (4 / (|ln std| + eps)) ** p; 0 for std = 0 or inf."""
        if std == 0 or math.isinf(std):
            return 0.0
        return (4.0 / (abs(math.log(std)) + self.eps)) ** p

    def __call__(self, params: Iterable[Tensor]) -> None:
        params = list(params)
        grads = _eligible_grads(params)
        if not grads:
            return
        s = global_gradient_std(params)
        if self.p is None:  # first iteration: p_1 = 2, and the exponent for t >= 2 is fixed here
            a = self.scale_for(s, 2)
            self.p = 1 if a < 0.5 else 2
        else:
            a = self.scale_for(s, self.p)
        if a > 1 and not self._warned:
            global _amplified_logged
            # a warning once per process (a search trains many GAN candidates), later instances at debug level
            logger.log(
                logging.DEBUG if _amplified_logged else logging.WARNING,
                "GAN autoscale a_t = %.3g > 1 (gradient std s_t = %.3g > e^-4): the update is amplified "
                "(AutoscaledNormalization(max_scale=1.0) clips it; said once per process)", a, s,
            )
            _amplified_logged = self._warned = True
        if self.max_scale is not None:
            a = min(a, self.max_scale)
        with torch.no_grad():
            for g in grads:
                g.sub_(g.mean()).mul_(a)
        self.steps += 1
        self.last_std, self.last_scale = s, a

    def state_dict(self) -> dict[str, Any]:
        return {"p": self.p, "steps": self.steps, "eps": self.eps, "max_scale": self.max_scale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.p = state.get("p")
        self.steps = int(state.get("steps", 0))
        self.eps = float(state.get("eps", self.eps))
        self.max_scale = state.get("max_scale", self.max_scale)

    def __repr__(self) -> str:
        return f"AutoscaledNormalization(eps={self.eps}, max_scale={self.max_scale}, p={self.p})"


class GradientCentralization(GradientTransform):
    """Gradient Centralization (Yong et al., ECCV 2020, eq. 4).

    For every gradient with ``ndim > 1`` (conv and linear weights)::

        G[j, ...] <- G[j, ...] - mean(G[j, ...])      one mean per output channel / unit j

    Other gradients are untouched.
    """

    name = "gc"

    def __call__(self, params: Iterable[Tensor]) -> None:
        with torch.no_grad():
            for g in _eligible_grads(params):
                g.sub_(g.mean(dim=tuple(range(1, g.dim())), keepdim=True))


class ZScoreNormalization(GradientTransform):
    """Z-score gradient normalization (the baseline of GAN's Table 1, its ref. [25]).

    For every gradient with ``ndim > 1``, over the whole tensor::

        G <- (G - mean G) / (std G + eps)             std unbiased

    Other gradients are untouched. Amplifies tensors whose gradient spread is tiny (the motivation
    for GAN's single global factor).

    Args:
        eps: stabilizer added to the std (1e-8).
    """

    name = "zscore"

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = float(eps)

    def __call__(self, params: Iterable[Tensor]) -> None:
        with torch.no_grad():
            for g in _eligible_grads(params):
                std, mean = torch.std_mean(g)
                g.sub_(mean).div_(std + self.eps)

    def __repr__(self) -> str:
        return f"ZScoreNormalization(eps={self.eps})"


class TransformedOptimizer(Optimizer):
    """Wraps an optimizer: ``step()`` applies a gradient transform, then the inner ``step()``.

    The wrapper is an :class:`torch.optim.Optimizer` sharing the inner optimizer's ``param_groups``,
    ``state`` and ``defaults`` (so LR schedulers and ``GradScaler`` work on it). Its ``state_dict``
    holds the inner state and the transform's (``{"optimizer": ..., "grad_transform": ...}``);
    ``load_state_dict`` also accepts a plain inner state dict.

    ``step(closure)`` evaluates the closure once (to compute the gradients), transforms them, and
    calls the inner ``step()`` without a closure, so optimizers that re-evaluate the closure
    (LBFGS) are not supported.

    Args:
        optimizer: any ``torch.optim.Optimizer``.
        transform: a :class:`GradientTransform` (or any callable on an iterable of parameters).
    """

    def __init__(self, optimizer: Optimizer, transform: Callable[[Iterable[Tensor]], Any]) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.transform = transform
        # the bookkeeping Optimizer.__init__ would set up (step hooks), without copying the groups
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()

    # shared views of the inner optimizer
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.optimizer.state

    @state.setter
    def state(self, value: Any) -> None:
        self.optimizer.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.optimizer.defaults = value

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Evaluate ``closure`` (if any), transform the gradients, run the inner step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.transform(self._params())
        self.optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        state = self.transform.state_dict() if hasattr(self.transform, "state_dict") else {}
        return {"optimizer": self.optimizer.state_dict(), "grad_transform": state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        if "optimizer" in state_dict and "param_groups" not in state_dict:
            self.optimizer.load_state_dict(state_dict["optimizer"])
            if hasattr(self.transform, "load_state_dict"):
                self.transform.load_state_dict(state_dict.get("grad_transform", {}))
        else:
            self.optimizer.load_state_dict(state_dict)

    def __getstate__(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "transform": self.transform}

    def __setstate__(self, state: dict[str, Any]) -> None:
        TransformedOptimizer.__init__(self, state["optimizer"], state["transform"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r}, {self.optimizer!r})"


class GradientAutoscaledNormalization(TransformedOptimizer):
    """``optimizer`` with Gradient Autoscaled Normalization (Yun 2025) applied before every step.

    Shorthand for ``TransformedOptimizer(optimizer, AutoscaledNormalization(eps, max_scale))``; the
    transform (its ``p``, ``last_std``, ``last_scale``) is ``self.transform``. With plain SGD
    (no momentum, no weight decay) the update of an eligible tensor is
    ``-lr * a_t * (G - mean G)``. The paper trains with AdamW, whose update is nearly invariant to a
    slowly varying global factor, so there the centering does most of the work.

    Example::

        opt = GradientAutoscaledNormalization(torch.optim.AdamW(model.parameters(), lr=1e-3))
    """

    def __init__(
        self, optimizer: Optimizer, eps: float = 1e-8, max_scale: float | None = None
    ) -> None:
        super().__init__(optimizer, AutoscaledNormalization(eps=eps, max_scale=max_scale))


_FACTORIES: dict[str, Callable[[], GradientTransform]] = {
    "gan": AutoscaledNormalization,
    "gc": GradientCentralization,
    "zscore": ZScoreNormalization,
}


def make_grad_transform(name: str, optimizer: Optimizer) -> Optimizer:
    """Wrap ``optimizer`` with the gradient transform ``name`` (one of :data:`GRAD_TRANSFORMS`).

    Args:
        name: ``"none"`` (returns ``optimizer`` itself), ``"gan"`` (:class:`AutoscaledNormalization`),
            ``"gc"`` (:class:`GradientCentralization`) or ``"zscore"`` (:class:`ZScoreNormalization`).
        optimizer: the inner optimizer.

    Returns:
        An optimizer whose ``step()`` transforms the gradients first.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    key = str(name).lower()
    if key == "none":
        return optimizer
    if key not in _FACTORIES:
        raise ValueError(f"unknown grad_transform {name!r}; valid: {', '.join(GRAD_TRANSFORMS)}")
    if key == "gan":
        return GradientAutoscaledNormalization(optimizer)
    return TransformedOptimizer(optimizer, _FACTORIES[key]())
