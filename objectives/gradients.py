"""Gradient machinery: per-example weight gradients, input gradients, BatchNorm handling, masking.

Notation (DESIGN.md §2): loss L(f_w(x), t); per-example weight gradient g_i = h_W(w, x_i, t_i),
flattened over all trainable parameters (or over a random mask); batch gradient
gbar = mean_i g_i; per-example input gradient h_X(w, x_i, t_i).

BatchNorm couples the examples of a batch, so "the gradient of example i" needs a definition:

* ``bn_mode="frozen"`` (default; the thesis evaluates BN nets on individual inputs): one forward pass
  in train mode collects each BN layer's batch mean and (biased) variance; every per-example quantity
  is then evaluated with those statistics frozen, i.e. BN acts as a fixed affine map. The model's own
  running buffers are never touched (the pass runs on cloned buffers).
* ``bn_mode="contribution"``: per-example *contributions* c_i to the real train-mode batch gradient,
  computed from layer hooks (Linear, Conv2d via unfold + einsum, norm affine parameters), so that
  sum_i c_i equals the train-mode gradient of the mean loss exactly. The per-example gradient used
  by the metrics is g_i = B * c_i, so that mean_i g_i is the train-mode batch gradient.

Never mix the two modes inside one formula (DESIGN.md §2). Dropout is always disabled while probing.

Loss functions must reduce by the mean over the batch (like ``F.cross_entropy``' default).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

__all__ = [
    "LossFn",
    "BN_MODES",
    "trainable_parameters",
    "flatten",
    "make_mask",
    "apply_mask",
    "collect_batch_norm_stats",
    "frozen_buffers",
    "probing_mode",
    "per_example_grads",
    "per_example_contributions",
    "batch_grad",
    "input_grads",
    "stable_rank",
    "gaussian_stable_rank",
    "wishart_gram",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
BN_MODES = ("frozen", "contribution")
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
#: Per-example gradient floats held at once by the automatic vmap chunk (100 MB of float32).
CHUNK_FLOATS = 2.5e7


# --------------------------------------------------------------------------------------- parameters
def trainable_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Detached copies-by-reference of the trainable parameters, in ``named_parameters`` order."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}


def flatten(tensors: dict[str, Tensor] | Sequence[Tensor], batch: bool = False) -> Tensor:
    """Concatenate tensors into one vector (``batch=False``) or a (B, P) matrix (``batch=True``)."""
    values = list(tensors.values()) if isinstance(tensors, dict) else list(tensors)
    if batch:
        return torch.cat([v.reshape(v.shape[0], -1) for v in values], dim=1)
    return torch.cat([v.reshape(-1) for v in values])


def make_mask(
    params: dict[str, Tensor], fraction: float, seed: int = 0
) -> dict[str, Tensor]:
    """Random mask of thesis Sec. 1.6: per layer, ceil(fraction * numel) >= 1 distinct indices.

    Each parameter tensor is sampled in proportion to its size, the count rounded up, so every layer
    has at least one entry. Drawn from a CPU ``torch.Generator`` seeded with ``seed`` (reproducible
    across devices); indices are sorted and returned on each parameter's device.

    Args:
        params: name -> parameter tensor.
        fraction: in (0, 1]; 1 keeps everything.
        seed: generator seed.

    Returns:
        name -> LongTensor of flat indices into that parameter.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"mask fraction must be in (0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(int(seed))
    mask = {}
    for name, p in params.items():
        n = p.numel()
        k = max(1, math.ceil(fraction * n))
        k = min(k, n)
        idx = torch.randperm(n, generator=gen)[:k].sort().values
        mask[name] = idx.to(p.device)
    return mask


def apply_mask(
    grads: dict[str, Tensor], mask: dict[str, Tensor] | None, batch: bool = False
) -> Tensor:
    """Flatten ``grads`` keeping only masked entries (all when ``mask`` is None)."""
    if mask is None:
        return flatten(grads, batch=batch)
    if batch:
        return torch.cat([g.reshape(g.shape[0], -1)[:, mask[n]] for n, g in grads.items()], dim=1)
    return torch.cat([g.reshape(-1)[mask[n]] for n, g in grads.items()])


# ------------------------------------------------------------------------------------- batch norm
class probing_mode:
    """Context manager: dropout etc. off (eval), normalization layers in ``norm_train`` mode.

    Restores every module's ``training`` flag on exit, so the caller's model is left as found.
    """

    def __init__(self, model: nn.Module, norm_train: bool):
        self.model = model
        self.norm_train = norm_train
        self._saved: list[tuple[nn.Module, bool]] = []

    def __enter__(self) -> nn.Module:
        self._saved = [(m, m.training) for m in self.model.modules()]
        self.model.eval()
        if self.norm_train:
            for m in self.model.modules():
                if isinstance(m, _BN_TYPES):
                    m.train()
        return self.model

    def __exit__(self, *exc: object) -> None:
        for m, flag in self._saved:
            m.training = flag


def _bn_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in model.named_modules():
        if isinstance(m, _BN_TYPES):
            yield name, m


def collect_batch_norm_stats(
    model: nn.Module, inputs: Tensor, return_output: bool = False
) -> dict[str, tuple[Tensor, Tensor]] | tuple[dict[str, tuple[Tensor, Tensor]], Tensor]:
    """Batch mean and biased variance seen by every BatchNorm layer in a train-mode forward pass.

    Runs on cloned buffers through ``functional_call`` so the model's running statistics are
    untouched. Returns module name -> (mean, var), each of shape (C,); with ``return_output`` also
    the model's output on the batch (equal to the frozen-statistics output of the same batch).
    """
    stats: dict[str, tuple[Tensor, Tensor]] = {}
    handles = []

    def make_hook(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].detach()
            dims = [0] + list(range(2, x.dim()))
            stats[name] = (x.mean(dims), x.var(dims, unbiased=False))

        return hook

    for name, m in _bn_modules(model):
        handles.append(m.register_forward_pre_hook(make_hook(name)))
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    try:
        with torch.no_grad(), probing_mode(model, norm_train=True):
            out = functional_call(model, (trainable_parameters(model), buffers), (inputs,), strict=False)
    finally:
        for h in handles:
            h.remove()
    return (stats, out) if return_output else stats


def frozen_buffers(model: nn.Module, stats: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """The model's buffers with each BN layer's running mean/var replaced by frozen batch stats.

    In eval mode BatchNorm computes (x - running_mean) / sqrt(running_var + eps); substituting the
    batch mean and biased variance reproduces the train-mode normalization of that batch exactly,
    but as a fixed affine map (examples no longer interact).
    """
    buffers = dict(model.named_buffers())
    for name, m in _bn_modules(model):
        if name not in stats:
            continue  # layer not reached by the forward pass
        if m.running_mean is None:
            raise NotImplementedError(
                f"bn_mode='frozen' needs running-stat buffers, but BatchNorm layer {name!r} has "
                "track_running_stats=False; use bn_mode='contribution'"
            )
        prefix = f"{name}." if name else ""
        mean, var = stats[name]
        buffers[prefix + "running_mean"] = mean
        buffers[prefix + "running_var"] = var
    return buffers


# ------------------------------------------------------------------------------ frozen-mode grads
def _check_loss(loss: Tensor) -> None:
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
        _check_loss(loss)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    flat = torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, leaves.values())
        ]
    )
    return flat, loss.detach()


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
        _check_loss(loss)
        (gx,) = torch.autograd.grad(loss * inputs.shape[0], [x])
    return gx.reshape(inputs.shape[0], -1)


# ------------------------------------------------------------------------- contribution-mode grads
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
    if isinstance(m, _BN_TYPES):
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
    elif isinstance(m, (*_BN_TYPES, nn.GroupNorm)):
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
    handles = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        records[id(module)].append((args[0].detach(), output))
        # hand a clone downstream so an in-place op after this layer cannot alter `output`
        return output.clone()

    for m in layers.values():
        handles.append(m.register_forward_hook(hook))
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    try:
        with torch.enable_grad(), probing_mode(model, norm_train=True):
            out = functional_call(model, (leaves, buffers), (inputs,), strict=False)
            loss = loss_fn(out, targets)
            _check_loss(loss)
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
    finally:
        for h in handles:
            h.remove()
    b = inputs.shape[0]
    grads = {}
    for name, p in params.items():
        m, pname = owner[name]
        c = contrib_by_layer.get(id(m), {}).get(pname)
        grads[name] = c if c is not None else torch.zeros(b, *p.shape, dtype=p.dtype, device=p.device)
    return apply_mask(grads, mask, batch=True), loss.detach()


# ------------------------------------------------------------------------------------ stable rank
def stable_rank(a: Tensor) -> float:
    """Stable (effective) rank R(A) = ||A||_F^2 / ||A||_2^2 (thesis Def. 3.6, eq. 3.18).

    ``a`` is (B, P) with one sample per row. Computed from the B x B Gram matrix A A^T in float64:
    ||A||_F^2 = tr(A A^T), ||A||_2^2 = its largest eigenvalue (cheaper and more accurate than an SVD
    of the P-dimensional matrix). Returns 0 for an all-zero matrix.
    """
    a64 = a.detach().to(torch.float64)
    gram = a64 @ a64.T
    top = torch.linalg.eigvalsh(gram)[-1].item()
    if top <= 0:
        return 0.0
    return float(torch.trace(gram).item() / top)


_GAUSSIAN_RANK_CACHE: dict[tuple[int, int], float] = {}


def wishart_gram(dim: int, df: int, generator: "np.random.Generator") -> "np.ndarray":
    """One exact sample of Y Y^T for a (dim x df) standard Gaussian Y, dim <= df (Bartlett, 1933).

    Y Y^T ~ Wishart(df, I_dim) = A A^T with A lower triangular, A_ii = sqrt(chi2(df - i)),
    A_ij ~ N(0, 1) below the diagonal: O(dim^2) work instead of O(dim^2 * df).
    """
    a = np.tril(generator.standard_normal((dim, dim)), k=-1)
    a[np.diag_indices(dim)] = np.sqrt(generator.chisquare(df - np.arange(dim)))
    return a @ a.T


def gaussian_stable_rank(rows: int, cols: int, samples: int = 64) -> float:
    """Mean stable rank R(Y) of a (rows x cols) standard Gaussian matrix, cached per shape.

    The reference of the relative gradient rank (thesis Def. 3.7): R(Y) depends only on the shape,
    so it is estimated once per shape (fixed seed) and cached. The Gram matrix Y Y^T is drawn exactly
    from its Wishart distribution with the Bartlett decomposition (:func:`wishart_gram`), so the cost
    does not grow with the parameter count; the non-zero spectra of Y Y^T and Y^T Y coincide, so the
    smaller side is used.
    """
    key = (int(rows), int(cols))
    if key not in _GAUSSIAN_RANK_CACHE:
        dim, df = min(key), max(key)
        gen = np.random.default_rng(1234)
        vals = []
        for _ in range(samples):
            eig = np.linalg.eigvalsh(wishart_gram(dim, df, gen))
            vals.append(float(eig.sum() / eig[-1]))
        _GAUSSIAN_RANK_CACHE[key] = float(np.mean(vals))
    return _GAUSSIAN_RANK_CACHE[key]
