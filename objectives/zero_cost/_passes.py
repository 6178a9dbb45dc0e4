"""The passes zero-cost proxies share through one probe: one forward (and backward) pass for several metrics.

Inside :func:`objectives.score`, every metric that accepts ``probe=`` gets the same
:class:`~objectives.core.probe.Probe`. The proxies below keep their passes on it (:meth:`Probe.memo`) and plan
them by what the probe expects (:meth:`Probe.expect`: the union of the metrics' registry ``needs``):

* ``weight_grad`` (snip, grad_norm): the gradients of the batch loss with respect to the Linear/conv weights,
  the model in its own train/eval mode (what :func:`._harness._weight_grads` computes);
* ``module_outputs`` (meco): example 0 of the output of every module, the model in its own mode;
* ``stage_features`` (az_expressivity, az_progressivity): the AZ-NAS feature sequence, in train mode
  (:func:`._az_nas._features`), and its spectral entropies, computed once.

**The own-mode pass.** One forward pass of the model in its own mode (with gradients when ``weight_grad`` is
expected, then one backward pass) serves the first two; the AZ-NAS features join it when every module is in
train mode already (the AZ-NAS pass only sets train mode, so it is then the same forward pass); otherwise they
get their own pass. A metric whose piece a pass did not collect (it was not expected) computes it alone.

**Bit-identical values.** A shared pass runs the operators of each metric's own pass on the same tensors
(the model through ``functional_call`` on its detached parameters and cloned buffers): meco's hook copies
example 0 of an output when the module returns it, before a later in-place operation could change it (meco alone
reads it there too); AZ-NAS's hook passes on an exact copy of a unit's output (autograd differentiates a copy as
the identity); everything after the pass (eigenvalues, entropies, norms) is each metric's own code, in its own
order. Random draws: ``score`` seeds torch's generator with the same seed before each metric, and each metric
starts with the pass, so a train-mode dropout draws in the shared pass what it draws in each metric's own pass.
``tests/objectives/test_shared_passes.py`` checks every metric scored with the others against it scored alone.

When a shared pass would not be the metric's own (a probe of other inputs, targets or loss function) or raises,
the metrics compute alone, and raise there what they raise alone.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..core.hooks import hooked
from ..core.probe import Probe
from ._az_nas import _FeatureHooks, _features, _inputs_problem, _units, spectral_entropy
from ._harness import LossFn, _Functional, _Layer, _layers, _weight_grads

__all__ = ["PASS_NEEDS", "shared_passes", "weight_grads"]

#: The registry needs served by this module's passes (all in :data:`objectives.core.probe.STATE_FREE_NEEDS`).
PASS_NEEDS = ("weight_grad", "module_outputs", "stage_features")

_FAILED = object()


class _OwnPass(NamedTuple):
    """What the own-mode pass collected (``None``: not collected)."""

    features: list[Tensor] | None
    outputs: list[Tensor] | None
    grads: tuple[list[Tensor], list[Tensor]] | None


def shared_passes(probe: Probe | None, model: nn.Module, inputs: Tensor) -> _Passes | None:
    """The passes shared through ``probe`` when it was built on ``model`` and these inputs, else ``None``.

    Raises:
        ValueError: the probe was built for a different model.
    """
    if probe is None:
        return None
    if probe.model is not model:
        raise ValueError("probe was built for a different model")
    if probe.inputs is not inputs:
        return None
    return probe.memo("zero_cost_passes", lambda: _Passes(probe))


def weight_grads(probe: Probe | None, model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: LossFn,
                 layers: list[_Layer]) -> tuple[list[Tensor], list[Tensor]]:
    """``(weights, dL/dweights)`` of ``layers`` (:func:`._harness._weight_grads`): from the pass shared through
    ``probe`` when there is one for these inputs, targets and loss, else from the metric's own pass."""
    passes = shared_passes(probe, model, inputs)
    shared = None if passes is None else passes.weight_grads(targets, loss_fn)
    return shared or _weight_grads(model, inputs, targets, loss_fn, layers)


def _all_train(model: nn.Module) -> bool:
    return all(m.training for m in model.modules())


class _Passes:
    """The shared passes of one probe; each getter returns ``None`` where the metric must compute alone."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self._own: Any = None
        self._features: list[Tensor] | None = None
        self._entropies: list[float] | None = None

    def _wants(self, need: str, requested: str) -> bool:
        return need == requested or need in self.probe.expected

    def _own_pass(self, requested: str) -> _OwnPass | None:
        if self._own is None:
            try:
                self._own = self._run_own_pass(requested)
            except Exception:  # noqa: BLE001 - each metric then runs its own pass and raises its own error
                self._own = _FAILED
        return None if self._own is _FAILED else self._own

    def _features_fit(self) -> bool:
        """Whether the AZ-NAS features can join the own-mode pass (the same forward; az's checks pass)."""
        return (_all_train(self.probe.model) and _inputs_problem(self.probe.inputs) is None
                and bool(_units(self.probe.model)))

    def _run_own_pass(self, requested: str) -> _OwnPass:
        p = self.probe
        model = p.model
        layers = _layers(model, warn=False) if self._wants("weight_grad", requested) else []
        outputs: list[Tensor] | None = [] if self._wants("module_outputs", requested) else None
        hooks = _FeatureHooks(_units(model)) if (
            self._wants("stage_features", requested) and self._features_fit()) else None

        def keep(module: nn.Module, args: tuple, out: object) -> None:
            if isinstance(out, Tensor) and out.dim() >= 2:
                outputs.append(out[0].detach().clone())

        grads = None
        with torch.set_grad_enabled(bool(layers)), hooked(hooks.pairs() if hooks else ()), \
                hooked(((m, keep) for m in model.modules()) if outputs is not None else ()):
            fn = _Functional.of_weights(model, layers)
            out = fn(p.inputs if layers else p.inputs.detach())
            if not isinstance(out, Tensor):  # raised by _Functional too; kept for the type checker
                raise TypeError(type(out).__name__)
            if layers:
                loss = p.loss_fn(out, p.targets)
                found = torch.autograd.grad(loss, fn.leaves, allow_unused=True)
                grads = (fn.leaves, [torch.zeros_like(w) if g is None else g for w, g in zip(fn.leaves, found)])
        features = None if hooks is None else [f.detach() for f in hooks.features(out)]
        return _OwnPass(features, outputs, grads)

    def weight_grads(self, targets: Tensor, loss_fn: Any) -> tuple[list[Tensor], list[Tensor]] | None:
        """``(weights, dL/dweights)`` of every Linear/conv layer (:func:`._harness._weight_grads`)."""
        if targets is not self.probe.targets or loss_fn is not self.probe.loss_fn:
            return None
        own = self._own_pass("weight_grad")
        return None if own is None else own.grads

    def module_outputs(self) -> list[Tensor] | None:
        """Example 0 of every module output with >= 2 dimensions, in the order the modules returned them."""
        own = self._own_pass("module_outputs")
        return None if own is None else own.outputs

    def stage_entropies(self) -> list[float]:
        """:func:`._az_nas.spectral_entropy` of every AZ-NAS feature, computed once."""
        if self._entropies is None:
            features = None
            if self._own is None and {"weight_grad", "module_outputs"} & self.probe.expected and self._features_fit():
                self._own_pass("stage_features")  # the pass the other metrics expect, with the features
            if self._own is not None and self._own is not _FAILED:
                features = self._own.features
            if features is None:  # alone; the own-mode pass, if any, ran in another metric's call
                features = _features(self.probe.model, self.probe.inputs, graph=False)
            self._entropies = [spectral_entropy(f) for f in features]
            if self._own is not None and self._own is not _FAILED:
                self._own = self._own._replace(features=None)  # the entropies are all that is read
        return self._entropies
