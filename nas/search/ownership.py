"""Trial ownership between search drivers sharing one study: who runs a trial, and when it is stale.

Each driver (one ``python -m nas search`` process) has an id (:class:`Driver`); a trial it runs carries
that id and a heartbeat the driver refreshes (:class:`Heartbeat`) as trial system attributes. Another
driver fails and re-enqueues a RUNNING trial only when its owner is gone (:func:`recover_stale_trials`);
a retry keeps its config and seed (:func:`trial_seed`). Any Optuna storage works; PostgreSQL is the one
for drivers on several machines.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import optuna

logger = logging.getLogger(__name__)

__all__ = ["Driver", "Heartbeat", "recover_stale_trials", "owner_gone", "driver_running", "trial_seed", "DRIVER_KEY",
           "HEARTBEAT_KEY", "HEARTBEAT_INTERVAL_S", "STALE_GRACE_S"]


#: Trial system attributes of ownership: the driver that runs the trial and its last heartbeat
#: (``time.time()`` of the driver's machine).
DRIVER_KEY, HEARTBEAT_KEY = "driver", "heartbeat"
#: Seconds between a driver's heartbeats, and the silence after which another driver takes a RUNNING
#: trial for stale (its owner is gone). Drivers' clocks must agree to well within the grace period.
HEARTBEAT_INTERVAL_S, STALE_GRACE_S = 10.0, 120.0


@dataclasses.dataclass(frozen=True)
class Driver:
    """The identity of one search driver: ``host:pid:random`` (unique across machines and restarts)."""

    id: str

    @classmethod
    def new(cls) -> "Driver":
        return cls(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    @staticmethod
    def alive(driver_id: str) -> bool | None:
        """Whether the driver ``driver_id`` still runs: known only on its own host (its pid checked),
        None elsewhere (there, only its heartbeat tells)."""
        host, _, rest = driver_id.partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit():
            return None
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True


class Heartbeat:
    """A driver's claim on its running trials: ``claim(trial)`` marks the trial as this driver's and
    a daemon thread refreshes the heartbeat of every claimed trial each ``interval`` seconds until
    ``release(number)`` (or the end of the ``with`` block).

    Another driver fails a RUNNING trial only when its owner is gone (:func:`recover_stale_trials`), so
    several drivers can share one study.
    """

    def __init__(self, study: optuna.Study, driver: Driver, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self.study, self.driver, self.interval = study, driver, float(interval)
        self._owned: dict[int, int] = {}  # trial number -> trial id
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self, trial_id: int) -> bool:
        """Refresh one heartbeat; False once the trial is finished (it needs no more)."""
        try:
            self.study._storage.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            return False
        except Exception as exc:  # noqa: BLE001 - a transient storage error: the next beat retries
            logger.debug("heartbeat of trial id %d failed: %s", trial_id, exc)
        return True

    def claim(self, trial: optuna.Trial) -> None:
        storage = self.study._storage
        storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, time.time())
        storage.set_trial_system_attr(trial._trial_id, DRIVER_KEY, self.driver.id)
        with self._lock:
            self._owned[trial.number] = trial._trial_id

    def release(self, number: int) -> None:
        with self._lock:
            self._owned.pop(number, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                owned = list(self._owned.items())
            for number, trial_id in owned:
                if not self._beat(trial_id):
                    self.release(number)

    def __enter__(self) -> "Heartbeat":
        self._thread = threading.Thread(target=self._run, name="gradnas-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def owner_gone(trial: optuna.trial.FrozenTrial, now: float, grace: float) -> str | None:
    """Why a RUNNING trial's owner is gone (``"exited"``: its process on this host has ended; ``"sent no
    heartbeat for N s"``: elsewhere, past ``grace`` seconds; a trial without any heartbeat counts from its
    start), or None while the owner lives. The one rule :func:`recover_stale_trials` and
    :func:`driver_running` apply."""
    owner = trial.system_attrs.get(DRIVER_KEY)
    alive = Driver.alive(owner) if owner else None
    last = trial.system_attrs.get(HEARTBEAT_KEY) or (trial.datetime_start.timestamp() if trial.datetime_start else 0.0)
    age = now - last
    if alive or (alive is None and age < grace):
        return None
    return "exited" if alive is False else f"sent no heartbeat for {age:.0f} s (grace {grace:g} s)"


def driver_running(study: optuna.Study, driver_id: str | None, grace: float = STALE_GRACE_S) -> bool:
    """Whether driver ``driver_id`` still runs: its process when it is on this host, else a RUNNING trial it
    owns whose owner is not gone (:func:`owner_gone`)."""
    if not driver_id:
        return False
    alive = Driver.alive(driver_id)
    if alive is not None:
        return alive
    now = time.time()
    return any(t.system_attrs.get(DRIVER_KEY) == driver_id and owner_gone(t, now, grace) is None
               for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def recover_stale_trials(study: optuna.Study, driver: Driver | None = None, grace: float = STALE_GRACE_S) -> int:
    """Fail every RUNNING trial whose owner is gone and enqueue its params once, with the same seed.

    A trial's owner is gone when it is another driver (not ``driver``) and either runs on this host
    and its process has exited, or has sent no heartbeat for ``grace`` seconds (a trial without any
    heartbeat, e.g. from an older version, counts from its start). A trial that is itself a retry is
    not enqueued again, nor one killed before it sampled any parameter (nothing to repeat: the next
    trial the driver asks takes its place). Two drivers recovering the same trial at once fail and enqueue it once (the
    second ``tell`` is refused). Returns the number of trials this call failed.
    """
    count = 0
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = t.system_attrs.get(DRIVER_KEY)
        if driver is not None and owner == driver.id:
            continue
        why = owner_gone(t, now, grace)
        if why is None:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                               f"interrupted: its driver {owner or '(unknown)'} {why}")
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # finished meanwhile, by its owner or another driver's recovery
        if t.user_attrs.get("retry_of_trial") is None and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of_trial": t.number, "seed": t.user_attrs.get("seed")})
        count += 1
    return count


def trial_seed(trial: optuna.Trial, base_seed: int) -> int:
    """The seed of a trial: a retry keeps the seed of the trial it repeats (enqueued with it); any other
    trial gets ``base_seed + number``."""
    seed = trial.user_attrs.get("seed")
    return int(seed) if seed is not None else base_seed + trial.number
