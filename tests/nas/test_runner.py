"""The worker paths give the same values: the same search run in process (--workers 1) and on Ray
(--workers 2), each in a fresh process as a user runs it, stores identical numbers for every trial
(the study's fixed --threads); a Ray worker loads its dataset once.

The comparison runs in fresh processes on purpose: a process that has already run convolutions with
another thread count keeps oneDNN kernels chosen then, and later results differ in the last digits
(the search command fixes the thread count before any work for that reason).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

pytestmark = pytest.mark.integration  # CLI subprocesses, a Ray instance

ROOT = Path(__file__).resolve().parents[2]
TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})
KEYS = ("kappa_w", "grad_weight_ratio", "az_expressivity", "kappa_w@early", "loss_early", "train_loss_last")


def _search(tmp_path: Path, workers: int) -> list[optuna.trial.FrozenTrial]:
    name = f"w{workers}"
    args = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", "--workers",
            str(workers), "--study", name, "--runs-dir", str(tmp_path), "--trials", "4", "--early-steps", "5",
            "--probe-size", "32", "--group-size", "4", "--metrics", "kappa_w,grad_weight_ratio,az_expressivity",
            "--objectives", "grad_weight_ratio:max", "--sampler", "random", "--no-progress"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, "-m", "nas", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / name / 'study.db'}")
    return [t for t in study.trials if t.state.name == "COMPLETE"]


def test_in_process_and_ray_give_identical_values(tmp_path):
    local = {t.number: t for t in _search(tmp_path, 1)}
    remote = {t.number: t for t in _search(tmp_path, 2)}
    same = [n for n in local if n in remote and local[n].user_attrs["config"] == remote[n].user_attrs["config"]]
    assert len(same) >= 3
    for n in same:
        a, b = local[n].user_attrs, remote[n].user_attrs
        assert a["threads"] == b["threads"] == 1 and a["seed"] == b["seed"]
        for key in KEYS:
            x, y = a.get(key), b.get(key)
            assert (x is None and y is None) or x == y or (math.isnan(x) and math.isnan(y)), (n, key, x, y)
    # a Ray worker process runs several trials and loads the dataset once: its later trials find it cached
    by_worker: dict[int, list[float]] = {}
    for t in sorted(remote.values(), key=lambda t: t.datetime_start):
        by_worker.setdefault(t.user_attrs["worker_pid"], []).append(t.user_attrs["time_data"])
    assert any(len(times) > 1 for times in by_worker.values())
    for times in by_worker.values():
        assert all(t < 0.05 for t in times[1:])
