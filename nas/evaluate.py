"""One trial: build the model -> score at init -> a few training steps -> score again -> values.

A :class:`TrialSpec` is everything a worker needs (plain data, picklable, JSON-able), so the same
function runs in process (``--workers 1``) or in a Ray task. :func:`evaluate` returns a flat dict of
numbers plus a few lists/strings; metric values are keyed ``"<metric>"`` (at initialization) and
``"<metric>@early"`` (after the early steps).

Derived values (also usable as objectives or constraints):

* ``loss_init`` / ``loss_early``: loss on the fixed probe batch before / after the early steps;
* ``loss_drop``: (loss_init - loss_early) / loss_init, > 0 when the early steps reduced the loss;
* ``train_loss_first`` / ``train_loss_last``: mean training-batch loss of the first / last 5 steps;
* ``train_kappa_w``: median in-training step-consistency over the early steps
  (:class:`objectives.InTrainingStepConsistency`);
* ``params``, ``flops`` (forward FLOPs per example), ``time_*`` (seconds; ``time_data``: loading the
  dataset, 0 once the worker process has it cached), ``device``;
* the combined score's derived features (:data:`objectives.combine.DERIVED`) that the values allow:
  ``train_loss_smooth_min`` (lowest moving average of the early-step losses), ``relative_step``
  (``lr * grad_weight_ratio``), ``relative_gradient_change``, ``log_lr``, and their ``@early`` forms.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import torch
import torch.nn.functional as F

import objectives
from objectives import PROBE_OPTIONS, InTrainingStepConsistency, registry
from objectives.combine import derived_values
from search_spaces import get_space

from .data import augment_batch, load_dataset, resolve_loss
from .search.keys import EARLY_SUFFIX
from .training import make_optimizer, resolve_device

__all__ = ["TrialSpec", "TrialFailed", "evaluate"]

logger = logging.getLogger(__name__)



class TrialFailed(RuntimeError):
    """A trial could not produce values (non-finite loss, a metric failed, ...); the message says why."""


@dataclasses.dataclass
class TrialSpec:
    """Everything needed to evaluate one candidate.

    Attributes:
        space: registered search-space name.
        config: the candidate's config (validated by the space).
        dataset: dataset name (already resolved: not ``"auto"``).
        bounds: bounds the space was narrowed with (for validation of the config).
        data_dir: where torchvision datasets live.
        metrics: metric names scored at init and after the early steps.
        early_steps: training steps between the two scorings.
        probe_size: examples in the fixed probe batch (the same batch at both phases).
        seed: model initialization seed (the trial's own seed).
        data_seed: seed of the dataset split and the probe batch (fixed per study).
        metric_options: options passed to :func:`objectives.score` (e.g. ``group_size``).
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when visible, else CPU).
        threads: torch intra-op threads; the search fixes it per study (default 1) so a trial gives the
            same values in process, on a Ray worker or on another node. None leaves torch's default.
        score_init: score the metrics at initialization too (False: only after the early steps, e.g. a
            second, longer run of a candidate whose init values are known).
        time_steps: with ``early_steps == 0``, time this many training steps after the scoring
            (``time_step``: seconds per step, the first step not counted); the budgeted search plans
            its training rungs with it. 0: none.
    """

    space: str
    config: dict[str, Any]
    dataset: str
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_dir: str = "data"
    metrics: list[str] = dataclasses.field(default_factory=lambda: list(objectives.DEFAULT_METRICS))
    early_steps: int = 20
    probe_size: int = 64
    seed: int = 0
    data_seed: int = 0
    metric_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    device: str | None = None
    threads: int | None = None
    score_init: bool = True
    time_steps: int = 0


def _score(model, x, y, spec: TrialSpec, phase: str, loss_fn=F.cross_entropy) -> objectives.Scores:
    """Every metric of the spec; a metric undefined for this network is NaN, its reason in ``.errors``."""
    # the CLI passes shared options (e.g. group_size) whether or not the chosen metrics take them
    accepted = {o for m in spec.metrics for o in registry.get(m).options} | set(PROBE_OPTIONS)
    options = {k: v for k, v in spec.metric_options.items() if k in accepted}
    try:
        return objectives.score(model, x, y, metrics=spec.metrics, loss_fn=loss_fn, seed=spec.seed, on_error="nan",
                                **options)
    except ValueError as exc:  # the batch or the loss itself: nothing can be measured
        raise TrialFailed(f"scoring at {phase} failed: {exc}") from None


def evaluate(spec: TrialSpec) -> dict[str, Any]:
    """Evaluate one candidate: every metric at init and after ``early_steps`` SGD steps.

    A metric that is undefined for this network (e.g. kappa_x of a net whose weight gradients are
    zero) is not a failure: its value is NaN and ``metric_errors`` says why (DESIGN §8: evidence, not a
    failed trial; the study ranks it worst in its direction).

    Returns:
        A dict with ``<metric>`` and ``<metric>@early`` for each metric, the :data:`~nas.search.keys.DERIVED_KEYS`,
        ``metric_errors`` (``<metric>[@early]`` -> reason), ``loss_curve`` (training loss per step),
        ``device`` and ``seed``.

    Raises:
        TrialFailed: non-finite loss during the early steps, a bad probe batch, or an out-of-memory
            error (message says which).
    """
    if not spec.threads:
        return _evaluate(spec)
    before = torch.get_num_threads()
    torch.set_num_threads(int(spec.threads))
    try:
        return _evaluate(spec)
    finally:  # in process (--workers 1) the driver gets its own thread count back
        torch.set_num_threads(before)


def _evaluate(spec: TrialSpec) -> dict[str, Any]:
    t0 = time.perf_counter()
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, spec.data_dir, seed=spec.data_seed)  # cached per worker process
    time_data = time.perf_counter() - t0
    space = get_space(spec.space, **spec.bounds)
    config = space.validate(spec.config)
    model = space.build(config, data.num_classes, data.input_shape, seed=spec.seed).to(device)
    model.train()
    loss_fn = resolve_loss(data.loss)
    gen = torch.Generator().manual_seed(spec.data_seed)
    probe_idx = torch.randperm(data.train_size, generator=gen)[: spec.probe_size]
    px, py = (t.to(device) for t in data.take("train", probe_idx))
    out: dict[str, Any] = {"device": str(device), "seed": spec.seed}
    out["params"] = float(sum(p.numel() for p in model.parameters() if p.requires_grad))
    try:
        out["flops"] = float(registry.get("flops").fn(model, px[:1], py[:1]))
    except (KeyError, ValueError, RuntimeError, NotImplementedError) as exc:
        logger.debug("flops unavailable: %s", exc)
        out["flops"] = float("nan")
    t1 = time.perf_counter()
    out["time_data"] = time_data  # loading (or the cached dataset) on this worker
    out["time_build"] = t1 - t0 - time_data

    try:
        errors: dict[str, str] = {}
        if spec.score_init:
            init = _score(model, px, py, spec, "init", loss_fn)
            out.update(init)
            errors.update(init.errors)
        out["loss_init"] = objectives.Probe(model, px, py, loss_fn, seed=spec.seed, mask_fraction=1.0).loss
        t2 = time.perf_counter()
        out["time_score_init"] = t2 - t1

        curve, kappas = _early_training(model, data, config, spec, device, loss_fn)
        out["loss_curve"] = curve
        k = [v for v in kappas if v is not None and math.isfinite(v)]
        out["train_kappa_w"] = float(torch.tensor(k).median()) if k else float("nan")
        head, tail = curve[:5], curve[-5:]
        out["train_loss_first"] = sum(head) / max(len(head), 1) if head else float("nan")
        out["train_loss_last"] = sum(tail) / max(len(tail), 1) if tail else float("nan")
        t3 = time.perf_counter()
        out["time_train"] = t3 - t2

        if spec.early_steps > 0 and spec.metrics:
            early = _score(model, px, py, spec, "early steps", loss_fn)
            out.update({f"{n}{EARLY_SUFFIX}": v for n, v in early.items()})
            errors.update({f"{n}{EARLY_SUFFIX}": r for n, r in early.errors.items()})
            out["loss_early"] = objectives.Probe(model, px, py, loss_fn, seed=spec.seed, mask_fraction=1.0).loss
        elif spec.early_steps > 0:
            out["loss_early"] = objectives.Probe(model, px, py, loss_fn, seed=spec.seed, mask_fraction=1.0).loss
        else:
            out["loss_early"] = out["loss_init"]
            if spec.time_steps > 0:
                out["time_step"] = _time_steps(model, data, config, spec, device, loss_fn)
    except torch.cuda.OutOfMemoryError as exc:
        raise TrialFailed(f"out of GPU memory: {str(exc).splitlines()[0]}") from None
    out["metric_errors"] = errors
    out["loss_drop"] = (out["loss_init"] - out["loss_early"]) / out["loss_init"] if out["loss_init"] else 0.0
    t4 = time.perf_counter()
    out["time_score_early"] = t4 - t3
    out["time_total"] = t4 - t0
    out.update(derived_values({**config, **out}))  # the combined score's derived features (relative_step, ...)
    return out


def _time_steps(model, data, config: dict[str, Any], spec: TrialSpec, device: torch.device, loss_fn) -> float:
    """Seconds per training step of the recipe at the config's batch size (``spec.time_steps`` steps
    after one untimed step; the model's weights change, the scored values do not). Reading the batches
    counts: a streamed dataset's loader is part of a step's cost."""
    opt = make_optimizer(model, config)
    n = data.train_size
    bs = min(int(config.get("batch_size", 128)), n)
    gen = torch.Generator().manual_seed(spec.seed + 2)
    indices = (torch.randint(0, n, (bs,), generator=gen) for _ in range(int(spec.time_steps) + 1))
    t0 = 0.0
    for step, (x, y) in enumerate(data.batches("train", indices)):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x = augment_batch(x, data.augment, generator=gen).to(device)
        y = y.to(device)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / max(1, int(spec.time_steps))


def _early_training(model, data, config: dict[str, Any], spec: TrialSpec, device: torch.device, loss_fn):
    """``spec.early_steps`` steps of the validation recipe's optimizer (:func:`nas.training.make_optimizer`:
    SGD with Nesterov momentum, the config's lr, momentum, weight decay and gradient transform) with the
    config's batch size: the early steps are the first steps of the training they are meant to predict."""
    opt = make_optimizer(model, config)
    bs = int(config.get("batch_size", 128))
    gen = torch.Generator().manual_seed(spec.seed + 1)
    tracker = InTrainingStepConsistency(model)
    n = data.train_size
    curve: list[float] = []
    kappas: list[float | None] = []

    def indices():  # drawn lazily: in memory the draws interleave with the augmentation's as they always did
        order, pos = torch.randperm(n, generator=gen), 0
        for _ in range(spec.early_steps):
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=gen), 0
            yield order[pos : pos + bs]
            pos += bs

    model.train()
    for step, (x, y) in enumerate(data.batches("train", indices())):
        x = augment_batch(x, data.augment, generator=gen).to(device)
        y = y.to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        if not torch.isfinite(loss):
            raise TrialFailed(
                f"non-finite training loss at early step {step + 1} (lr={config.get('lr')}, "
                f"batch_size={bs})"
            )
        loss.backward()
        kappas.append(tracker.update())
        opt.step()
        curve.append(loss.detach().item())
    return curve, kappas
