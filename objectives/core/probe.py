"""Probe: one model + one batch, with the gradients the metrics share, computed once and cached.

Several metrics need the same expensive quantities (per-example gradients, batch gradients at
perturbed weights, input gradients). A :class:`Probe` computes each on first use and caches it, so
:func:`objectives.score` runs a whole suite of metrics over one shared probe. Every metric function
also accepts ``probe=`` directly.

The probe never changes the model: parameters are read (not copied) and evaluated through
``torch.func.functional_call``; BatchNorm statistics are taken on cloned buffers; module train/eval
flags are restored after each pass.

The probe's own state (the BN-statistics pass of ``frozen`` mode, the initial loss, the mask) is computed
on first use, or by :meth:`Probe.expect` for a need that reads it: a probe that only carries the passes the
zero-cost proxies share (:meth:`Probe.memo`, :mod:`objectives.zero_cost._passes`) costs nothing more.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .batch import validate_batch
from .batch_norm import BN_MODES, collect_batch_norm_stats, frozen_buffers, probing_mode
from .directions import weight_directions
from .gradients import (LossFn, batch_and_input_grads, batch_grad, check_loss, input_grads, per_example_contributions,
                        per_example_grads)
from .hooks import trainable_parameters
from .params import flatten, make_mask
from .rng import seeded

__all__ = ["Probe", "PROBE_OPTIONS", "DEFAULT_MAX_FLOATS", "STATE_FREE_NEEDS", "get_probe"]

#: Default budget for the (B x P) per-example gradient matrix: no mask while B * P fits.
DEFAULT_MAX_FLOATS = 5e7

#: Registry ``needs`` that do not read the probe's own state (BN statistics, loss, gradients): the passes
#: of the zero-cost proxies, shared through :meth:`Probe.memo`. Any other need makes :meth:`Probe.expect`
#: compute that state at once, so its errors (a non-finite loss, ...) are raised where they always were.
STATE_FREE_NEEDS = frozenset({"data", "labels", "weight_grad", "module_outputs", "stage_features"})


class Probe:
    """Cached gradient quantities of ``model`` on one batch.

    Args:
        model: any ``nn.Module``; left unchanged.
        inputs: batch of inputs, shape (B, ...).
        targets: batch of targets, shape (B, ...).
        loss_fn: ``(outputs, targets) -> scalar`` reducing by the mean (default cross-entropy).
        bn_mode: ``"frozen"`` (default) or ``"contribution"``; see :mod:`objectives.core.batch_norm`.
        mask_fraction: fraction of each layer's parameters kept by the random mask (thesis
            Sec. 1.6); ``None`` (default) keeps all while B x P <= ``max_floats``, otherwise the
            largest fraction that fits; ``1.0`` never masks.
        seed: seeds the mask and every random choice of the metrics (directions, signs).
        chunk_size: examples per vmap chunk for per-example gradients (bounds memory); ``None``
            (default) picks the largest chunk holding <= 2.5e7 gradient floats (100 MB).
        max_floats: budget for the automatic mask.

    Raises:
        ValueError: empty batch, inputs/targets length mismatch, non-finite inputs, a model without
            trainable parameters, an unknown ``bn_mode``; a non-finite loss when the state is first
            computed (``loss``, any gradient, or :meth:`expect` with a need that reads them).
        NotImplementedError: ``bn_mode="frozen"`` with a BatchNorm layer without running statistics, on
            first use likewise.
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: Tensor,
        targets: Tensor,
        loss_fn: LossFn = F.cross_entropy,
        *,
        bn_mode: str = "frozen",
        mask_fraction: float | None = None,
        seed: int = 0,
        chunk_size: int | None = None,
        max_floats: float = DEFAULT_MAX_FLOATS,
    ) -> None:
        if bn_mode not in BN_MODES:
            raise ValueError(f"bn_mode must be one of {BN_MODES}, got {bn_mode!r}")
        validate_batch(model, inputs, targets)
        self.model = model
        self.inputs = inputs
        self.targets = targets
        self.loss_fn = loss_fn
        self.bn_mode = bn_mode
        self.seed = int(seed)
        self.chunk_size = chunk_size
        self.params = trainable_parameters(model)
        self.num_params = sum(p.numel() for p in self.params.values())
        b = inputs.shape[0]
        if mask_fraction is None:
            mask_fraction = min(1.0, max_floats / float(b * self.num_params))
        if not 0.0 < float(mask_fraction) <= 1.0:
            raise ValueError(f"mask_fraction must be in (0, 1], got {mask_fraction}")
        self.mask_fraction = float(mask_fraction)
        self._cache: dict[Any, Any] = {}
        self.expected: frozenset[str] = frozenset()

    # ----------------------------------------------------------------------------- basic pieces
    @property
    def mask(self) -> dict[str, Tensor] | None:
        """The random parameter mask (``None``: every parameter kept); drawn on first use."""
        if "mask" not in self._cache:
            self._cache["mask"] = None if self.mask_fraction >= 1.0 else make_mask(self.params, self.mask_fraction,
                                                                                   self.seed)
        return self._cache["mask"]

    @property
    def buffers(self) -> dict[str, Tensor]:
        """The buffers of the probe's passes (``frozen``: BN running statistics replaced by the batch's)."""
        self._prepare()
        return self._cache["buffers"]

    @property
    def loss(self) -> float:
        """The loss on the probe batch (``frozen``: with train-mode BN statistics)."""
        self._prepare()
        return self._cache["loss"]

    def _prepare(self) -> None:
        """Compute the state once: the BN-statistics pass (``frozen``) and the initial loss."""
        if "loss" in self._cache:
            return
        contribution = self.bn_mode == "contribution"
        with torch.no_grad(), probing_mode(self.model, norm_train=contribution):
            if contribution:  # train-mode BN updates the buffers it is given: hand it clones
                buffers = dict(self.model.named_buffers())
                clones = {n: b.clone() for n, b in buffers.items()}
                out = torch.func.functional_call(self.model, (self.params, clones), (self.inputs,), strict=False)
            else:
                stats, out = collect_batch_norm_stats(self.model, self.inputs, return_output=True)
                buffers = frozen_buffers(self.model, stats)
            loss = self.loss_fn(out, self.targets)
        check_loss(loss)
        if not torch.isfinite(loss):
            raise ValueError(f"the loss is not finite ({loss.item()}) at these weights: check the inputs, the "
                             "initialization, or the loss function")
        self._cache["buffers"], self._cache["loss"] = buffers, float(loss)

    def memo(self, key: str, make: Any) -> Any:
        """The object cached under ``key``, built by ``make()`` on first use: how other modules share their
        own passes over the probe's model and batch (e.g. :mod:`objectives.zero_cost._passes`)."""
        key = ("memo", key)
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def batch_size(self) -> int:
        return int(self.inputs.shape[0])

    def generator(self, salt: int) -> torch.Generator:
        """A CPU generator seeded from the probe seed and a per-use salt (same on CPU and GPU)."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)

    def masked(self, flat: Tensor) -> Tensor:
        """Restrict a full flat parameter-space vector (or (B, P) matrix) to the mask."""
        if self.mask is None:
            return flat
        if "mask_flat" not in self._cache:
            offsets, idx = 0, []
            for name, p in self.params.items():
                idx.append(self.mask[name] + offsets)
                offsets += p.numel()
            self._cache["mask_flat"] = torch.cat(idx)
        return flat[..., self._cache["mask_flat"]]

    @property
    def weights(self) -> Tensor:
        """Full flat parameter vector w."""
        if "w" not in self._cache:
            self._cache["w"] = flatten(self.params).detach()
        return self._cache["w"]

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, p in self.params.items():
            out[name] = flat[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        return out

    def _run(self, fn, *args):
        """Run a gradient routine in this probe's BN mode (flags restored afterwards)."""
        with probing_mode(self.model, norm_train=self.bn_mode == "contribution"):
            return fn(*args)

    def _buffers_for_pass(self) -> dict[str, Tensor]:
        # train-mode BN updates the buffers it is given: hand it clones
        if self.bn_mode == "contribution":
            return {n: b.clone() for n, b in self.buffers.items()}
        return self.buffers

    def expect(self, needs: Any) -> "Probe":
        """Declare what the metrics to come will read (registry ``needs``: ``batch_grad``, ``perturbed``,
        ``input_grad``, ...), so that passes which can be shared are shared.

        :func:`objectives.score` calls it with the union of its metrics' needs. With both the batch gradient
        and the input gradients expected, the first of them computes both from one forward pass
        (:func:`~objectives.core.gradients.batch_and_input_grads`); the zero-cost proxies plan their
        shared pass by the needs outside the probe's own (:data:`STATE_FREE_NEEDS`). A need that reads
        the probe's state computes it now (and raises its errors here). Values are bit-identical to
        computing each on its own: only the number of passes changes. Returns the probe.
        """
        self.expected = frozenset(needs)
        if self.expected - STATE_FREE_NEEDS:
            # the generator state score() built the probe in (its state was computed there before it was lazy)
            with seeded(self.seed, self.inputs, self.targets):
                self._prepare()
        return self

    def _shares_batch_and_input(self) -> bool:
        return "input_grad" in self.expected and bool({"batch_grad", "perturbed"} & self.expected) and (
            "gbar" not in self._cache and "input_grads" not in self._cache)

    def _batch_and_input(self) -> None:
        g, loss, hx = self._run(
            batch_and_input_grads, self.model, self.params, self._buffers_for_pass(), self.inputs,
            self.targets, self.loss_fn,
        )
        if not torch.isfinite(loss):
            raise ValueError(f"non-finite loss ({loss.item()}) at perturbed weights")
        self._cache["gbar"], self._cache["input_grads"] = g, hx

    # ------------------------------------------------------------------------ cached quantities
    def batch_grad(self, delta: Tensor | None = None, inputs: Tensor | None = None) -> Tensor:
        """Full flat batch gradient gbar(w + delta) on the probe batch (or on ``inputs``).

        Frozen mode: gradient of the mean loss with BN frozen at the probe batch's statistics;
        contribution mode: the train-mode gradient (statistics recomputed). Not cached when
        ``delta`` or ``inputs`` is given.
        """
        if delta is None and inputs is None and self._shares_batch_and_input():
            self._batch_and_input()
        if delta is None and inputs is None and "gbar" in self._cache:
            return self._cache["gbar"]
        params = self.params
        if delta is not None:
            params = {n: p + d for (n, p), d in zip(self.params.items(), self.unflatten(delta).values())}
        x = self.inputs if inputs is None else inputs
        g, loss = self._run(
            batch_grad, self.model, params, self._buffers_for_pass(), x, self.targets, self.loss_fn
        )
        if not torch.isfinite(loss):
            raise ValueError(f"non-finite loss ({loss.item()}) at perturbed weights")
        if delta is None and inputs is None:
            self._cache["gbar"] = g
        return g

    def per_example_grads(self, inputs: Tensor | None = None, count: int | None = None) -> Tensor:
        """Masked per-example weight gradients g_i, a (B, P') matrix; cached for the probe batch.

        ``inputs`` (same batch size as the probe, or the first ``count`` examples) evaluates at other
        inputs with the same targets (used by batch-dissonance). In contribution mode, rows are
        B * c_i so that their mean is the train-mode batch gradient.
        """
        key = ("per_example", count)
        if inputs is None and key in self._cache:
            return self._cache[key]
        x = self.inputs if inputs is None else inputs
        t = self.targets
        if count is not None:
            x, t = x[:count], t[:count]
        if self.bn_mode == "frozen":
            g = self._run(
                per_example_grads, self.model, self.params, self.buffers, x, t, self.loss_fn,
                self.chunk_size, self.mask,
            )
        else:
            xb = self.inputs if inputs is None else inputs
            c, _ = per_example_contributions(
                self.model, self.params, xb, self.targets, self.loss_fn, self.mask
            )
            g = c * xb.shape[0]
            if count is not None:
                g = g[:count]
        if inputs is None:
            self._cache[key] = g
        return g

    def per_example_grads_at(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Masked per-example gradients on arbitrary examples with this probe's frozen statistics
        (frozen mode only; the examples need not be the probe batch). Not cached."""
        if self.bn_mode != "frozen":
            raise ValueError("per_example_grads_at needs bn_mode='frozen'")
        return self._run(
            per_example_grads, self.model, self.params, self.buffers, inputs, targets, self.loss_fn,
            self.chunk_size, self.mask,
        )

    def input_grads(self) -> Tensor:
        """Per-example input gradients h_X as a (B, D) matrix (one backward); cached."""
        if self._shares_batch_and_input():
            self._batch_and_input()
        if "input_grads" not in self._cache:
            self._cache["input_grads"] = self._run(
                input_grads, self.model, self.params, self._buffers_for_pass(),
                self.inputs, self.targets, self.loss_fn,
            )
        return self._cache["input_grads"]

    def mean_per_example_grad(self) -> Tensor:
        """Masked gbar as the mean of the per-example gradients (equals masked batch_grad())."""
        return self.per_example_grads().mean(0)

    def weight_directions(self, directions: str, num_directions: int | None, eta: float) -> Tensor:
        """Perturbation vectors omega_k (rows, full parameter space) of thesis Sec. 2.3, cached:
        :func:`objectives.core.directions.weight_directions` (``mean``, ``examples``, ``random``)."""
        key = ("omega", directions, num_directions, eta)
        if key not in self._cache:
            self._cache[key] = weight_directions(self, directions, num_directions, eta)
        return self._cache[key]

    def full_example_grad(self, i: int) -> Tensor:
        """Unmasked gradient of example i (frozen mode) or B * c_i (contribution mode)."""
        if self.bn_mode == "frozen":
            g = self._run(
                per_example_grads, self.model, self.params, self.buffers,
                self.inputs[i : i + 1], self.targets[i : i + 1], self.loss_fn, 1, None,
            )
            return g[0]
        key = "contrib_full"
        if key not in self._cache:
            c, _ = per_example_contributions(
                self.model, self.params, self.inputs, self.targets, self.loss_fn, None
            )
            self._cache[key] = c * self.batch_size
        return self._cache[key][i]

    def perturbed_grads(
        self, directions: str = "mean", num_directions: int | None = None, eta: float = 1e-3
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(omegas, G, g0): masked perturbations, masked gbar(w + omega_k) rows, masked gbar(w).

        Shared by step-consistency and its adaptations (thesis Def. 2.5 and 4.1); cached per
        (directions, num_directions, eta).
        """
        if not eta > 0 or not math.isfinite(eta):
            raise ValueError(f"eta must be a positive finite number, got {eta}")
        key = ("perturbed", directions, num_directions, eta)
        if key not in self._cache:
            omegas = self.weight_directions(directions, num_directions, eta)
            rows = [self.masked(self.batch_grad(delta=o)) for o in omegas]
            self._cache[key] = (self.masked(omegas), torch.stack(rows), self.masked(self.batch_grad()))
        return self._cache[key]


#: Options of :class:`Probe` that :func:`objectives.score` and the metrics pass through.
PROBE_OPTIONS = ("bn_mode", "mask_fraction", "seed", "chunk_size")


def get_probe(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    loss_fn: Any,
    probe: Probe | None,
    **probe_options: Any,
) -> Probe:
    """The given probe (checked to belong to ``model``) or a new one with ``probe_options``."""
    if probe is not None:
        if probe.model is not model:
            raise ValueError("probe was built for a different model")
        return probe
    return Probe(model, inputs, targets, loss_fn, **probe_options)
