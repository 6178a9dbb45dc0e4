"""Deterministic metrics: randomness a metric cannot avoid comes from its seed, never the caller's RNG.

Every random choice a metric makes on purpose (perturbation directions, signs, weight subsets, the
Rademacher vectors of AZ-NAS) is drawn from a ``torch.Generator`` seeded from the metric's ``seed``
(:meth:`objectives.core.probe.Probe.generator`). Some randomness is not the metric's own: a model in
train mode runs its ``Dropout`` layers (AZ-NAS, ZiCo, jacob_cov evaluate in train mode, as their
references do), and a user's layer may call ``torch.rand``. That randomness reads torch's *global*
generator, so two calls on the same model and batch gave different values, and each call moved the
caller's random stream.

:func:`seeded` runs a block on a private copy of the global generator state (``torch.random.fork_rng``:
the caller's state is restored on exit) seeded with the metric's seed; every registered metric runs
inside it (:func:`objectives.registry.register_metric`), so the same model, batch and ``seed`` give the
same value whatever the caller's RNG state, and a call leaves that state as it was. A metric that draws
nothing from the global generator gives exactly the values it gave before.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

import torch
from torch import Tensor

__all__ = ["seeded", "seed_of"]

_STATE = threading.local()


def seed_of(options: dict[str, Any], default: int = 0) -> int:
    """The ``seed`` among a metric's keyword arguments (``default`` when absent or None)."""
    seed = options.get("seed")
    return default if seed is None else int(seed)


def _cuda_devices(tensors: tuple[Any, ...]) -> list[int]:
    return sorted({t.device.index or 0 for t in tensors if isinstance(t, Tensor) and t.is_cuda})


@contextlib.contextmanager
def seeded(seed: int, *tensors: Any) -> Iterator[None]:
    """Run the block with torch's global generator(s) forked and seeded with ``seed``.

    The CPU generator, and the CUDA generator of every device holding one of ``tensors``, are saved on
    entry, seeded with ``seed`` and restored on exit. Nested blocks keep the outermost seed (a metric that
    calls another metric draws from one stream), so :func:`objectives.score` can seed a metric that has no
    ``seed`` option of its own.

    Args:
        seed: a non-negative integer.
        tensors: the tensors the block computes on (to find the CUDA devices to fork); others are ignored.
    """
    if getattr(_STATE, "depth", 0):
        _STATE.depth += 1
        try:
            yield
        finally:
            _STATE.depth -= 1
        return
    devices = _cuda_devices(tensors)
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(int(seed))
        for d in devices:
            torch.cuda.default_generators[d].manual_seed(int(seed))
        _STATE.depth = 1
        try:
            yield
        finally:
            _STATE.depth = 0
