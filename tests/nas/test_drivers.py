"""Several search drivers on one study (SQLite and a PostgreSQL server the tests start): the target count
of COMPLETE trials, no duplicate numbers, no false "interrupted", and a killed driver's trial retried by
the survivor with the same config and seed. Real processes, real storages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from nas.search.ownership import DRIVER_KEY
from nas.study import open_storage

pytestmark = pytest.mark.integration  # several drivers (subprocesses), PostgreSQL, kill -9

ROOT = Path(__file__).resolve().parents[2]
TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})


def _driver(tmp_path: Path, storage: str, trials: int, *extra: str) -> subprocess.Popen:
    args = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", "--workers", "1",
            "--study", "shared", "--runs-dir", str(tmp_path / "runs"), "--storage", storage, "--trials", str(trials),
            "--early-steps", "3", "--probe-size", "32", "--group-size", "4", "--metrics", "grad_weight_ratio",
            "--objectives", "grad_weight_ratio:max", "--no-progress", *extra]
    return subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def _check_shared(storage: str, trials: int) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    all_trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in all_trials]
    assert len(numbers) == len(set(numbers))
    complete = [t for t in all_trials if t.state.name == "COMPLETE"]
    assert len(complete) == trials, [(t.number, t.state.name, t.user_attrs.get("fail_reason")) for t in all_trials]
    assert all(t.values and t.user_attrs.get("config") for t in complete)
    assert not [t for t in all_trials if t.state.name == "RUNNING"]
    return all_trials


def _storages(tmp_path, request):
    if request.param == "sqlite":
        (tmp_path / "db").mkdir()
        return f"sqlite:///{tmp_path / 'db' / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(tmp_path, request):
    return _storages(tmp_path, request)


@pytest.mark.parametrize("stagger", [0.0, 4.0])
def test_two_drivers_share_one_study(tmp_path, storage, stagger):
    first = _driver(tmp_path, storage, 6)
    time.sleep(stagger)
    second = _driver(tmp_path, storage, 6)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    for p, (out, err) in zip((first, second), outs):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    trials = _check_shared(storage, 6)
    assert not [t for t in trials if t.state.name == "FAIL"]  # no false "interrupted"
    for t in trials:
        if t.state.name == "COMPLETE":
            assert t.user_attrs["seed"] == t.number and t.user_attrs["threads"] == 1
            assert t.system_attrs["driver"]  # each ran under an owner


def test_a_killed_drivers_trial_is_retried_by_the_other_with_its_seed(tmp_path, storage):
    victim = _driver(tmp_path, storage, 5, "--early-steps", "200")
    study = None
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until the victim runs a trial
        time.sleep(0.3)
        try:
            study = optuna.load_study(study_name="shared", storage=open_storage(storage))
        except Exception:  # noqa: BLE001 - not created yet
            continue
        if any(t.state.name == "RUNNING" and "seed" in t.user_attrs for t in study.get_trials(deepcopy=False)):
            break
    else:
        pytest.fail("the first driver never ran a trial")
    survivor = _driver(tmp_path, storage, 5, "--early-steps", "200")  # running when the victim dies
    time.sleep(2)
    # kill the victim in the middle of a trial of its own (on a loaded machine it may just have finished one)
    deadline = time.time() + 120
    while time.time() < deadline and not any(
            t.state.name == "RUNNING" and "seed" in t.user_attrs
            and f":{victim.pid}:" in str(t.system_attrs.get(DRIVER_KEY, ""))
            for t in optuna.load_study(study_name="shared", storage=open_storage(storage)).get_trials(deepcopy=False)):
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-3000:]
    trials = _check_shared(storage, 5)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "interrupted" in failed[0].user_attrs["fail_reason"]
    assert "exited" in failed[0].user_attrs["fail_reason"]
    retry = [t for t in trials if t.user_attrs.get("retry_of_trial") == failed[0].number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == failed[0].params
    assert retry[0].user_attrs["seed"] == failed[0].user_attrs["seed"] == failed[0].number
