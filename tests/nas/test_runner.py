"""The worker paths give the same values: a trial evaluated in process and on a Ray worker, with the
study's fixed thread count, produces identical numbers; a Ray worker loads its dataset once."""

from __future__ import annotations

import math

import pytest

from nas.evaluate import TrialSpec
from nas.runner import make_executor
from search_spaces import get_space

BOUNDS = {"blocks": (1, 1), "width": (8, 8), "batch_size": (32, 64)}


def _spec(seed: int) -> TrialSpec:
    config = get_space("resnet_cifar", **BOUNDS).default_config() | {"batch_size": 32, "lr": 0.05}
    return TrialSpec(space="resnet_cifar", config=config, dataset="synthetic", bounds=BOUNDS,
                     metrics=["kappa_w", "grad_weight_ratio", "az_expressivity"], early_steps=5, probe_size=32,
                     seed=seed, metric_options={"group_size": 4}, threads=1)


def _run(executor, specs):
    for i, spec in enumerate(specs):
        executor.submit(i, spec)
    out = {}
    while len(out) < len(specs):
        for key, status, payload in executor.wait():
            assert status == "ok", payload
            out[key] = payload
    executor.shutdown()
    return [out[i] for i in range(len(specs))]


def test_in_process_and_ray_give_identical_values():
    specs = [_spec(s) for s in (0, 1, 2)]
    local = _run(make_executor(1), specs)
    remote = _run(make_executor(2), specs)
    for a, b in zip(local, remote):
        for key in ("kappa_w", "grad_weight_ratio", "az_expressivity", "kappa_w@early", "loss_early", "train_loss_last"):
            assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == b[key], (key, a[key], b[key])
    # a Ray worker process runs several trials and loads the dataset once: its later trials find it cached
    by_worker = {}
    for r in remote:
        by_worker.setdefault(r["worker_pid"], []).append(r["time_data"])
    assert any(len(times) > 1 for times in by_worker.values())
    for times in by_worker.values():
        assert all(t < 0.05 for t in times[1:])
