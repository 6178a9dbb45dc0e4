"""Gradient-noise statistics: layer norm profiles, cross-seed alignment, covariance spectra, power laws,
Gaussianity of the stochastic-gradient noise (SGN), Berry-Esseen bounds, gradient-std tracking.

Sources (procedures, numbers and their inconsistencies: ``papers/notes-000-002.md`` and
``papers/notes-001-003.md`` of the project):

* [000] M. Roy, S. Roy, "Layer-Dependent Structure in Gradient Noise of Small Convolutional Networks":
  per-layer gradient norm (mean, std, CV = std/mean, early/late ratio), cross-seed directional
  alignment (mean pairwise cosine across independently initialized runs, bootstrap 95 % CI, chance
  baseline), per-layer covariance spectrum (lambda_1/lambda_10, lambda_1/lambda_100 with a padding
  rule, explained variance, effective rank at 90 %).
* [001] Z. Xie, Q.-Y. Tang, M. Sun, P. Li, "On the Overlooked Structure of Stochastic Gradients":
  the gradient history matrix of T minibatch gradients at fixed weights; power-law MLE (eq. 8) with a
  KS test (eq. 7, d_c = 1.36/sqrt(K)); dimension-wise power-law rates and iteration-wise Gaussian
  rates (``scipy.stats.normaltest`` on 100 points); power-law covariance spectra.
* [002] V.-D. Yun, "Insights from Gradient Dynamics: Gradient Autoscaled Normalization",
  arXiv:2509.03677: layer-wise and global gradient std over training (the optimizer itself is in
  :mod:`objectives.optim`).
* [003] Y. Wu, R. Luo, C. Zhang, J. Wang, Y. Yang, "Revisiting the Characteristics of Stochastic
  Gradient Noise and Dynamics": per-layer Shapiro-Wilk "Gaussianity percentage" of the SGN, point
  masses (dead weights), the Berry-Esseen bound with its kurtosis upper bound (eqs. 13, 19-21).

Vocabulary. A *layer* is one trainable parameter tensor (by default only tensors with ``ndim > 1``:
conv and linear weights, ``weights_only=True``). Its *depth* is the order in which the module that owns
it first runs in a forward pass (:func:`layer_order`). A *minibatch gradient* is the gradient of the
mean loss over a batch with BatchNorm in train mode (batch statistics, as in SGD; running buffers are
cloned, so untouched) and dropout off. The *SGN* of a weight is the spread of its minibatch gradients
across batches at fixed weights (iteration-wise, [001]); the spread of one gradient across parameters
(dimension-wise) is a different thing that [001] shows is heavy-tailed even when the SGN is Gaussian.

Everything here is a pure function of tensors or of ``(model, batches)``: no files, no plotting; the
model is evaluated through ``torch.func.functional_call`` and left bit-identical. Registered metrics
(one number each, on the probe batch): ``grad_norm_cv``, ``grad_depth_trend``, ``sgn_gaussianity``,
``sgn_berry_esseen``, ``spectrum_s``, ``spectrum_ks``. The other functions return dataclasses for the
``diagnose`` command.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize, special, stats
from torch import Tensor, nn

from .core import vectors as C
from .core.batch_norm import probing_mode
from .core.hooks import functional_forward, hooked, trainable_parameters
from .core.params import random_subset
from .core.probe import Probe, get_probe
from .registry import register_metric

__all__ = [
    # data collection
    "layer_order",
    "layer_gradients",
    "random_batches",
    "GradientHistory",
    "gradient_history",
    # [000] norms and depth
    "DepthTrend",
    "depth_trend",
    "NormProfile",
    "layer_norm_profile",
    # [000] cross-seed alignment
    "chance_cosine",
    "AlignmentResult",
    "cross_seed_alignment",
    # [000]/[001] spectra and power laws
    "gram_eigenvalues",
    "PowerLawFit",
    "fit_power_law",
    "Spectrum",
    "covariance_spectrum",
    "layer_spectra",
    # [001] history-matrix tests
    "AxisTests",
    "HistoryTests",
    "gradient_history_tests",
    # [003] Gaussianity and Berry-Esseen
    "GaussianityResult",
    "GaussianityProfile",
    "sgn_gaussianity_profile",
    "BERRY_ESSEEN_A0",
    "BerryEsseenResult",
    "berry_esseen_profile",
    # [002] tracking
    "GradientStdTracker",
    "global_gradient_std",
    "eligible_grads",
    # registered metrics
    "grad_norm_cv",
    "grad_depth_trend",
    "sgn_gaussianity",
    "sgn_berry_esseen",
    "spectrum_s",
    "spectrum_ks",
]

_P000 = "Roy & Roy, Layer-Dependent Structure in Gradient Noise of Small Convolutional Networks"
_P001 = "Xie, Tang, Sun & Li, On the Overlooked Structure of Stochastic Gradients"
_P002 = "Yun, Gradient Autoscaled Normalization, arXiv:2509.03677, 2025"
_P003 = "Wu, Luo, Zhang, Wang & Yang, Revisiting the Characteristics of Stochastic Gradient Noise and Dynamics"

#: Universal constant of the Berry-Esseen bound for i.i.d. summands (Shevtsova 2011: A_0 <= 0.4748).
BERRY_ESSEEN_A0 = 0.4748

Batch = tuple[Tensor, Tensor]


# ====================================================================================================
# Data collection
# ====================================================================================================
def _is_layer(p: Tensor, weights_only: bool) -> bool:
    return p.requires_grad and (p.dim() > 1 or not weights_only)


def layer_order(model: nn.Module, inputs: Tensor | None = None) -> list[str]:
    """Names of the trainable parameters, ordered by depth.

    With ``inputs``, depth is the order in which each parameter's owning module first runs in a
    forward pass of one example (eval mode, cloned buffers: the model is untouched); parameters whose
    module never runs come last. Without ``inputs``, registration (``named_parameters``) order.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    if inputs is None:
        return names
    owner: dict[int, list[str]] = {}
    modules: dict[int, nn.Module] = {}
    seen: set[str] = set()
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{mname}.{pname}" if mname else pname
            if full in names and full not in seen:
                owner.setdefault(id(m), []).append(full)
                modules[id(m)] = m
                seen.add(full)
    order: list[str] = []

    def hook(module: nn.Module, args: tuple) -> None:
        for n in owner.get(id(module), []):
            if n not in order:
                order.append(n)

    with hooked(((m, hook) for m in modules.values()), kind="forward_pre"), torch.no_grad(), \
            probing_mode(model, norm_train=False):
        functional_forward(model, inputs[:1])
    return order + [n for n in names if n not in order]


def layer_gradients(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """Minibatch gradient of the mean loss, per parameter tensor, flattened.

    BatchNorm in train mode (batch statistics, as in an SGD step) on cloned buffers, dropout off; the
    model's parameters, buffers, ``.grad`` and train/eval flags are left as found.

    Args:
        model, inputs, targets, loss_fn: the network, one batch, a mean-reduced loss.
        names: parameters to return (default: all trainable ones), in this order.

    Returns:
        name -> flat gradient (detached, on the model's device). An unused parameter gets zeros.

    Raises:
        ValueError: a non-scalar or non-finite loss.
    """
    params = trainable_parameters(model)
    names = list(params) if names is None else list(names)
    leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    with torch.enable_grad(), probing_mode(model, norm_train=True):
        out = functional_forward(model, inputs, leaves)
        loss = loss_fn(out, targets)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar (mean over the batch), got {tuple(loss.shape)}")
        if not torch.isfinite(loss):
            raise ValueError(f"the loss is not finite ({loss.item()})")
        grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
    return {
        n: (g if g is not None else torch.zeros_like(leaves[n])).detach().reshape(-1)
        for n, g in zip(names, grads)
    }


def random_batches(
    inputs: Tensor, targets: Tensor, batch_size: int, num_batches: int, seed: int = 0
) -> Iterator[Batch]:
    """``num_batches`` random minibatches of ``batch_size`` examples from ``(inputs, targets)``.

    Each batch is drawn without replacement, batches independently of each other (i.i.d. sampling of
    the SGN at fixed weights), from a CPU generator seeded with ``seed``.
    """
    n = inputs.shape[0]
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in 1..{n}, got {batch_size}")
    gen = torch.Generator().manual_seed(int(seed))
    for _ in range(int(num_batches)):
        idx = torch.randperm(n, generator=gen)[:batch_size].to(inputs.device)
        yield inputs[idx], targets[idx]


@dataclass
class GradientHistory:
    """T minibatch gradients at fixed weights, per layer (the "gradient history matrix" of [001]).

    Attributes:
        layers: name -> (T, d) float32 CPU tensor; d is the layer size, or the number of sampled
            entries when ``max_weights_per_layer`` was set. Ordered by depth.
        norms: name -> (T,) numpy array of the *full* layer gradient norms.
        sizes: name -> full number of entries of the layer.
        indices: name -> sampled flat indices (``None``: all entries).
        batch_size: examples per minibatch.
    """

    layers: dict[str, Tensor]
    norms: dict[str, np.ndarray]
    sizes: dict[str, int]
    indices: dict[str, Tensor | None]
    batch_size: int

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    @property
    def num_batches(self) -> int:
        return int(next(iter(self.layers.values())).shape[0]) if self.layers else 0

    def matrix(self, names: Sequence[str] | None = None) -> Tensor:
        """The (T, n) matrix of the chosen layers side by side (default: all)."""
        names = self.names if names is None else list(names)
        return torch.cat([self.layers[n] for n in names], dim=1)


def gradient_history(
    model: nn.Module,
    batches: Iterable[Batch],
    loss_fn: Any = F.cross_entropy,
    *,
    weights_only: bool = True,
    max_weights_per_layer: int | None = None,
    seed: int = 0,
) -> GradientHistory:
    """Collect the minibatch gradients of ``batches`` at the model's current weights (no update).

    One forward/backward per batch (see :func:`layer_gradients`). Cost: T training steps; memory
    T x (sum of the kept layer sizes) floats on the CPU.

    Args:
        model: the network (untouched).
        batches: iterable of ``(inputs, targets)``, all of the same size (e.g. :func:`random_batches`).
        loss_fn: mean-reduced loss.
        weights_only: only tensors with ``ndim > 1`` (default) or every trainable tensor.
        max_weights_per_layer: keep a fixed random subset of at most this many entries per layer
            (drawn once from ``seed``, reused for every batch); ``None`` keeps all.
        seed: seed of the entry subset.

    Raises:
        ValueError: no batches, batches of different sizes, no eligible layer, a non-finite loss.
    """
    it = iter(batches)
    try:
        first = next(it)
    except StopIteration:
        raise ValueError("gradient_history needs at least one batch") from None
    params = dict(model.named_parameters())
    names = [n for n in layer_order(model, first[0]) if _is_layer(params[n], weights_only)]
    if not names:
        raise ValueError("the model has no eligible layer (trainable tensors with ndim > 1)")
    gen = torch.Generator().manual_seed(int(seed))
    indices: dict[str, Tensor | None] = {}
    for n in names:
        size = params[n].numel()
        if max_weights_per_layer is not None and size > max_weights_per_layer:
            indices[n] = random_subset(size, int(max_weights_per_layer), gen)
        else:
            indices[n] = None
    rows: dict[str, list[Tensor]] = {n: [] for n in names}
    norms: dict[str, list[float]] = {n: [] for n in names}
    batch_size = int(first[0].shape[0])
    for x, y in _chain(first, it):
        if int(x.shape[0]) != batch_size:
            raise ValueError(f"all batches must have the same size: {batch_size} then {x.shape[0]}")
        grads = layer_gradients(model, x, y, loss_fn, names=names)
        for n in names:
            g = grads[n]
            norms[n].append(float(g.double().norm()))
            idx = indices[n]
            rows[n].append((g if idx is None else g[idx.to(g.device)]).float().cpu())
    return GradientHistory(
        layers={n: torch.stack(rows[n]) for n in names},
        norms={n: np.asarray(norms[n]) for n in names},
        sizes={n: int(params[n].numel()) for n in names},
        indices=indices,
        batch_size=batch_size,
    )


def _chain(first: Batch, rest: Iterator[Batch]) -> Iterator[Batch]:
    yield first
    yield from rest


# ====================================================================================================
# [000] Norm profile and depth trend
# ====================================================================================================
@dataclass
class DepthTrend:
    """How a per-layer quantity v_l changes with depth l = 1..L.

    Attributes:
        spearman: Spearman rank correlation rho(l, v_l), in [-1, 1]; -1 = strictly decreasing with
            depth. NaN when v is constant.
        log_slope: OLS slope b of ln v_l = a + b * u_l with normalized depth u_l = (l-1)/(L-1) in
            [0, 1]: exp(b) is the fitted last-to-first ratio. NaN if some v_l <= 0.
        num_layers: L.
    """

    spearman: float
    log_slope: float
    num_layers: int


def depth_trend(values: Sequence[float] | np.ndarray) -> DepthTrend:
    """Depth trend of per-layer values given in depth order (see :class:`DepthTrend`).

    Raises:
        ValueError: fewer than two layers or a non-finite value.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size < 2:
        raise ValueError(f"a depth trend needs at least 2 layers, got {v.size}")
    if not np.isfinite(v).all():
        raise ValueError("depth_trend got non-finite values")
    depth = np.arange(1, v.size + 1, dtype=np.float64)
    if np.ptp(v) == 0:
        rho = float("nan")
    else:
        rho = float(stats.spearmanr(depth, v).statistic)
    if (v > 0).all():
        u = (depth - 1) / (v.size - 1)
        slope = float(np.polyfit(u, np.log(v), 1)[0])
    else:
        slope = float("nan")
    return DepthTrend(spearman=rho, log_slope=slope, num_layers=int(v.size))


@dataclass
class NormProfile:
    """Per-layer gradient-norm statistics over steps ([000] Table 1).

    Arrays are aligned with ``layers`` (depth order). ``std`` uses ddof = 1 (NaN for one step);
    ``cv = std / mean``; ``early``/``late`` are the mean norms over the first/last ``early_steps`` /
    ``late_steps`` steps and ``ratio = early / late``. ``mean_trend`` and ``cv_trend`` are the depth
    trends of the mean norm and of the CV ([000]: norms fall and CV rises with depth).
    """

    layers: list[str]
    mean: np.ndarray
    std: np.ndarray
    cv: np.ndarray
    early: np.ndarray
    late: np.ndarray
    ratio: np.ndarray
    num_steps: int
    early_steps: int
    late_steps: int
    mean_trend: DepthTrend | None
    cv_trend: DepthTrend | None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per layer (for a table)."""
        return [
            {
                "layer": n, "mean": float(self.mean[i]), "std": float(self.std[i]), "cv": float(self.cv[i]),
                "early": float(self.early[i]), "late": float(self.late[i]), "ratio": float(self.ratio[i]),
            }
            for i, n in enumerate(self.layers)
        ]


def layer_norm_profile(
    norms: Mapping[str, Sequence[float] | np.ndarray] | GradientHistory,
    *,
    early: float = 0.2,
    late: float = 0.2,
) -> NormProfile:
    """Per-layer mean, std, CV, early/late means and ratio of gradient norms over steps ([000] Sec. 4.1).

    [000] does not define its early/late epoch windows; here they are the first ``early`` and last
    ``late`` fractions of the recorded steps (at least one step each).

    Args:
        norms: layer -> norms over steps, in depth order (e.g. ``GradientStdTracker.layer_norm`` or a
            :class:`GradientHistory`, whose ``norms`` are then used).
        early, late: window fractions in (0, 1].

    Raises:
        ValueError: no layers, layers with different step counts, bad window fractions.
    """
    if isinstance(norms, GradientHistory):
        norms = norms.norms
    if not norms:
        raise ValueError("layer_norm_profile needs at least one layer")
    if not (0 < early <= 1 and 0 < late <= 1):
        raise ValueError(f"early and late must be in (0, 1], got {early}, {late}")
    names = list(norms)
    table = [np.asarray(norms[n], dtype=np.float64).reshape(-1) for n in names]
    t = table[0].size
    if t == 0 or any(a.size != t for a in table):
        raise ValueError("every layer needs the same, non-zero number of steps")
    x = np.stack(table, axis=1)  # (T, L)
    mean = x.mean(0)
    std = x.std(0, ddof=1) if t > 1 else np.full(len(names), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = std / mean
        ke, kl = max(1, round(early * t)), max(1, round(late * t))
        e, l_ = x[:ke].mean(0), x[-kl:].mean(0)
        ratio = e / l_
    mean_trend = depth_trend(mean) if len(names) >= 2 and np.isfinite(mean).all() else None
    cv_trend = depth_trend(cv) if len(names) >= 2 and np.isfinite(cv).all() else None
    return NormProfile(names, mean, std, cv, e, l_, ratio, t, ke, kl, mean_trend, cv_trend)


# ====================================================================================================
# [000] Cross-seed alignment
# ====================================================================================================
def chance_cosine(dim: int, exact: bool = True) -> float:
    """E|cos(u, v)| of two independent isotropic random vectors in R^dim (the chance level of [000]).

    Exact: Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)); for large d ~= sqrt(2 / (pi d)) (``exact=False``).
    [000]'s printed baseline (0.006-0.012) does not match this formula for its layer sizes.
    """
    d = int(dim)
    if d < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    if not exact:
        return math.sqrt(2.0 / (math.pi * d))
    return math.exp(math.lgamma(d / 2) - math.lgamma((d + 1) / 2)) / math.sqrt(math.pi)


@dataclass
class AlignmentResult:
    """Cross-seed directional alignment of one layer ([000] Table 2).

    Attributes:
        layer: parameter name; dim: its size.
        mean_cosine: mean over seed pairs i < j (and over batches) of cos(g_i, g_j).
        ci_low, ci_high: bootstrap percentile interval of ``mean_cosine`` (seeds resampled).
        mean_abs_cosine: the same with |cos|.
        chance: E|cos| of random vectors of this dimension (:func:`chance_cosine`).
        num_seeds, num_batches: S and the number of shared batches.
        cosines: (S, S) matrix of batch-averaged cosines (diagonal 1).
    """

    layer: str
    dim: int
    mean_cosine: float
    ci_low: float
    ci_high: float
    mean_abs_cosine: float
    chance: float
    num_seeds: int
    num_batches: int
    cosines: np.ndarray = field(repr=False)

    @property
    def excess(self) -> float:
        """mean |cos| above chance."""
        return self.mean_abs_cosine - self.chance


def _offdiag_mean(c: np.ndarray, idx: np.ndarray) -> float:
    sub = c[np.ix_(idx, idx)]
    distinct = idx[:, None] != idx[None, :]
    upper = np.triu(np.ones_like(distinct), k=1) & distinct
    return float(sub[upper].mean()) if upper.any() else float("nan")


def cross_seed_alignment(
    make_model: Callable[[int], nn.Module],
    batches: Sequence[Batch],
    loss_fn: Any = F.cross_entropy,
    *,
    seeds: int | Sequence[int] = 5,
    weights_only: bool = True,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, AlignmentResult]:
    """Mean pairwise cosine of each layer's minibatch gradient across independently initialized copies.

    [000] Sec. 4.2: S copies ``make_model(s)`` (same architecture, different initialization seeds)
    evaluated on the *same* batches at their initial weights; for layer l and batch b,
    cos(g_{l,i,b}, g_{l,j,b}) for every seed pair i < j; averaged over batches, then over pairs. The
    CI resamples *seeds* with replacement (``num_bootstrap`` times; pairs of a seed with itself are
    skipped) — pairs sharing a seed are not independent, so resampling the S(S-1)/2 pair values as
    [000] seems to do would understate the interval. To track alignment during training, call this
    on copies trained to the same step.

    [000] reports cosines near 0.9 across seeds; with permutation-symmetric hidden units, independent
    initializations should give cosines near chance except where the gradient is pinned by the data
    (first layer: input statistics; last layer: labels). Compare with ``chance``.

    Args:
        make_model: seed -> model (e.g. ``lambda s: space.build({**config, "seed": s}, ...)``).
        batches: shared ``(inputs, targets)`` batches.
        loss_fn: mean-reduced loss.
        seeds: number of seeds S (0..S-1) or the seeds themselves (S >= 2).
        weights_only: only tensors with ``ndim > 1``.
        num_bootstrap: bootstrap resamples (0: no interval, NaN bounds).
        confidence: interval level (0.95).
        seed: seed of the bootstrap.

    Returns:
        layer name -> :class:`AlignmentResult`, in depth order of the first model.

    Raises:
        ValueError: fewer than two seeds, no batch, models with different layers, a zero gradient.
    """
    seed_list = list(range(int(seeds))) if isinstance(seeds, int) else [int(s) for s in seeds]
    if len(seed_list) < 2:
        raise ValueError(f"cross-seed alignment needs at least 2 seeds, got {len(seed_list)}")
    batches = list(batches)
    if not batches:
        raise ValueError("cross_seed_alignment needs at least one batch")
    models = [make_model(s) for s in seed_list]
    params = dict(models[0].named_parameters())
    names = [n for n in layer_order(models[0], batches[0][0]) if _is_layer(params[n], weights_only)]
    for m in models[1:]:
        other = dict(m.named_parameters())
        if [n for n in names if n not in other or other[n].shape != params[n].shape]:
            raise ValueError("make_model returned models with different layers for different seeds")
    s_count = len(models)
    acc = {n: np.zeros((s_count, s_count)) for n in names}
    for x, y in batches:
        grads = [layer_gradients(m, x, y, loss_fn, names=names) for m in models]
        for n in names:
            g = torch.stack([gr[n] for gr in grads]).double()
            norms = g.norm(dim=1)
            if (norms == 0).any():
                raise ValueError(f"layer {n!r} has a zero gradient for some seed: cosine undefined")
            u = g / norms[:, None]
            acc[n] += (u @ u.T).cpu().numpy()
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    out: dict[str, AlignmentResult] = {}
    all_idx = np.arange(s_count)
    boots = [rng.integers(0, s_count, s_count) for _ in range(int(num_bootstrap))]
    for n in names:
        c = acc[n] / len(batches)
        mean = _offdiag_mean(c, all_idx)
        mean_abs = _offdiag_mean(np.abs(c), all_idx)
        values = np.array([_offdiag_mean(c, b) for b in boots])
        values = values[np.isfinite(values)]
        lo, hi = (np.quantile(values, [alpha, 1 - alpha]) if values.size else (np.nan, np.nan))
        d = int(params[n].numel())
        out[n] = AlignmentResult(n, d, mean, float(lo), float(hi), mean_abs, chance_cosine(d),
                                 s_count, len(batches), c)
    return out


# ====================================================================================================
# [000]/[001] Covariance spectra and power laws
# ====================================================================================================
def gram_eigenvalues(g: Tensor | np.ndarray, center: bool = True) -> np.ndarray:
    """Eigenvalues of the covariance (1/n) Gc^T Gc of an (n, d) sample matrix, descending, in float64.

    Gram trick: the d x d covariance and the n x n Gram matrix (1/n) Gc Gc^T share their nonzero
    eigenvalues, so the smaller of the two is diagonalized. ``center`` subtracts the row mean
    (Gc = G - 1 gbar^T: the covariance of the noise); ``False`` gives the second moment C_m of [001].
    Returns min(n, d) values (the centred matrix has rank <= n - 1, so the last is ~0); tiny negative
    round-off is clipped to 0.
    """
    a = torch.as_tensor(np.asarray(g) if not isinstance(g, Tensor) else g.detach()).to(torch.float64)
    if a.dim() != 2 or a.shape[0] < 1:
        raise ValueError(f"expected an (n, d) matrix with n >= 1, got shape {tuple(a.shape)}")
    n, d = a.shape
    if center:
        a = a - a.mean(0, keepdim=True)
    m = (a.T @ a) if d <= n else (a @ a.T)
    ev = torch.linalg.eigvalsh(m / n).flip(0).clamp_min(0.0)
    return ev.cpu().numpy()


@dataclass
class PowerLawFit:
    """Continuous power-law fit p(x) ~ x^-beta of the top-K values ([001] eqs. 7-8).

    Attributes:
        beta: MLE beta = 1 + K / sum_i ln(x_i / x_min), x_min = the K-th largest value.
        s: Zipf exponent of the rank plot x_k ~ k^-s, s = 1 / (beta - 1).
        k: K, the number of values fitted.
        x_min: the K-th largest value.
        ks_distance: sup |F_fitted - F_empirical| over the K values (eq. 7).
        ks_critical: 1.36 / sqrt(K) (alpha = 0.05; [001] Tables use 0.0430 for K = 1000).
        passes: ``ks_distance < ks_critical`` ([001]'s "power-law" verdict; lenient, since the
            parameters are fitted on the same data and no bootstrap p-value is computed).
        loglik_ratio: R = sum_i [ln p_powerlaw(x_i) - ln p_lognormal(x_i)], both truncated at x_min
            and fitted by maximum likelihood (Clauset et al. 2009 Sec. 5; beyond [001]). R > 0
            favours the power law.
        lr_p_value: Vuong's two-sided p-value erfc(|R| / sqrt(2 K var(d_i))) of the sign of R.
        preferred: ``"power_law"``/``"lognormal"`` when ``lr_p_value < 0.1``, else ``"undecided"``.
    """

    beta: float
    s: float
    k: int
    x_min: float
    ks_distance: float
    ks_critical: float
    passes: bool
    loglik_ratio: float = float("nan")
    lr_p_value: float = float("nan")
    preferred: str = "undecided"


def _top_k(values: np.ndarray | Tensor, k: int | None) -> np.ndarray:
    x = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64)
    x = x.reshape(-1)
    x = x[np.isfinite(x) & (x > 0)]
    if k is not None and int(k) < x.size:
        x = np.partition(x, x.size - int(k))[x.size - int(k):]
    return np.sort(x)[::-1]


def _pareto_beta_ks(top: np.ndarray) -> tuple[float, float]:
    """(beta, KS distance) of the continuous power law fitted to descending values ``top``."""
    k = top.size
    x_min = top[-1]
    logs = np.log(top / x_min).sum()
    if logs <= 0:
        return float("inf"), float("nan")
    beta = 1.0 + k / logs
    asc = top[::-1]
    cdf = 1.0 - (asc / x_min) ** (1.0 - beta)
    i = np.arange(1, k + 1)
    ks = float(max((i / k - cdf).max(), (cdf - (i - 1) / k).max()))
    return float(beta), ks


def _lognormal_comparison(top: np.ndarray, beta: float) -> tuple[float, float]:
    """(R, p) of the Vuong likelihood-ratio test power law vs lognormal, both truncated at x_min."""
    x_min = top[-1]
    lx = np.log(top)
    lmin = math.log(x_min)
    ll_pl = math.log(beta - 1) - lmin - beta * (lx - lmin)

    def ll_ln(theta: np.ndarray) -> np.ndarray:
        mu, log_sigma = theta
        sigma = math.exp(log_sigma)
        z = (lx - mu) / sigma
        tail = special.log_ndtr(-(lmin - mu) / sigma)
        return -0.5 * z**2 - lx - log_sigma - 0.5 * math.log(2 * math.pi) - tail

    mu0 = float(lx.mean())
    s0 = float(max(lx.std(), 1e-3))
    bounds = [(lmin - 50 * max(s0, 1.0), float(lx.max()) + 10 * s0), (math.log(s0) - 7, math.log(s0) + 5)]
    best = None
    for start in ((mu0, math.log(s0)), (lmin, math.log(s0) + 1), (lmin - 5 * s0, math.log(s0) + 1.5)):
        res = optimize.minimize(lambda th: -ll_ln(th).sum(), np.array(start), method="L-BFGS-B",
                                bounds=bounds)
        if best is None or res.fun < best.fun:
            best = res
    diff = ll_pl - ll_ln(best.x)
    r = float(diff.sum())
    sd = float(diff.std())
    p = float(special.erfc(abs(r) / (sd * math.sqrt(2 * top.size)))) if sd > 0 else float("nan")
    return r, p


def fit_power_law(
    values: np.ndarray | Tensor | Sequence[float],
    k: int | None = 1000,
    *,
    compare_lognormal: bool = True,
) -> PowerLawFit:
    """Fit a power law to the K largest positive values ([001] eq. 8, KS test eq. 7).

    [001] fits the top K = 1000 values (eigenvalues, or |g| of a gradient vector) with x_min fixed at
    the K-th largest (not Clauset's KS-optimal x_min) and accepts the power law when the KS distance
    is below 1.36/sqrt(K). The likelihood-ratio comparison with a truncated lognormal is an addition
    (``compare_lognormal``). Non-positive and non-finite values are dropped.

    Args:
        values: sample (any order).
        k: K (``None``: all positive values); fewer values than K use them all.
        compare_lognormal: also fit the lognormal and run the Vuong test.

    Raises:
        ValueError: fewer than 3 positive values, or all top-K values equal.
    """
    top = _top_k(values, k)
    if top.size < 3:
        raise ValueError(f"a power-law fit needs at least 3 positive values, got {top.size}")
    beta, ks = _pareto_beta_ks(top)
    if not math.isfinite(beta):
        raise ValueError("the top values are all equal: no power-law fit")
    crit = 1.36 / math.sqrt(top.size)
    fit = PowerLawFit(beta=beta, s=1.0 / (beta - 1.0), k=int(top.size), x_min=float(top[-1]),
                      ks_distance=ks, ks_critical=crit, passes=bool(ks < crit))
    if compare_lognormal:
        r, p = _lognormal_comparison(top, beta)
        fit.loglik_ratio, fit.lr_p_value = r, p
        if p < 0.1:
            fit.preferred = "power_law" if r > 0 else "lognormal"
    return fit


@dataclass
class Spectrum:
    """Covariance spectrum of one layer or model ([000] Table 3, Fig. 6; [001] Sec. 4).

    Attributes:
        eigenvalues: descending, the ``available`` ones (> rtol * lambda_1).
        available: number m of numerically nonzero eigenvalues (<= min(n - 1, d) when centred).
        ratio_10, ratio_100: lambda_1 / lambda_min(10, m), lambda_1 / lambda_min(100, m) ([000]'s
            padding rule: "the first 10 and 100 components or the maximum available"; a spectrum with
            one component gives 1.0).
        explained_top10: fraction of the variance in the top 10 components (Fig. 3 caption).
        explained_top10pct: the fraction in the top ceil(10 % of m) components (Table 3 heading).
        effective_rank_90: fewest components explaining >= 90 % of the variance.
        effective_rank_90_fraction: that count / m ([000] Table 4 reports this as a percentage).
        stable_rank: sum lambda / lambda_1 (= ||Gc||_F^2 / ||Gc||_2^2).
        entropy_rank: exp(entropy of lambda / sum lambda).
        skewness: sample skewness of the eigenvalues ([000] Table 3; its variable is unstated).
        power_law: :func:`fit_power_law` of the eigenvalues (None when m < 3).
        num_samples, dim: n and d of the sample matrix.
    """

    eigenvalues: np.ndarray = field(repr=False)
    available: int
    ratio_10: float
    ratio_100: float
    explained_top10: float
    explained_top10pct: float
    effective_rank_90: int
    effective_rank_90_fraction: float
    stable_rank: float
    entropy_rank: float
    skewness: float
    power_law: PowerLawFit | None
    num_samples: int
    dim: int

    def summary(self) -> dict[str, Any]:
        """Scalars only (no eigenvalue array), the power-law fit flattened with a ``pl_`` prefix."""
        d = {k: v for k, v in asdict(self).items() if k not in ("eigenvalues", "power_law")}
        if self.power_law is not None:
            d.update({f"pl_{k}": v for k, v in asdict(self.power_law).items()})
        return d


def covariance_spectrum(
    g: Tensor | np.ndarray,
    *,
    center: bool = True,
    energy: float = 0.9,
    fit_k: int | None = 1000,
    compare_lognormal: bool = True,
    rtol: float | None = None,
) -> Spectrum:
    """Spectrum statistics of the covariance of the rows of ``g`` (n samples x d entries).

    The rows are per-example gradients, minibatch gradients (a :class:`GradientHistory` layer or
    ``.matrix()``), or [000]'s per-layer gradients pooled over seeds and steps. Eigenvalues by the
    Gram trick (:func:`gram_eigenvalues`): n x n when n < d. Cost O(n^2 d + n^3).

    Args:
        g: (n, d) matrix, n >= 2.
        center: covariance (default) or second moment.
        energy: variance fraction of the effective rank (0.9 in [000]).
        fit_k: K of the power-law fit ([001]: 1000).
        compare_lognormal: run the lognormal likelihood-ratio comparison.
        rtol: eigenvalues <= rtol * lambda_1 count as zero (round-off of a rank-deficient matrix,
            e.g. the null directions of a weight followed by BatchNorm). Default: 1e-8 for float32
            or lower-precision samples (1e-4 in singular values), 1e-13 for float64.

    Raises:
        ValueError: fewer than 2 rows or an all-zero spectrum (e.g. identical rows when centred).
    """
    ev = gram_eigenvalues(g, center=center)
    n, d = int(np.shape(g)[0]), int(np.shape(g)[1])
    if rtol is None:
        f64 = g.dtype == torch.float64 if isinstance(g, Tensor) else np.asarray(g).dtype == np.float64
        rtol = 1e-13 if f64 else 1e-8
    if n < 2 and center:
        raise ValueError("a centred covariance needs at least 2 samples")
    if ev.size == 0 or ev[0] <= 0:
        raise ValueError("the covariance is zero (identical samples?): no spectrum")
    ev = ev[ev > rtol * ev[0]]
    m = int(ev.size)
    total = float(ev.sum())
    cum = np.cumsum(ev) / total
    eff = int(np.searchsorted(cum, energy - 1e-12) + 1)
    p = ev / total
    entropy_rank = float(math.exp(-(p * np.log(p)).sum()))
    skew = float(stats.skew(ev)) if m >= 3 and np.ptp(ev) > 0 else float("nan")
    return Spectrum(
        eigenvalues=ev,
        available=m,
        ratio_10=float(ev[0] / ev[min(10, m) - 1]),
        ratio_100=float(ev[0] / ev[min(100, m) - 1]),
        explained_top10=float(cum[min(10, m) - 1]),
        explained_top10pct=float(cum[max(1, math.ceil(0.1 * m)) - 1]),
        effective_rank_90=eff,
        effective_rank_90_fraction=eff / m,
        stable_rank=total / float(ev[0]),
        entropy_rank=entropy_rank,
        skewness=skew,
        power_law=(fit_power_law(ev, fit_k, compare_lognormal=compare_lognormal)
                   if m >= 3 and np.ptp(ev) > 0 else None),
        num_samples=n,
        dim=d,
    )


def layer_spectra(history: GradientHistory | Mapping[str, Tensor], **options: Any) -> dict[str, Spectrum]:
    """:func:`covariance_spectrum` of every layer of a history (``options`` are passed on).

    Layers whose spectrum is undefined (all-zero noise) are left out.
    """
    layers = history.layers if isinstance(history, GradientHistory) else history
    out = {}
    for n, g in layers.items():
        try:
            out[n] = covariance_spectrum(g, **options)
        except ValueError:
            continue
    return out


# ====================================================================================================
# [001] Dimension-wise and iteration-wise tests on a gradient history matrix
# ====================================================================================================
@dataclass
class AxisTests:
    """Power-law and Gaussianity rates over the vectors of one axis of the history matrix ([001] Table 1).

    Attributes:
        axis: ``"dimension"`` (each vector = one minibatch gradient over the n parameters) or
            ``"iteration"`` (each vector = one parameter over the T minibatches: the SGN).
        power_law_rate: % of tested vectors whose top-K |values| pass the KS test.
        mean_ks: mean KS distance; ks_critical: 1.36/sqrt(K); k: K (min(k, vector length)).
        gaussian_rate: % of tested vectors with ``normaltest`` p > alpha on ``normal_points``
            random entries (whitened); mean_p: mean p-value.
        tested: vectors tested; dead: constant vectors skipped (no spread: not Gaussian, not tested).
    """

    axis: str
    power_law_rate: float
    mean_ks: float
    ks_critical: float
    k: int
    gaussian_rate: float
    mean_p: float
    normal_points: int
    tested: int
    dead: int


@dataclass
class HistoryTests:
    """Both axes of [001]'s analysis of a (T, n) gradient history matrix."""

    dimension: AxisTests
    iteration: AxisTests
    num_batches: int
    num_params: int


def _axis_tests(
    vectors: np.ndarray, axis: str, k: int, normal_points: int, alpha: float, rng: np.random.Generator
) -> AxisTests:
    """Rates over the rows of ``vectors`` (V, L)."""
    length = vectors.shape[1]
    dead = np.ptp(vectors, axis=1) == 0
    live = vectors[~dead]
    m = min(int(normal_points), length)
    if m < 20:
        raise ValueError(f"the normality test needs at least 20 points per vector, got {m}")
    kk = min(int(k), length)
    if kk < 3:
        raise ValueError(f"the power-law test needs K >= 3 values per vector, got {kk}")
    passes, ks_values = [], []
    for v in live:
        top = _top_k(np.abs(v), kk)
        if top.size < 3:
            passes.append(False)
            continue
        beta, ks = _pareto_beta_ks(top)
        ok = math.isfinite(ks) and ks < 1.36 / math.sqrt(top.size)
        passes.append(bool(ok))
        if math.isfinite(ks):
            ks_values.append(ks)
    if live.shape[0]:
        pick = np.stack([rng.choice(length, m, replace=False) for _ in range(live.shape[0])])
        sample = np.take_along_axis(live, pick, axis=1)
        sample = sample - sample.mean(1, keepdims=True)
        sd = sample.std(1, keepdims=True)
        sd[sd == 0] = 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            pvals = stats.normaltest(sample / sd, axis=1).pvalue
        pvals = np.nan_to_num(pvals, nan=0.0)  # a constant subsample: not Gaussian
        gaussian_rate, mean_p = float(100 * np.mean(pvals > alpha)), float(np.mean(pvals))
        pl_rate = float(100 * np.mean(passes))
    else:
        gaussian_rate = mean_p = pl_rate = float("nan")
    return AxisTests(
        axis=axis, power_law_rate=pl_rate,
        mean_ks=float(np.mean(ks_values)) if ks_values else float("nan"),
        ks_critical=1.36 / math.sqrt(kk), k=kk, gaussian_rate=gaussian_rate, mean_p=mean_p,
        normal_points=m, tested=int(live.shape[0]), dead=int(dead.sum()),
    )


def gradient_history_tests(
    history: GradientHistory | Tensor | np.ndarray,
    *,
    k: int = 1000,
    normal_points: int = 100,
    alpha: float = 0.05,
    max_vectors: int | None = 1000,
    seed: int = 0,
) -> HistoryTests:
    """Dimension-wise and iteration-wise power-law and Gaussian rates of a history matrix ([001] Sec. 3).

    For each vector: the KS power-law test on the top-K magnitudes |g| (K = min(k, length): [001]
    uses 1000, and K = T = 200 for its ResNet-18 rows), and D'Agostino-Pearson's ``normaltest`` on
    ``normal_points`` random signed entries after whitening (p > alpha = "Gaussian"; [001] App. B.2;
    its eq. 9 calls the K^2 statistic the p-value and its text states the decision backwards — the
    tables follow the standard rule used here). Rates are percentages of the tested vectors;
    constant vectors (dead weights) are counted apart. The Gaussian rate of a perfectly Gaussian
    sample is ~95 % (1 - alpha), not 100 %.

    Args:
        history: a :class:`GradientHistory` (all its layers side by side) or a (T, n) matrix.
        k: K of the power-law test.
        normal_points: entries per normality test (fixed, so rates are comparable).
        alpha: significance level.
        max_vectors: at most this many parameters (columns) are tested iteration-wise (random).
        seed: seed of the column and entry sampling.
    """
    g = history.matrix() if isinstance(history, GradientHistory) else history
    a = np.asarray(g.detach().cpu() if isinstance(g, Tensor) else g, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a (T, n) matrix, got shape {a.shape}")
    rng = np.random.default_rng(seed)
    t, n = a.shape
    cols = np.arange(n)
    if max_vectors is not None and n > max_vectors:
        cols = np.sort(rng.choice(n, int(max_vectors), replace=False))
    dim = _axis_tests(a, "dimension", k, normal_points, alpha, rng)
    it = _axis_tests(a[:, cols].T, "iteration", k, normal_points, alpha, rng)
    return HistoryTests(dimension=dim, iteration=it, num_batches=t, num_params=n)


# ====================================================================================================
# [003] Shapiro-Wilk Gaussianity percentage and Berry-Esseen bound
# ====================================================================================================
@dataclass
class GaussianityResult:
    """Shapiro-Wilk Gaussianity of one layer's SGN ([003] Tables 1-4).

    Attributes:
        layer: name.
        percent: 100 * gaussian / tested (NaN when nothing was tested).
        normalized: percent / (100 (1 - alpha)): 1 is the ceiling of a perfectly Gaussian layer.
        gaussian: weights with SW p-value > alpha; tested: non-dead weights tested.
        dead: weights whose minibatch gradient is constant over the samples (point mass, e.g. dead
            ReLU units); Shapiro-Wilk would call them Gaussian ([003]) — counted apart here.
        total: weights considered (after subsampling); num_samples: minibatch gradients per weight
            (the test's sample size M; the percentage falls as M grows, so keep it fixed).
    """

    layer: str
    percent: float
    normalized: float
    gaussian: int
    tested: int
    dead: int
    total: int
    num_samples: int


@dataclass
class GaussianityProfile:
    """Per-layer :class:`GaussianityResult` and the pooled percentage over all tested weights."""

    layers: dict[str, GaussianityResult]
    percent: float
    normalized: float
    gaussian: int
    tested: int
    dead: int
    num_samples: int
    alpha: float
    batch_size: int | None = None


def _as_layer_dict(x: GradientHistory | Mapping[str, Tensor] | Tensor | np.ndarray) -> dict[str, np.ndarray]:
    if isinstance(x, GradientHistory):
        x = x.layers
    if isinstance(x, (Tensor, np.ndarray)):
        x = {"all": x}
    return {
        n: np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v, dtype=np.float64).reshape(len(v), -1)
        for n, v in x.items()
    }


def sgn_gaussianity_profile(
    samples: GradientHistory | Mapping[str, Tensor] | Tensor | np.ndarray,
    *,
    alpha: float = 0.05,
    max_weights: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
) -> GaussianityProfile:
    """Per-layer percentage of weights whose gradient noise passes Shapiro-Wilk ([003] Sec. 4).

    For every weight, its M minibatch gradients (at fixed weights) are tested with
    ``scipy.stats.shapiro`` (AS R94, as in [003]); the weight is Gaussian when p > alpha. SW is
    location-scale invariant, so centring by the full-batch or the sample mean does not change the
    verdict. Weights with a constant gradient are *dead* (a point mass, which SW reports as
    p = 1), excluded from the percentage and counted apart. [003] samples 200 or 600 minibatches;
    its percentages are lower at 600 (more power), so compare values only at equal M.

    Args:
        samples: a :class:`GradientHistory` (``batch_size`` is taken from it), a mapping layer ->
            (M, d) matrix, or one (M, d) matrix; 3 <= M <= 5000.
        alpha: significance level (0.05).
        max_weights: test at most this many random weights per layer (``None``: all).
        seed: seed of the weight subsample.
        batch_size: recorded in the result (the minibatch size of the samples).

    Raises:
        ValueError: M outside 3..5000.
    """
    if isinstance(samples, GradientHistory) and batch_size is None:
        batch_size = samples.batch_size
    layers = _as_layer_dict(samples)
    rng = np.random.default_rng(seed)
    results: dict[str, GaussianityResult] = {}
    m_count = None
    for name, x in layers.items():
        m = x.shape[0]
        if not 3 <= m <= 5000:
            raise ValueError(f"Shapiro-Wilk needs 3..5000 samples per weight, got {m} for layer {name!r}")
        m_count = m
        if max_weights is not None and x.shape[1] > max_weights:
            x = x[:, np.sort(rng.choice(x.shape[1], int(max_weights), replace=False))]
        dead = np.ptp(x, axis=0) == 0
        live = x[:, ~dead]
        if live.shape[1]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                pvals = np.atleast_1d(stats.shapiro(live, axis=0).pvalue)
            gaussian = int(np.sum(pvals > alpha))
        else:
            gaussian = 0
        tested = int(live.shape[1])
        pct = 100.0 * gaussian / tested if tested else float("nan")
        results[name] = GaussianityResult(name, pct, pct / (100 * (1 - alpha)), gaussian, tested,
                                          int(dead.sum()), int(x.shape[1]), m)
    gaussian = sum(r.gaussian for r in results.values())
    tested = sum(r.tested for r in results.values())
    pct = 100.0 * gaussian / tested if tested else float("nan")
    return GaussianityProfile(results, pct, pct / (100 * (1 - alpha)), gaussian, tested,
                              sum(r.dead for r in results.values()), int(m_count or 0), alpha, batch_size)


@dataclass
class BerryEsseenResult:
    """Berry-Esseen quantities of one layer's per-example gradients ([003] eqs. 13, 17-21).

    Per weight, with z = (g_s - mean) / sigma over the n per-example gradients g_s (the summands of
    a minibatch gradient): rho3 = E|z|^3 (= beta / sigma^3) and its upper bound sqrt(E z^4) =
    sqrt(kurtosis) (eq. 21). The bound on the sup-distance between the CDF of the standardized
    minibatch gradient of ``batch_size`` examples and the normal CDF is A_0 * rho3 / sqrt(B) (eq. 13);
    ``bound_*`` use the kurtosis upper bound A_0 sqrt(E z^4) / sqrt(B), as [003] proposes.
    Medians and 90th percentiles are over the non-dead weights of the layer.
    """

    layer: str
    rho3_median: float
    rho3_p90: float
    kurtosis_root_median: float
    kurtosis_root_p90: float
    bound_median: float
    bound_p90: float
    tested: int
    dead: int
    num_samples: int
    batch_size: int


def _standardized_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho3, sqrt(E z^4), dead mask) per column of x (n, d), population moments."""
    dead = np.ptp(x, axis=0) == 0
    live = x[:, ~dead]
    z = live - live.mean(0)
    sd = np.sqrt((z**2).mean(0))
    z = z / sd
    return np.abs(z**3).mean(0), np.sqrt((z**4).mean(0)), dead


def berry_esseen_profile(
    per_example: Mapping[str, Tensor] | Tensor | np.ndarray,
    batch_size: int,
    *,
    a0: float = BERRY_ESSEEN_A0,
    max_weights: int | None = None,
    seed: int = 0,
) -> dict[str, BerryEsseenResult]:
    """Per-layer Berry-Esseen bound of the SGN at minibatch size ``batch_size`` ([003] Sec. 3).

    Args:
        per_example: layer -> (n, d) per-example gradients (n >= 4), or one matrix.
        batch_size: B of the bound A_0 * rho / sqrt(B).
        a0: the universal constant (0.4748; [003] leaves it unspecified).
        max_weights: at most this many random weights per layer.
        seed: seed of the subsample.

    Raises:
        ValueError: fewer than 4 samples or a bad batch size.
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    layers = _as_layer_dict(per_example)
    rng = np.random.default_rng(seed)
    out = {}
    for name, x in layers.items():
        if x.shape[0] < 4:
            raise ValueError(f"need at least 4 per-example gradients, got {x.shape[0]}")
        if max_weights is not None and x.shape[1] > max_weights:
            x = x[:, np.sort(rng.choice(x.shape[1], int(max_weights), replace=False))]
        rho3, kr, dead = _standardized_moments(x)
        scale = a0 / math.sqrt(int(batch_size))
        if rho3.size:
            q = lambda v, p: float(np.quantile(v, p))  # noqa: E731
            res = BerryEsseenResult(name, q(rho3, .5), q(rho3, .9), q(kr, .5), q(kr, .9),
                                    scale * q(kr, .5), scale * q(kr, .9), int(rho3.size), int(dead.sum()),
                                    int(x.shape[0]), int(batch_size))
        else:
            nan = float("nan")
            res = BerryEsseenResult(name, nan, nan, nan, nan, nan, nan, 0, int(dead.sum()),
                                    int(x.shape[0]), int(batch_size))
        out[name] = res
    return out


# ====================================================================================================
# [002] Gradient std tracking over training
# ====================================================================================================
def eligible_grads(params: Iterable[Tensor]) -> list[Tensor]:
    """The ``.grad`` of every parameter whose gradient has more than one dimension (GAN's S_t)."""
    return [p.grad for p in params if p.grad is not None and p.grad.dim() > 1]


def global_gradient_std(params: Iterable[Tensor]) -> float:
    """s_t = Std(concat of the raw gradients of all tensors with ndim > 1), unbiased (GAN eq. 1).

    Combined exactly from per-tensor means and variances (Chan et al.'s parallel formula, in float64),
    without concatenating the gradients. Returns NaN when fewer than two eligible entries exist.

    Args:
        params: parameters (their ``.grad`` is read; ``None`` gradients are skipped).
    """
    grads = eligible_grads(params)
    if not grads:
        return float("nan")
    stats = []
    for g in grads:
        var, mean = torch.var_mean(g.detach(), correction=0)
        stats.append(torch.stack([var.float(), mean.float()]))
    table = torch.stack(stats).double().cpu()  # one device -> host transfer
    counts = torch.tensor([float(g.numel()) for g in grads], dtype=torch.float64)
    n = counts.sum()
    if n < 2:
        return float("nan")
    mean = (counts * table[:, 1]).sum() / n
    m2 = (counts * table[:, 0]).sum() + (counts * (table[:, 1] - mean) ** 2).sum()
    return float(torch.sqrt(m2 / (n - 1)))


class GradientStdTracker:
    """Per-layer gradient std and norm, and the global gradient std s_t, over training steps ([002]).

    Call :meth:`update` after ``loss.backward()`` and *before* ``optimizer.step()`` (before a gradient
    transform such as GAN rewrites the ``.grad``s). Per step it records, for each layer, the unbiased
    std of vec(G_l) ([002] Fig. 1) and ||G_l||_2 ([000] Fig. 1), and the global std s_t of the
    concatenated raw gradients of all tensors with ndim > 1 ([002] Fig. 2; the same s_t GAN uses).
    Cost: one reduction per tensor per recorded step.

    Args:
        model: the network being trained.
        weights_only: record only tensors with ``ndim > 1`` (default).
        stride: record every ``stride``-th call.
        order: layer names in depth order (e.g. ``layer_order(model, x)``); default registration order.

    Example::

        tracker = GradientStdTracker(model)
        for x, y in loader:
            opt.zero_grad(); F.cross_entropy(model(x), y).backward()
            tracker.update()
            opt.step()
        tracker.summary()["global_std_spearman"]   # [002]: negative (global std decreases)
        tracker.norm_profile()                     # [000] Table 1
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        weights_only: bool = True,
        stride: int = 1,
        order: Sequence[str] | None = None,
    ) -> None:
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        named = dict(model.named_parameters())
        names = list(order) if order is not None else list(named)
        self.params = {n: named[n] for n in names if n in named and _is_layer(named[n], weights_only)}
        self._all = [p for p in model.parameters() if p.requires_grad]
        self.stride = int(stride)
        self.calls = 0
        self.steps: list[int] = []
        self.global_std: list[float] = []
        self.layer_std: dict[str, list[float]] = {n: [] for n in self.params}
        self.layer_norm: dict[str, list[float]] = {n: [] for n in self.params}

    def update(self) -> float | None:
        """Record the current gradients; returns s_t (None when this call is skipped by the stride)."""
        self.calls += 1
        if (self.calls - 1) % self.stride:
            return None
        vals = []
        for p in self.params.values():
            g = p.grad
            if g is None:
                vals.append(torch.tensor([float("nan"), 0.0], dtype=torch.float64))
                continue
            g = g.detach()
            std = torch.std(g) if g.numel() > 1 else torch.zeros((), device=g.device)
            vals.append(torch.stack([std.float(), torch.linalg.vector_norm(g.float())]).double().cpu())
        for n, v in zip(self.params, vals):
            self.layer_std[n].append(float(v[0]))
            self.layer_norm[n].append(float(v[1]))
        s = global_gradient_std(self._all)
        self.global_std.append(s)
        self.steps.append(self.calls)
        return s

    def norm_profile(self, early: float = 0.2, late: float = 0.2) -> NormProfile:
        """[000]'s per-layer norm table over the recorded steps (:func:`layer_norm_profile`)."""
        return layer_norm_profile(self.layer_norm, early=early, late=late)

    def summary(self) -> dict[str, Any]:
        """Trends of the recorded series.

        Returns:
            ``global_std_spearman`` (rho of s_t vs step; [002]: negative), ``global_std_log_slope``
            (OLS slope of ln s_t per step), ``global_std_first``/``_last``, ``layers_rising`` (layers
            whose std has a positive Spearman rho with the step; [002]: layer-wise std is not
            monotone for every layer), ``layer_std_spearman`` (per layer), ``min_layer_std`` (the
            smallest layer std seen: a z-score normalization risk), ``num_steps``.
        """
        steps = np.asarray(self.steps, dtype=np.float64)
        s = np.asarray(self.global_std, dtype=np.float64)

        def rho(v: np.ndarray) -> float:
            ok = np.isfinite(v)
            if ok.sum() < 3 or np.ptp(v[ok]) == 0:
                return float("nan")
            return float(stats.spearmanr(steps[ok], v[ok]).statistic)

        ok = np.isfinite(s) & (s > 0)
        slope = float(np.polyfit(steps[ok], np.log(s[ok]), 1)[0]) if ok.sum() >= 2 else float("nan")
        per_layer = {n: rho(np.asarray(v, dtype=np.float64)) for n, v in self.layer_std.items()}
        all_std = [x for v in self.layer_std.values() for x in v if math.isfinite(x)]
        return {
            "num_steps": len(self.steps),
            "global_std_first": float(s[0]) if s.size else float("nan"),
            "global_std_last": float(s[-1]) if s.size else float("nan"),
            "global_std_spearman": rho(s),
            "global_std_log_slope": slope,
            "layers_rising": int(sum(1 for v in per_layer.values() if v > 0)),
            "layer_std_spearman": per_layer,
            "min_layer_std": float(min(all_std)) if all_std else float("nan"),
        }


# ====================================================================================================
# Registered metrics (one number on the probe batch)
# ====================================================================================================
def _probe_layers(
    p: Probe, *, masked: bool, weights_only: bool, ordered: bool = False
) -> dict[str, slice]:
    """name -> slice of that layer in the probe's flat vectors (masked per-example rows or full)."""
    out: dict[str, slice] = {}
    offset = 0
    for name, t in p.params.items():
        size = p.mask[name].numel() if (masked and p.mask is not None) else t.numel()
        if t.dim() > 1 or not weights_only:
            out[name] = slice(offset, offset + size)
        offset += size
    if not out:
        raise ValueError("the model has no eligible layer (trainable tensors with ndim > 1)")
    if ordered:
        order = layer_order(p.model, p.inputs)
        out = {n: out[n] for n in order if n in out}
    return out


def _sampled_columns(p: Probe, layers: dict[str, slice], max_weights: int | None, salt: int) -> dict[str, Tensor]:
    gen = p.generator(salt)
    cols = {}
    for n, sl in layers.items():
        size = sl.stop - sl.start
        if max_weights is not None and size > max_weights:
            idx = random_subset(size, int(max_weights), gen)
        else:
            idx = torch.arange(size)
        cols[n] = idx + sl.start
    return cols


_PROBE_DOC = "probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`."


@register_metric(
    "grad_norm_cv",
    direction="minimize",
    needs=("data", "labels", "per_example", "groups"),
    cost="cheap",
    citation=f"{_P000}, Table 1 (CV = std/mean of per-layer gradient norms)",
)
def grad_norm_cv(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    group_size: int = 8,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Mean over layers of the coefficient of variation of the layer's minibatch-gradient norm::

        CV_l = std_k ||gbar_{k,l}|| / mean_k ||gbar_{k,l}||,      value = mean_l CV_l

    over the gradients gbar_k of consecutive groups of ``group_size`` examples of the probe batch
    (the groups of :func:`~objectives.gradient_confusion`; std with ddof = 1), for every weight tensor
    l. [000] measures CV over training steps (Table 1: 0.18 for Conv1 rising to 0.50 for the
    classifier); at a fixed point the only source of variation is minibatch sampling, so this is the
    noise-to-signal ratio of the layer norms at the group size.

    Direction: minimize — [000] reads a high CV as the "more variable", less reproducible gradients
    of deep layers; it makes no trainability claim, so the direction is a hypothesis to validate.
    Cost: one per-example gradient pass (shared with the other per-example metrics). Masking (large
    models) restricts each layer to a random subset of its entries.

    Args:
        group_size: examples per group (at least 2 groups needed).
        weights_only: only tensors with ndim > 1 (default) or all trainable tensors.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.

    Raises:
        ValueError: fewer than 2 groups, no eligible layer, all-zero gradients.
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    groups = C.group_means(p.per_example_grads(), group_size).double()
    cvs = []
    for sl in _probe_layers(p, masked=True, weights_only=weights_only).values():
        norms = groups[:, sl].norm(dim=1)
        mean = float(norms.mean())
        if mean > 0:
            cvs.append(float(norms.std()) / mean)
    if not cvs:
        raise ValueError("every layer has a zero gradient: grad_norm_cv undefined")
    return C.check_finite(float(np.mean(cvs)), "grad_norm_cv")


@register_metric(
    "grad_depth_trend",
    direction="minimize",
    needs=("data", "labels"),
    cost="cheap",
    citation=f"{_P000}, Table 1 / Fig. 1 (norm order Conv1 > ... > FC2)",
)
def grad_depth_trend(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    trend: str = "spearman",
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Depth trend of the per-layer batch-gradient norm ||gbar_l|| (layers in forward order).

    ``trend="spearman"`` (default): Spearman rho(l, ||gbar_l||) over layers l = 1..L, in [-1, 1]
    (-1: norms strictly decrease with depth, [000]'s Conv1 > ... > FC2). ``trend="log_slope"``: OLS
    slope b of ln ||gbar_l|| on normalized depth u = (l-1)/(L-1), so exp(b) is the fitted ratio of
    the last layer's norm to the first's. Depth is the order in which the layers first run
    (:func:`layer_order`); the full (unmasked) gradient of the probe batch is used, in the probe's
    BN mode. Raw norms grow with layer size, so the trend mixes width and depth, as in [000].

    Direction: minimize — [000] finds norms falling with depth in nets that train; norms that
    *grow* with depth are the signature of vanishing gradients at the input. (Very negative values
    can also mean exploding gradients at the input.) A hypothesis to validate.
    Cost: one batch gradient and one forward of one example.

    Args:
        trend: ``"spearman"`` or ``"log_slope"``.
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.

    Raises:
        ValueError: fewer than 2 layers, equal norms everywhere, a bad ``trend``.
    """
    if trend not in ("spearman", "log_slope"):
        raise ValueError(f"trend must be 'spearman' or 'log_slope', got {trend!r}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    g = p.batch_grad().double()
    layers = _probe_layers(p, masked=False, weights_only=weights_only, ordered=True)
    norms = [float(g[sl].norm()) for sl in layers.values()]
    value = getattr(depth_trend(norms), trend)
    return C.check_finite(value, "grad_depth_trend")


@register_metric(
    "sgn_gaussianity",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_P003}, Sec. 4 (Shapiro-Wilk Gaussianity percentage); {_P001}, Table 4",
)
def sgn_gaussianity(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    batch_size: int | None = None,
    num_batches: int = 200,
    max_weights: int | None = 256,
    alpha: float = 0.05,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Percentage of weights whose stochastic-gradient noise passes Shapiro-Wilk at level alpha ([003]).

    From the per-example gradients g_i of the probe batch (N examples), ``num_batches`` = M
    minibatch gradients of ``batch_size`` = b examples are formed at the same weights,
    gbar_k = (1/b) sum_{i in S_k} g_i with S_k a random b-subset (independent across k); for every
    weight (at most ``max_weights`` random ones per layer) the M values are tested with Shapiro-Wilk
    (:func:`sgn_gaussianity_profile`)::

        value = 100 * #{weights with p > alpha} / #{non-dead weights}

    pooled over layers; dead weights (constant gradient) are excluded. A perfectly Gaussian SGN
    scores ~95. This is the SGN of sampling from the probe batch (a finite pool), and the M subsets
    overlap; for the SGN of the data distribution use :func:`gradient_history` on fresh batches.

    Direction: maximize — [003] (and [001] Table 4) find Gaussianity rising with batch size and
    lowest in the layers they single out as converging slowly to the CLT regime; neither paper links
    it to trained accuracy, so the direction is a hypothesis to validate. The value depends on M and
    b: compare networks at equal settings.
    Cost: the shared per-example pass, then an (M x N) x (N x P') product and M-sample SW tests.

    Args:
        batch_size: b (default N // 4, at least 1; must be < N).
        num_batches: M, the SW sample size (3..5000; [003] uses 200 and 600).
        max_weights: weights tested per layer (``None``: all).
        alpha: significance level.
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.

    Raises:
        ValueError: a bad batch size or sample count, no testable weight.
    """
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    n = p.batch_size
    b = max(1, n // 4) if batch_size is None else int(batch_size)
    if not 1 <= b < n:
        raise ValueError(f"batch_size must be in 1..{n - 1} (below the probe batch of {n}), got {b}")
    layers = _probe_layers(p, masked=True, weights_only=weights_only)
    cols = _sampled_columns(p, layers, max_weights, salt=31)
    per_ex = p.per_example_grads()
    idx_all = torch.cat(list(cols.values())).to(per_ex.device)
    sub = per_ex[:, idx_all].double().cpu()
    gen = p.generator(37)
    sel = torch.zeros(int(num_batches), n, dtype=torch.float64)
    for k in range(int(num_batches)):
        sel[k, torch.randperm(n, generator=gen)[:b]] = 1.0 / b
    mb = sel @ sub  # (M, P'')
    split, offset = {}, 0
    for name, c in cols.items():
        split[name] = mb[:, offset : offset + c.numel()]
        offset += c.numel()
    prof = sgn_gaussianity_profile(split, alpha=alpha, batch_size=b)
    if prof.tested == 0:
        raise ValueError("no weight with a non-constant gradient to test: sgn_gaussianity undefined")
    return C.check_finite(prof.percent, "sgn_gaussianity")


@register_metric(
    "sgn_berry_esseen",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_P003}, Theorem 1 (eq. 13) with the kurtosis bound (eqs. 19-21)",
)
def sgn_berry_esseen(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    batch_size: int | None = None,
    quantile: float = 0.5,
    max_weights: int | None = 4096,
    weights_only: bool = True,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Kurtosis-based Berry-Esseen bound on the non-Gaussianity of the minibatch gradient ([003])::

        bound_j = A_0 * sqrt(E[z_j^4]) / sqrt(B),    z_j = (g_{i,j} - mean_i g_{i,j}) / sigma_j

    per weight j over the per-example gradients g_i of the probe batch (the i.i.d. summands of a
    minibatch gradient); sqrt(E z^4) >= E|z|^3 = beta/sigma^3 (eq. 21), A_0 = 0.4748 (Shevtsova
    2011; [003] leaves it open). The value is the ``quantile`` (median by default) of bound_j over
    the non-dead weights (at most ``max_weights`` random ones per layer), pooled over layers: an
    upper bound on sup_x |P(standardized gbar_j <= x) - Phi(x)| for a typical weight.

    Direction: minimize — a smaller bound means the SGN reaches the Gaussian (CLT) regime at
    smaller batches; [003] ties the slow-converging AlexNet layers to larger moments. No
    trainability claim is made in the paper. Estimated from N examples, sample fourth moments are
    noisy for small N (and biased low for heavy tails).
    Cost: the shared per-example pass plus O(N P') moments.

    Args:
        batch_size: B of the bound (default: the probe batch size).
        quantile: which quantile over weights (0.5).
        max_weights: weights per layer (``None``: all).
        weights_only: only tensors with ndim > 1.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.

    Raises:
        ValueError: fewer than 4 examples, no non-dead weight, a bad quantile.
    """
    if not 0 <= quantile <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    p = get_probe(model, inputs, targets, loss_fn, probe, bn_mode=bn_mode,
                    mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    if p.batch_size < 4:
        raise ValueError(f"need at least 4 examples for fourth moments, got {p.batch_size}")
    b = p.batch_size if batch_size is None else int(batch_size)
    if b < 1:
        raise ValueError(f"batch_size must be >= 1, got {b}")
    layers = _probe_layers(p, masked=True, weights_only=weights_only)
    cols = torch.cat(list(_sampled_columns(p, layers, max_weights, salt=41).values()))
    per_ex = p.per_example_grads()
    x = per_ex[:, cols.to(per_ex.device)].double().cpu().numpy()
    _, kr, _ = _standardized_moments(x)
    if kr.size == 0:
        raise ValueError("every weight has a constant per-example gradient: sgn_berry_esseen undefined")
    value = BERRY_ESSEEN_A0 * float(np.quantile(kr, quantile)) / math.sqrt(b)
    return C.check_finite(value, "sgn_berry_esseen")


def _probe_spectrum(model, inputs, targets, loss_fn, probe, fit_k, **probe_options) -> Spectrum:
    p = get_probe(model, inputs, targets, loss_fn, probe, **probe_options)
    spec = covariance_spectrum(p.per_example_grads(), fit_k=fit_k, compare_lognormal=False)
    if spec.power_law is None:
        raise ValueError("fewer than 3 distinct nonzero eigenvalues: no power-law fit (use a larger batch)")
    return spec


@register_metric(
    "spectrum_s",
    direction="maximize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_P001}, eq. 8 (s = 1/(beta-1)); {_P000}, Table 3",
)
def spectrum_s(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    fit_k: int | None = 1000,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """Power-law (Zipf) exponent s of the gradient-noise covariance spectrum, lambda_k ~ k^-s ([001]).

    The covariance of the per-example gradients g_i of the probe batch (all trainable parameters,
    masked like the probe; [001] builds it from B = 1 gradients too) has N - 1 nonzero eigenvalues
    (Gram trick, :func:`gram_eigenvalues`); its top K = min(``fit_k``, N - 1) are fitted with [001]'s
    MLE (eq. 8), beta = 1 + K / sum ln(lambda_i / lambda_K), and s = 1 / (beta - 1). [001] reports
    s ~ 0.9-1.4 from 1000 eigenvalues; with N - 1 values the estimate is rougher.

    Direction: maximize — a larger s concentrates the noise in fewer directions ([000]'s
    "anisotropic", structured noise of the reproducible early layers). Neither paper links s to
    trained accuracy; the direction is a hypothesis to validate. Cost: the shared per-example pass
    plus an N x N eigendecomposition.

    Args:
        fit_k: K of the fit.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.

    Raises:
        ValueError: a zero covariance (identical per-example gradients), too few eigenvalues.
    """
    spec = _probe_spectrum(model, inputs, targets, loss_fn, probe, fit_k, bn_mode=bn_mode,
                           mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.check_finite(spec.power_law.s, "spectrum_s")


@register_metric(
    "spectrum_ks",
    direction="minimize",
    needs=("data", "labels", "per_example"),
    cost="cheap",
    citation=f"{_P001}, eq. 7 (KS distance of the power-law fit, d_c = 1.36/sqrt(K))",
)
def spectrum_ks(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any = F.cross_entropy,
    *,
    fit_k: int | None = 1000,
    probe: Probe | None = None,
    bn_mode: str = "frozen",
    mask_fraction: float | None = None,
    seed: int = 0,
    chunk_size: int | None = 32,
) -> float:
    """KS distance d_ks of the power-law fit to the gradient-noise covariance spectrum ([001] eq. 7).

    Same spectrum and fit as :func:`spectrum_s`; d_ks = sup |F_fitted - F_empirical| over the top K
    eigenvalues. [001] calls the spectrum power-law when d_ks < 1.36 / sqrt(K).

    Direction: minimize — [001] finds power-law spectra in nets that train normally and loses them
    in degenerate cases (width 10, linear nets without BN/ReLU, Adam, full batch); it does not rank
    trainable nets by d_ks, so the direction is a hypothesis to validate.
    Cost: as :func:`spectrum_s` (free when scored together, the per-example gradients are shared).

    Args:
        fit_k: K of the fit.
        probe, bn_mode, mask_fraction, seed, chunk_size: see :class:`~objectives.probe.Probe`.
    """
    spec = _probe_spectrum(model, inputs, targets, loss_fn, probe, fit_k, bn_mode=bn_mode,
                           mask_fraction=mask_fraction, seed=seed, chunk_size=chunk_size)
    return C.check_finite(spec.power_law.ks_distance, "spectrum_ks")
