"""One harness for what every metric that looks inside a model needs, so the caller's model is left as found.

* :func:`hooked`: forward (or forward-pre) hooks registered for the duration of a ``with`` block and
  removed in ``finally``, whatever happens inside.
* :func:`restored_training`: every module's own ``training`` flag saved on entry and restored on exit;
  :func:`eval_mode` puts the whole model in eval mode inside it.
* :func:`cloned_buffers` / :func:`functional_forward`: evaluate the model through
  ``torch.func.functional_call`` on its own (detached) parameters and *cloned* buffers, so a train-mode
  BatchNorm pass cannot update the caller's running statistics.
* :func:`trainable_parameters`: the detached trainable parameters, in ``named_parameters`` order.
* :func:`activation_calls`: the inputs of functional ReLU calls (``F.relu``, ``torch.relu``,
  ``x.relu()``, ...) made outside activation modules, for metrics that read activations from models
  written without ``nn.ReLU`` modules.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

__all__ = ["hooked", "restored_training", "eval_mode", "cloned_buffers", "functional_forward",
           "trainable_parameters", "activation_calls", "RELU_FUNCTIONS"]

HOOK_KINDS = ("forward", "forward_pre")


@contextlib.contextmanager
def hooked(pairs: Iterable[tuple[nn.Module, Callable]], kind: str = "forward") -> Iterator[None]:
    """Register ``hook`` on ``module`` for every ``(module, hook)`` pair; all handles removed on exit.

    Args:
        pairs: the modules and their hooks (one hook may serve many modules).
        kind: ``"forward"`` (``register_forward_hook``) or ``"forward_pre"``.
    """
    if kind not in HOOK_KINDS:
        raise ValueError(f"kind must be one of {HOOK_KINDS}, got {kind!r}")
    handles = []
    try:
        for module, hook in pairs:
            register = module.register_forward_hook if kind == "forward" else module.register_forward_pre_hook
            handles.append(register(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def restored_training(model: nn.Module) -> Iterator[nn.Module]:
    """Save every module's ``training`` flag; restore each on exit (the block may change them)."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Every module in eval mode inside the block; each module's own flag restored on exit."""
    with restored_training(model):
        model.eval()
        yield model


def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Detached copies-by-reference of the trainable parameters, in ``named_parameters`` order."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def cloned_buffers(model: nn.Module) -> dict[str, Tensor]:
    """A clone of every buffer: a train-mode pass on them leaves the model's running statistics alone."""
    return {n: b.clone() for n, b in model.named_buffers()}


def functional_forward(model: nn.Module, inputs: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
    """``model(inputs)`` through ``functional_call`` on ``params`` (default: the trainable parameters,
    detached) and cloned buffers; the model itself is not written to."""
    if params is None:
        params = trainable_parameters(model)
    return functional_call(model, (params, cloned_buffers(model)), (inputs,), strict=False)


#: The functional forms of the ReLU family a model may call instead of holding ``nn.ReLU`` modules.
RELU_FUNCTIONS = frozenset({
    F.relu, F.relu_, F.relu6, F.leaky_relu, F.leaky_relu_,
    torch.relu, torch.relu_, Tensor.relu, Tensor.relu_,
})


class _ActivationCalls(TorchFunctionMode):
    """Calls ``callback(input)`` for every call of :data:`RELU_FUNCTIONS` made while ``depth[0] == 0``."""

    def __init__(self, callback: Callable[[Tensor], None], depth: list[int]) -> None:
        super().__init__()
        self.callback, self.depth = callback, depth

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in RELU_FUNCTIONS and self.depth[0] == 0 and args and isinstance(args[0], Tensor):
            self.callback(args[0])  # before the call: an in-place relu_ would overwrite its input
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def activation_calls(callback: Callable[[Tensor], None], modules: Iterable[nn.Module] = ()) -> Iterator[None]:
    """Inside the block, ``callback(x)`` receives the input ``x`` of every functional ReLU call.

    Models often write ``F.relu(x)`` (or ``torch.relu``, ``x.relu()``) in ``forward`` instead of holding
    ``nn.ReLU`` modules; forward hooks cannot see those. A :class:`~torch.overrides.TorchFunctionMode`
    intercepts the calls listed in :data:`RELU_FUNCTIONS`. Calls made *inside* one of ``modules`` (the
    activation modules the metric already hooks: ``nn.ReLU.forward`` itself calls ``F.relu``) are skipped,
    so no unit is counted twice.

    Args:
        callback: receives the (detached by the caller if needed) input tensor of each call.
        modules: activation modules whose own forward passes are already observed by hooks.
    """
    depth = [0]

    def enter(module: nn.Module, args: tuple) -> None:
        depth[0] += 1

    def leave(module: nn.Module, args: tuple, out: Tensor) -> None:
        depth[0] -= 1

    modules = list(modules)
    with hooked(((m, enter) for m in modules), kind="forward_pre"), hooked((m, leave) for m in modules), \
            _ActivationCalls(callback, depth):
        yield
