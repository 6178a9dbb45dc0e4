"""What the zero-cost proxies share: the scored layers and a functional evaluation of the caller's model.

* :data:`LAYER_TYPES` and :func:`_layers`: the modules the references prune (``nn.Linear`` and every
  convolution), each weight once, as :class:`_Layer` ``(name, module, weight)`` triples;
  :func:`_required_layers` raises when there is none.
* :data:`_ABDELFATTAH`: the citation of the zero-cost-nas reference.
* :class:`_Functional`: the model evaluated through :func:`torch.func.functional_call` on its own
  detached parameters and cloned buffers; the parameters named in ``wrt`` become fresh leaves.
* :func:`_weight_grads`: the layer weights and their loss gradients from one forward pass.

Hooks and train/eval flags go through :mod:`objectives.core.hooks`.
"""

from __future__ import annotations

import logging
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ..core.hooks import cloned_buffers

_LOG = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]

#: Modules whose weights the proxies score (the references: ``nn.Conv2d`` and ``nn.Linear``).
LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd)

#: The citation shared by the proxies of the zero-cost-nas reference.
_ABDELFATTAH = (
    "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (SamsungLabs/zero-cost-nas)"
)


class _Layer(NamedTuple):
    """A scored layer: its module name, the module and the name of its weight parameter."""

    name: str
    module: nn.Module
    weight: str


def _layers(model: nn.Module, warn: bool = True) -> list[_Layer]:
    """``(module name, module, weight parameter name)`` of every Linear/conv layer, each weight once; ``warn``
    logs the layers skipped (a weight that is not a registered parameter)."""
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
        out.append(_Layer(mname, module, names[id(weight)]))
    if skipped and warn:
        _LOG.warning("zero-cost proxies skip layers whose weight is not a registered parameter: %s", skipped)
    return out


def _required_layers(model: nn.Module, metric: str) -> list[_Layer]:
    """:func:`_layers` of ``model``.

    Raises:
        ValueError: naming ``metric``, when the model has no Linear/conv layer.
    """
    layers = _layers(model)
    if not layers:
        raise ValueError(f"{metric} scores Linear/conv weights and the model has none")
    return layers


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
        tensors = {name: p.detach() for name, p in model.named_parameters()}
        tensors.update((name, b.detach()) for name, b in cloned_buffers(model).items())
        if transform is not None:
            tensors = {n: transform(t) if t.is_floating_point() else t for n, t in tensors.items()}
        # detach() made new tensor objects: flagging them leaves the caller's parameters as they are
        self.leaves = [tensors[n].requires_grad_(True) for n in wrt]
        tensors.update(zip(wrt, self.leaves))
        self.tensors = tensors

    @classmethod
    def of_weights(
        cls, model: nn.Module, layers: list[_Layer], transform: Callable[[Tensor], Tensor] | None = None
    ) -> _Functional:
        """The functional model with the weights of ``layers`` as leaves (``self.leaves``, same order)."""
        return cls(model, [layer.weight for layer in layers], transform)

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
    layers: list[_Layer],
    *,
    create_graph: bool = False,
) -> tuple[list[Tensor], list[Tensor]]:
    """(weights, dL/dweights) of ``layers`` for one forward pass; unused weights get zero gradients.

    Runs with gradients enabled even inside a caller's ``torch.no_grad()``.
    """
    with torch.enable_grad():
        fn = _Functional.of_weights(model, layers)
        loss = loss_fn(fn(inputs), targets)
        grads = torch.autograd.grad(loss, fn.leaves, create_graph=create_graph, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(fn.leaves, grads)]
    return fn.leaves, grads
