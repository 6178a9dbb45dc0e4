"""Trial ownership between drivers (nas.ownership.Driver / Heartbeat / recover_stale_trials) on a real SQLite
storage: a running trial is failed only when its driver is gone; a retry keeps its config and seed."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time

import optuna
import pytest

from nas.search.ownership import DRIVER_KEY, HEARTBEAT_KEY, Driver, Heartbeat, recover_stale_trials, trial_seed
from nas.study import open_storage


def _study(tmp_path):
    return optuna.create_study(study_name="own", storage=open_storage(f"sqlite:///{tmp_path / 'own.db'}"))


def _running(study, owner: str | None, heartbeat_age: float | None, seed: int = 7):
    t = study.ask()
    t.suggest_float("x", 0, 1)
    t.set_user_attr("seed", seed)
    if owner is not None:
        study._storage.set_trial_system_attr(t._trial_id, DRIVER_KEY, owner)
    if heartbeat_age is not None:
        study._storage.set_trial_system_attr(t._trial_id, HEARTBEAT_KEY, time.time() - heartbeat_age)
    return t


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_trials_whose_driver_is_gone_are_failed_and_retried_with_their_seed(tmp_path):
    study = _study(tmp_path)
    me = Driver.new()
    host = socket.gethostname()
    cases = {
        "mine, silent": _running(study, me.id, 10_000),
        "other host, fresh heartbeat": _running(study, "elsewhere:1:aa", 5),
        "other host, silent past grace": _running(study, "elsewhere:1:bb", 500, seed=41),
        "this host, live process, silent": _running(study, f"{host}:{__import__('os').getpid()}:cc", 10_000),
        "this host, exited process": _running(study, f"{host}:{_dead_pid()}:dd", 1, seed=43),
        "no owner, just started": _running(study, None, None),
    }
    assert recover_stale_trials(study, me, grace=120) == 2
    state = {k: study.trials[t.number].state.name for k, t in cases.items()}
    assert state == {"mine, silent": "RUNNING", "other host, fresh heartbeat": "RUNNING",
                     "other host, silent past grace": "FAIL", "this host, live process, silent": "RUNNING",
                     "this host, exited process": "FAIL", "no owner, just started": "RUNNING"}
    reasons = {k: study.trials[t.number].user_attrs.get("fail_reason") for k, t in cases.items()}
    # 500 s when it was set, more by the time it is read on a slow machine
    silent = re.search(r"no heartbeat for (\d+) s", reasons["other host, silent past grace"])
    assert silent and 500 <= int(silent.group(1)) < 560, reasons["other host, silent past grace"]
    assert "exited" in reasons["this host, exited process"]
    # each failed trial is enqueued once with its params and seed; asking it gives the same seed back
    retries = []
    for _ in range(2):
        t = study.ask()
        t.suggest_float("x", 0, 1)  # an enqueued param is fixed: the suggestion returns it
        retries.append((t.user_attrs["retry_of_trial"], t.params, trial_seed(t, base_seed=1000)))
    by_failed = {cases["other host, silent past grace"].number: 41, cases["this host, exited process"].number: 43}
    assert {(n, s) for n, _, s in retries} == set(by_failed.items())
    for n, params, _ in retries:
        assert params == study.trials[n].params
    # a second recovery by another driver finds nothing more to fail
    assert recover_stale_trials(study, Driver.new(), grace=120) == 0


def test_a_trial_without_heartbeat_is_stale_after_the_grace_period_from_its_start(tmp_path):
    study = _study(tmp_path)
    t = _running(study, None, None)
    assert recover_stale_trials(study, Driver.new(), grace=3600) == 0
    assert recover_stale_trials(study, Driver.new(), grace=1e-6) == 1
    assert study.trials[t.number].state.name == "FAIL"


def test_heartbeat_keeps_a_claimed_trial_fresh_until_released(tmp_path):
    study = _study(tmp_path)
    driver = Driver.new()
    with Heartbeat(study, driver, interval=0.1) as hb:
        t = study.ask()
        hb.claim(t)
        first = study.trials[t.number].system_attrs[HEARTBEAT_KEY]
        time.sleep(0.5)
        later = study.trials[t.number].system_attrs[HEARTBEAT_KEY]
        assert later > first
        assert study.trials[t.number].system_attrs[DRIVER_KEY] == driver.id
        # another driver with a grace longer than the beat interval leaves it alone
        assert recover_stale_trials(study, Driver.new(), grace=2.0) == 0
        study.tell(t, 1.0)  # finished: the next beat drops it instead of failing
        time.sleep(0.3)
        assert t.number not in hb._owned


def test_trial_seed_is_number_based_unless_enqueued_with_one(tmp_path):
    study = _study(tmp_path)
    t = study.ask()
    assert trial_seed(t, 100) == 100 + t.number
    study.enqueue_trial({}, user_attrs={"seed": 5})
    assert trial_seed(study.ask(), 100) == 5


@pytest.mark.parametrize("driver_id, expected", [("nohost-zz:1:a", None), (f"{socket.gethostname()}:notapid:a", None)])
def test_driver_alive_is_unknown_off_host(driver_id, expected):
    assert Driver.alive(driver_id) is expected
