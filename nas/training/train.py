"""Full training of one candidate for validation: the standard recipe, AMP on GPU, resumable checkpoints.

A :class:`TrainSpec` is plain data (picklable), so :func:`train` runs in process or in a Ray task
through the same executors as the search (:func:`nas.search.executor.make_executor`).

Recipe (the same for every candidate, so that only the architecture and the searched hyperparameters
differ):

* the optimizer of :func:`nas.training.recipe.make_optimizer` (the same as the search's early steps):
  SGD with Nesterov momentum (the config's ``momentum``, 0.9 in every space), the config's ``lr`` and
  ``weight_decay`` (applied to every parameter) and its gradient transform; the config's
  ``batch_size``;
* learning rate per step: linear warmup from ``lr / W`` to ``lr`` over the first ``W`` steps, then a
  cosine decay to 0 at the last step, with ``W`` = one epoch or 10 % of all steps, whichever is
  smaller (at least one step);
* each epoch is one pass over a fresh permutation of the train split (seeded by the trial seed and
  the epoch, so a resumed run sees the same batches); the last incomplete batch is dropped;
* train-time augmentation with :func:`nas.data.augment_batch` and the dataset's kind (random crop +
  flip for CIFAR, crop for SVHN, none for MNIST-like and synthetic data);
* on CUDA only: mixed precision (``torch.autocast`` with bfloat16 when supported, else float16 with a
  ``GradScaler``) and channels-last memory format; CPU training is plain float32;
* the dataset's loss (:func:`nas.data.resolve_loss`; cross-entropy by default); batches come through
  ``data.batches`` (whole splits on the device for in-memory data; a streamed dataset's DataLoader
  workers decode them, pinned memory on CUDA);
* after every epoch: loss and accuracy on the whole test split (regression, float targets: the loss
  only, ``test_acc`` entries None, ``history["task"] == "regression"``), then a checkpoint.

Checkpoints (``TrainSpec.checkpoint``, e.g. ``runs/<study>/checkpoints/trial_<n>.pt``) hold the model,
optimizer, scheduler and scaler states, the finished epoch and the history so far; they are written
to a temporary file and moved into place with ``os.replace`` (never half-written), contain only
tensors, dicts, lists, strings and numbers, and are read back with ``torch.load(...,
weights_only=True)``. A checkpoint made for another config, seed or number of epochs is ignored
(training starts over). A checkpoint of a finished training makes :func:`train` return at once.

A non-finite training loss stops the training: the history says ``diverged`` (this is a result,
not an error) and the network as it was is evaluated once more (non-finite outputs count as wrong).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from search_spaces import get_space

from ..data import augment_batch, load_dataset, resolve_loss
from .recipe import jsonable, make_optimizer, resolve_device

__all__ = ["TrainSpec", "train", "warmup_cosine", "load_checkpoint", "CHECKPOINT_FORMAT"]

logger = logging.getLogger(__name__)

#: Bumped when the checkpoint layout changes; other formats are ignored (training starts over).
CHECKPOINT_FORMAT = 1
#: Warmup length: one epoch or this fraction of all steps, whichever is smaller.
WARMUP_FRACTION = 0.1
_EVAL_BATCH = 1024


@dataclasses.dataclass
class TrainSpec:
    """Everything needed to train one candidate.

    Attributes:
        space: registered search-space name.
        config: the candidate's config (validated by the space; gives ``lr``, ``batch_size``,
            ``momentum`` and ``weight_decay``).
        dataset: dataset name (resolved, not ``"auto"``).
        epochs: number of epochs (the cosine schedule ends at the last one).
        bounds: bounds the space was narrowed with (the config is validated against them).
        data_dir: where torchvision datasets live.
        seed: initialization seed (the trial's own seed: the same weights the search scored) and seed
            of the batch order and augmentation.
        data_seed: seed of the dataset split (the study's seed).
        checkpoint: checkpoint path (absolute, so Ray workers find it); None: no checkpoints.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when visible, else CPU).
        amp: ``"auto"`` (bfloat16 if the GPU supports it, else float16; off on CPU), ``"bf16"``,
            ``"fp16"`` or ``"off"``.
        threads: torch intra-op threads (CPU workers); None leaves torch's default.
        trial: the trial number (for messages only).
        stop_after: stop after this many finished epochs (checkpoint written; the learning-rate schedule
            still spans ``epochs``), so a later call with the same spec and no ``stop_after`` continues the
            same run: the budgeted search's short rung is the beginning of its full training. None: all.
    """

    space: str
    config: dict[str, Any]
    dataset: str
    epochs: int = 10
    bounds: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_dir: str = "data"
    seed: int = 0
    data_seed: int = 0
    checkpoint: str | None = None
    device: str | None = None
    amp: str = "auto"
    threads: int | None = None
    trial: int | None = None
    stop_after: int | None = None

    def identity(self) -> str:
        """What a checkpoint must match to be resumed: space, config, dataset, seeds, epochs."""
        return json.dumps(
            {"space": self.space, "config": self.config, "dataset": self.dataset, "seed": self.seed,
             "data_seed": self.data_seed, "epochs": int(self.epochs)},
            sort_keys=True, default=str,
        )


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Learning-rate factor of step ``s`` (0-based): ``(s+1)/W`` for ``s < W``, then
    ``0.5 * (1 + cos(pi * (s - W + 1) / (T - W)))``, reaching 0 after the last step ``T - 1``."""
    total, warm = max(1, int(total_steps)), max(1, int(warmup_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if total <= warm:
            return 1.0
        progress = min(1.0, (step - warm + 1) / (total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def _amp_dtype(spec: TrainSpec, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or spec.amp == "off":
        return None
    if spec.amp == "fp16":
        return torch.float16
    if spec.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (``torch.load(weights_only=True)``), or None when missing/unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged file means "start over", not a crash
        logger.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _evaluate(model, data, device, amp_dtype, channels_last, loss_fn=None) -> tuple[float | None, float | None]:
    """Mean test loss (None if not finite) and accuracy (None for regression: no classes); non-finite outputs
    count as wrong. ``loss_fn`` (mean-reduced, default cross-entropy) is weighted by the batch size."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    n = data.test_size
    chunks = (torch.arange(start, min(start + _EVAL_BATCH, n)) for start in range(0, n, _EVAL_BATCH))
    with torch.no_grad():
        for x, y in data.batches("test", chunks, device):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp_dtype):
                logits = model(x)
            logits = logits.float()
            if loss_fn is None:
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            else:
                loss_sum += loss_fn(logits, y).double() * y.shape[0]
            ok = torch.isfinite(logits).all(dim=1)
            if data.task == "classification":
                correct += ((logits.argmax(dim=1) == y) & ok).sum()
    model.train()
    acc = correct.item() / max(n, 1) if data.task == "classification" else None
    return jsonable(loss_sum.item() / max(n, 1)), acc


def _autocast(device: torch.device, amp_dtype: torch.dtype | None):
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=amp_dtype)


def _empty_history(spec: TrainSpec, device: torch.device, amp_dtype) -> dict[str, Any]:
    return {
        "epochs": int(spec.epochs),
        "train_loss": [],  # mean training-batch loss of each finished epoch
        "test_loss": [],  # mean test loss after each finished epoch (None if not finite)
        "test_acc": [],  # test accuracy after each finished epoch
        "epoch_time": [],  # seconds of each epoch (training + evaluation)
        "lr": [],  # learning rate of the last step of each epoch
        "first_batch_loss": None,  # training loss of the very first batch
        "diverged": False,
        "diverged_epoch": None,  # 1-based epoch in which the loss became non-finite
        "diverged_step": None,  # 1-based step within that epoch
        "final_test_loss": None,  # evaluation after divergence (None when not diverged)
        "final_test_acc": None,
        "finished": False,  # all epochs done, or diverged
        "resumed_from": 0,  # epochs loaded from the checkpoint when this call started
        "epochs_trained": 0,  # epochs trained by this call (not counting the checkpoint's)
        "wall_time": 0.0,  # seconds over all sessions (checkpoint's included)
        "device": str(device),
        "amp": {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype],
        "steps_per_epoch": 0,
        "trial": spec.trial,
    }


def train(spec: TrainSpec, on_epoch: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train one candidate with the standard recipe (module docstring), resuming from its checkpoint.

    Args:
        spec: what to train.
        on_epoch: called with the history after each finished epoch, once the checkpoint is written
            (progress reports; an exception raised there interrupts training with the checkpoint safe).

    Returns:
        The history: ``train_loss``, ``test_loss``, ``test_acc``, ``epoch_time`` and ``lr`` (one
        entry per finished epoch), ``first_batch_loss``, ``diverged`` (with ``diverged_epoch``,
        ``diverged_step``, ``final_test_loss``, ``final_test_acc``), ``resumed_from``,
        ``epochs_trained``, ``wall_time``, ``device``, ``amp``, ``num_classes``. Plain JSON-able data.

    Raises:
        search_spaces.ConfigError: the config does not fit the space.
        torch.cuda.OutOfMemoryError: out of GPU memory (the runner records it as a failure).
    """
    if spec.threads:
        torch.set_num_threads(int(spec.threads))
    device = resolve_device(spec.device)
    amp_dtype = _amp_dtype(spec, device)
    channels_last = device.type == "cuda"
    data = load_dataset(spec.dataset, spec.data_dir, seed=spec.data_seed)
    space = get_space(spec.space, **spec.bounds)
    config = space.validate(spec.config)
    model = space.build(config, data.num_classes, data.input_shape, seed=spec.seed).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()

    # in memory: whole splits on the device once (CIFAR-10 is 0.7 GB in float32), no per-step host copies;
    # streamed: batches decoded by the loader's workers, moved one at a time (pinned memory on CUDA)
    data = data.on(device)
    custom_loss = None if data.loss is None else resolve_loss(data.loss)
    loss_fn = custom_loss or F.cross_entropy
    bs = int(config.get("batch_size", 128))
    n_train = data.train_size
    bs = min(bs, n_train)
    steps_per_epoch = max(1, n_train // bs)
    epochs = int(spec.epochs)
    total_steps = steps_per_epoch * epochs
    warmup = max(1, min(steps_per_epoch, int(WARMUP_FRACTION * total_steps)))
    # the gradient transform's state (GAN's p) is part of the optimizer's state_dict: a resumed run keeps it
    opt = make_optimizer(model, config)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total_steps, warmup))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    history = _empty_history(spec, device, amp_dtype)
    history["steps_per_epoch"] = steps_per_epoch
    history["num_classes"] = int(data.num_classes)
    history["task"] = data.task  # regression: test_acc entries are None, test_loss is the measure
    ckpt_path = Path(spec.checkpoint) if spec.checkpoint else None
    start_epoch = 0
    state = load_checkpoint(ckpt_path) if ckpt_path else None
    if state is not None and (state.get("format") != CHECKPOINT_FORMAT or state.get("identity") != spec.identity()):
        logger.warning("checkpoint %s was made for another config/epochs; training from scratch", ckpt_path)
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        saved = state["history"]
        history.update({k: saved[k] for k in saved if k not in ("device", "amp", "epochs_trained")})
        start_epoch = int(state["epoch"])
        history["resumed_from"] = start_epoch
        history["epochs_trained"] = 0
        if history.get("finished"):
            return history

    def checkpoint(epoch: int) -> None:
        if ckpt_path is None:
            return
        _save_checkpoint(ckpt_path, {
            "format": CHECKPOINT_FORMAT, "identity": spec.identity(), "epoch": epoch,
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {}, "history": history,
        })

    # the same checks on every device; the loss is read back every step on CPU and every 25 on CUDA
    check_every = 25 if device.type == "cuda" else 1
    last = epochs if spec.stop_after is None else max(0, min(epochs, int(spec.stop_after)))
    for epoch in range(start_epoch, last):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(int(spec.seed) * 100_003 + epoch)
        order = torch.randperm(n_train, generator=gen)
        order = order if data.streamed else order.to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        pending: list[torch.Tensor] = []
        bad_step = None
        steps = (order[step * bs : (step + 1) * bs] for step in range(steps_per_epoch))
        for step, (x, y) in enumerate(data.batches("train", steps, device)):
            x = augment_batch(x, data.augment, generator=gen)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp_dtype):
                loss = loss_fn(model(x), y)
            loss_d = loss.detach().float()
            pending.append(loss_d)
            if len(pending) >= check_every or step == steps_per_epoch - 1 or history["first_batch_loss"] is None:
                values = torch.stack(pending).cpu()
                if history["first_batch_loss"] is None:
                    history["first_batch_loss"] = jsonable(values[0].item())
                if not torch.isfinite(values).all():
                    bad_step = step - len(pending) + 1 + int((~torch.isfinite(values)).nonzero()[0])
                    break
                pending = []
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            sched.step()
            loss_sum += loss_d.double()
        if bad_step is not None:
            history["diverged"], history["finished"] = True, True
            history["diverged_epoch"], history["diverged_step"] = epoch + 1, bad_step + 1
            loss_t, acc_t = _evaluate(model, data, device, amp_dtype, channels_last, custom_loss)
            history["final_test_loss"], history["final_test_acc"] = loss_t, acc_t
            history["wall_time"] += time.perf_counter() - t0
            logger.info("trial %s diverged at epoch %d step %d", spec.trial, epoch + 1, bad_step + 1)
            checkpoint(epoch)
            return history
        test_loss, test_acc = _evaluate(model, data, device, amp_dtype, channels_last, custom_loss)
        dt = time.perf_counter() - t0
        history["train_loss"].append(loss_sum.item() / steps_per_epoch)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
        history["epoch_time"].append(dt)
        history["lr"].append(opt.param_groups[0]["lr"])
        history["wall_time"] += dt
        history["epochs_trained"] += 1
        history["finished"] = epoch + 1 == epochs
        checkpoint(epoch + 1)
        if on_epoch is not None:
            on_epoch(history)
    return history
