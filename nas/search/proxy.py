"""The proxy-only search (``--trials N``): every candidate scored at init and after the early steps, told
COMPLETE with its objective values, until the study holds N complete trials.

Several drivers may share the study (same storage, e.g. PostgreSQL, one per node): each owns its running
trials through heartbeats, fails another's only when that driver is gone
(:func:`~nas.search.ownership.recover_stale_trials`, checked at start and every heartbeat interval), asks
a new trial only while fewer than the target are complete or running, and gives back a trial that turns
out to be beyond the target (:class:`~nas.search.lifecycle.Lifecycle`). A retry keeps its config and seed.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import optuna

from .executor import cluster_workers, default_workers, make_executor, run_jobs, sigterm_interrupts
from .lifecycle import Lifecycle, trial_spec
from .ownership import HEARTBEAT_INTERVAL_S, STALE_GRACE_S, Driver, Heartbeat, recover_stale_trials
from .ranking import complete_trials

__all__ = ["run_trials"]

logger = logging.getLogger(__name__)


def run_trials(
    study: optuna.Study,
    space: Any,
    settings: Any,
    objectives: list[Any],
    constraints: list[Any],
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Drive the study until it holds ``settings.trials`` COMPLETE trials (a rerun continues up to the
    target, not N more); ``settings`` is a resolved :class:`~nas.search.SearchConfig`.

    Returns counts of this run: ``{"completed", "failed", "recovered", "total_complete"}``.
    ``on_update`` receives a small status dict after each finished trial (for a progress bar).
    """
    driver = Driver.new()
    grace = settings.stale_grace or STALE_GRACE_S
    interval = settings.heartbeat_interval or HEARTBEAT_INTERVAL_S
    recovered = recover_stale_trials(study, driver, grace)
    if recovered:
        logger.warning("marked %d interrupted trial(s) as FAIL; their configs are retried once", recovered)
    target = int(settings.trials)
    stats = {"completed": 0, "failed": 0, "recovered": recovered, "total_complete": len(complete_trials(study))}
    if stats["total_complete"] >= target:
        return stats
    executor = make_executor(int(settings.workers or default_workers(settings.trials_per_gpu)),
                             trials_per_gpu=settings.trials_per_gpu, timeout=settings.trial_timeout,
                             ray_address=settings.ray_address)
    workers = int(settings.workers or cluster_workers(executor, settings.trials_per_gpu)
                  or default_workers(settings.trials_per_gpu))
    max_failures = settings.max_failures if settings.max_failures is not None else max(10, target)
    last_check = [time.monotonic()]
    with sigterm_interrupts(), Heartbeat(study, driver, interval) as heartbeat:
        life = Lifecycle(study, space, settings, objectives, constraints, heartbeat)

        def failed() -> int:
            return stats["failed"] + life.invalid

        def more():
            if failed() >= max_failures or life.active() >= target:
                return None
            cand = life.ask(target, tries=max(1, max_failures - failed()))
            return None if cand is None else (cand.number, trial_spec(settings, cand.config, cand.seed))

        def handle(number: int, status: str, payload: Any, seconds: float) -> None:  # noqa: ARG001
            told = life.complete(number, payload) if status == "ok" else life.fail(number, str(payload))
            if told is None or (status != "ok" and told is False):
                return  # another driver took this trial for stale: its retry is counted where it runs
            if status == "ok" and told:
                stats["completed"] += 1
            else:
                stats["failed"] += 1
                if status != "ok":
                    logger.info("trial %d failed: %s", number, payload)
            if on_update:
                update = {**stats, "failed": failed(), "total_complete": len(complete_trials(study)),
                          "trial": number, "status": status}
                if status != "ok":
                    update["reason"] = str(payload)
                on_update(update)

        def poll() -> None:
            if time.monotonic() - last_check[0] > interval:
                stats["recovered"] += recover_stale_trials(study, driver, grace)
                last_check[0] = time.monotonic()

        try:
            while len(complete_trials(study)) < target and failed() < max_failures:
                run_jobs(executor, workers, (), handle, more=more, poll=poll)
                if len(complete_trials(study)) >= target or failed() >= max_failures:
                    break
                # other drivers hold the remaining trials: wait for them (or for them to go stale)
                time.sleep(min(1.0, interval))
                poll()
        finally:
            executor.shutdown()
    stats["failed"] = failed()
    stats["total_complete"] = len(complete_trials(study))
    if stats["failed"] >= max_failures and stats["total_complete"] < target:
        logger.warning("stopped after %d failed trials in this run (limit %d); see fail_reason in trials.csv",
                       stats["failed"], max_failures)
    return stats
