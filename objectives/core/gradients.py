"""Per-example weight gradients, batch and input gradients (DESIGN.md §2).

Notation: loss L(f_w(x), t); per-example weight gradient g_i = h_W(w, x_i, t_i), flattened over all
trainable parameters (or over a random mask, :mod:`objectives.core.params`); batch gradient
gbar = mean_i g_i; per-example input gradient h_X(w, x_i, t_i).

* ``bn_mode="frozen"`` (default; :mod:`objectives.core.batch_norm`): :func:`per_example_grads` with
  ``torch.func`` (``functional_call`` + ``vmap(grad)``), chunked to bound memory, BN statistics frozen.
* ``bn_mode="contribution"``: :func:`per_example_contributions`, per-example *contributions* c_i to the
  real train-mode batch gradient, computed from layer hooks (Linear, Conv2d via unfold + einsum, norm
  affine parameters), so that sum_i c_i equals the train-mode gradient of the mean loss exactly. The
  per-example gradient used by the metrics is g_i = B * c_i, so that mean_i g_i is the train-mode
  batch gradient.

Never mix the two modes inside one formula. Loss functions must reduce by the mean over the batch
(like ``F.cross_entropy``' default).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from .batch_norm import BN_TYPES, probing_mode
from .hooks import cloned_buffers, hooked
from .params import apply_mask

__all__ = ["LossFn", "CHUNK_FLOATS", "check_loss", "per_example_grads", "per_example_contributions",
           "batch_grad", "input_grads", "batch_and_input_grads"]

LossFn = Callable[[Tensor, Tensor], Tensor]
#: Per-example gradient floats held at once by the automatic vmap chunk (100 MB of float32).
CHUNK_FLOATS = 2.5e7


def check_loss(loss: Tensor) -> None:
    if loss.dim() != 0:
        raise ValueError(
            f"loss_fn must return a scalar (mean over the batch), got shape {tuple(loss.shape)}"
        )


def per_example_grads(
    model: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
    chunk_size: int | None = None,
    mask: dict[str, Tensor] | None = None,
) -> Tensor:
    """Per-example weight gradients g_i as a (B, P) matrix (P = masked size), with torch.func.

    ``vmap(grad(loss of one example))`` over the batch, in chunks of ``chunk_size`` examples so the
    memory peak is chunk_size x (all parameters) plus B x P for the result; ``None`` picks the
    largest chunk with chunk x (all parameters) <= :data:`CHUNK_FLOATS` (100 MB of float32). The
    model must be in the probing mode of the caller (frozen BN: eval mode with :func:`frozen_buffers`).
    """

    def loss_one(p: dict[str, Tensor], x: Tensor, t: Tensor) -> Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),), strict=False)
        return loss_fn(out, t.unsqueeze(0))

    per_ex = vmap(grad(loss_one), in_dims=(None, 0, 0))
    b = inputs.shape[0]
    if chunk_size is None:
        n_params = sum(p.numel() for p in params.values())
        chunk_size = max(1, int(CHUNK_FLOATS // max(n_params, 1)))
    step = max(1, int(chunk_size))
    rows = []
    for start in range(0, b, step):
        g = per_ex(params, inputs[start : start + step], targets[start : start + step])
        rows.append(apply_mask(g, mask, batch=True))
        del g
    return torch.cat(rows, dim=0)


def _flat(grads: Sequence[Tensor | None], leaves: dict[str, Tensor]) -> Tensor:
    """The gradients of ``leaves`` flattened into one vector (zeros for a parameter the loss does not reach)."""
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, leaves.values())])


def batch_grad(
    model: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
) -> tuple[Tensor, Tensor]:
    """Gradient of the mean loss at ``params`` (one forward + backward). Returns (flat grad, loss).

    Buffers are used as given (pass clones in train-mode BN: they are updated in place).
    """
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad():
        out = functional_call(model, (leaves, buffers), (inputs,), strict=False)
        loss = loss_fn(out, targets)
        check_loss(loss)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return _flat(grads, leaves), loss.detach()


def batch_and_input_grads(
    model: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`batch_grad` and :func:`input_grads` from one shared forward pass: (flat grad, loss, input grads).

    Two backward passes over the one graph (the first keeps it); each gives the values its own function
    gives, bit for bit, for one forward pass fewer.
    """
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = functional_call(model, (leaves, buffers), (x,), strict=False)
        loss = loss_fn(out, targets)
        check_loss(loss)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, retain_graph=True)
        (gx,) = torch.autograd.grad(loss * inputs.shape[0], [x])
    return _flat(grads, leaves), loss.detach(), gx.reshape(inputs.shape[0], -1)


def input_grads(
    model: nn.Module,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
) -> Tensor:
    """Input gradients B * dL/dX as a (B, D) matrix: one backward of the batch loss.

    With frozen BN (or GN/LN, or no norm) row i is exactly h_X(w, x_i, t_i), the gradient of example
    i's own loss; with train-mode BN it includes the coupling through the batch statistics.
    """
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = functional_call(model, (params, buffers), (x,), strict=False)
        loss = loss_fn(out, targets)
        check_loss(loss)
        (gx,) = torch.autograd.grad(loss * inputs.shape[0], [x])
    return gx.reshape(inputs.shape[0], -1)


def _conv_contrib(m: nn.Conv2d, x: Tensor, gout: Tensor) -> Tensor:
    if m.padding_mode != "zeros" or isinstance(m.padding, str) and m.padding != "valid":
        raise NotImplementedError(
            f"bn_mode='contribution' supports Conv2d with zero padding given as numbers, got "
            f"padding={m.padding!r}, padding_mode={m.padding_mode!r}"
        )
    padding = 0 if isinstance(m.padding, str) else m.padding
    b = x.shape[0]
    cols = F.unfold(x, m.kernel_size, dilation=m.dilation, padding=padding, stride=m.stride)
    g = m.groups
    cols = cols.reshape(b, g, -1, cols.shape[-1])
    go = gout.reshape(b, g, gout.shape[1] // g, -1)
    w = torch.einsum("bgol,bgkl->bgok", go, cols)
    return w.reshape(b, *m.weight.shape)


def _normalized(m: nn.Module, x: Tensor) -> Tensor:
    """x-hat of a norm layer (its input normalized, before the affine part)."""
    if isinstance(m, BN_TYPES):
        if m.training or m.running_mean is None:
            return F.batch_norm(x, None, None, training=True, eps=m.eps)
        return F.batch_norm(x, m.running_mean, m.running_var, training=False, eps=m.eps)
    if isinstance(m, nn.GroupNorm):
        return F.group_norm(x, m.num_groups, eps=m.eps)
    if isinstance(m, nn.LayerNorm):
        return F.layer_norm(x, m.normalized_shape, eps=m.eps)
    raise TypeError(type(m))


def _layer_contributions(
    m: nn.Module, x: Tensor, gout: Tensor
) -> dict[str, Tensor]:
    """Per-example contributions to the gradient of one layer's own parameters."""
    b = x.shape[0]
    out: dict[str, Tensor] = {}
    if isinstance(m, nn.Linear):
        out["weight"] = torch.einsum("b...o,b...i->boi", gout, x)
        if m.bias is not None:
            out["bias"] = gout.reshape(b, -1, gout.shape[-1]).sum(1)
    elif isinstance(m, nn.Conv2d):
        out["weight"] = _conv_contrib(m, x, gout)
        if m.bias is not None:
            out["bias"] = gout.sum(dim=(2, 3))
    elif isinstance(m, (*BN_TYPES, nn.GroupNorm)):
        xhat = _normalized(m, x)
        dims = tuple(range(2, x.dim()))
        if m.weight is not None:
            out["weight"] = (gout * xhat).sum(dim=dims) if dims else gout * xhat
        if m.bias is not None:
            out["bias"] = gout.sum(dim=dims) if dims else gout
    elif isinstance(m, nn.LayerNorm):
        xhat = _normalized(m, x)
        nd = len(m.normalized_shape)
        dims = tuple(range(1, x.dim() - nd))
        if m.weight is not None:
            out["weight"] = (gout * xhat).sum(dim=dims) if dims else gout * xhat
        if m.bias is not None:
            out["bias"] = gout.sum(dim=dims) if dims else gout
    else:
        raise NotImplementedError(
            f"bn_mode='contribution' has no per-example rule for {type(m).__name__} layers with "
            "parameters (supported: Linear, Conv2d, BatchNorm, GroupNorm, LayerNorm); use "
            "bn_mode='frozen'"
        )
    return out


def per_example_contributions(
    model: nn.Module,
    params: dict[str, Tensor],
    inputs: Tensor,
    targets: Tensor,
    loss_fn: LossFn,
    mask: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-example contributions c_i to the train-mode batch gradient, from layer hooks.

    Forward hooks record each parameterized layer's input and output; one ``autograd.grad`` of the
    mean loss with respect to all recorded outputs gives the output gradients, from which each
    layer's per-example weight/bias contributions follow in closed form (BackPACK's ``BatchGrad``
    rules). sum_i c_i is the gradient of the mean loss with BatchNorm in train mode (batch
    statistics, examples coupled). Runs on cloned buffers: running statistics are untouched.
    Normalization layers are put in train mode, everything else in eval mode.

    Returns:
        ((B, P) matrix of contributions in parameter order, masked; the batch loss).
    """
    owner: dict[str, tuple[nn.Module, str]] = {}
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if full in params:
                owner[full] = (m, pname)
    layers = {id(m): m for m, _ in owner.values()}
    records: dict[int, list[tuple[Tensor, Tensor]]] = {i: [] for i in layers}

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        records[id(module)].append((args[0].detach(), output))
        # hand a clone downstream so an in-place op after this layer cannot alter `output`
        return output.clone()

    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    with hooked((m, hook) for m in layers.values()):
        with torch.enable_grad(), probing_mode(model, norm_train=True):
            buffers = cloned_buffers(model)
            out = functional_call(model, (leaves, buffers), (inputs,), strict=False)
            loss = loss_fn(out, targets)
            check_loss(loss)
            flat_records = [(i, k, rec) for i, recs in records.items() for k, rec in enumerate(recs)]
            gouts = torch.autograd.grad(
                loss, [rec[1] for _, _, rec in flat_records], allow_unused=True
            )
            contrib_by_layer: dict[int, dict[str, Tensor]] = {}
            for (i, _, (x, y)), go in zip(flat_records, gouts):
                if go is None:
                    go = torch.zeros_like(y)
                with torch.no_grad():
                    c = _layer_contributions(layers[i], x, go.detach())
                acc = contrib_by_layer.setdefault(i, {})
                for k, v in c.items():  # a layer called several times: contributions add up
                    acc[k] = acc[k] + v if k in acc else v
    b = inputs.shape[0]
    grads = {}
    for name, p in params.items():
        m, pname = owner[name]
        c = contrib_by_layer.get(id(m), {}).get(pname)
        grads[name] = c if c is not None else torch.zeros(b, *p.shape, dtype=p.dtype, device=p.device)
    return apply_mask(grads, mask, batch=True), loss.detach()
