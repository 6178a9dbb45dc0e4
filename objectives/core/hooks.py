"""One harness for what every metric that looks inside a model needs, so the caller's model is left as found.

* :func:`hooked`: forward (or forward-pre) hooks registered for the duration of a ``with`` block and
  removed in ``finally``, whatever happens inside.
* :func:`restored_training`: every module's own ``training`` flag saved on entry and restored on exit;
  :func:`eval_mode` puts the whole model in eval mode inside it.
* :func:`cloned_buffers` / :func:`functional_forward`: evaluate the model through
  ``torch.func.functional_call`` on its own (detached) parameters and *cloned* buffers, so a train-mode
  BatchNorm pass cannot update the caller's running statistics.
* :func:`trainable_parameters`: the detached trainable parameters, in ``named_parameters`` order.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator

from torch import Tensor, nn
from torch.func import functional_call

__all__ = ["hooked", "restored_training", "eval_mode", "cloned_buffers", "functional_forward",
           "trainable_parameters"]

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
