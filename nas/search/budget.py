"""The budget search (``python -m nas search``, ``nas.search(budget=...)``): :func:`run_budget` climbs the
rungs of the plan and ends with the best trained model.

A pilot of rung-0 candidates measures the costs, :func:`nas.search.plan.plan` sizes the rungs, every rung's
candidates run as jobs on the workers (:func:`~nas.search.executor.run_jobs`), the plan is re-fitted to
the time left (:func:`nas.search.plan.replan`) and the best candidates are promoted
(:func:`nas.search.plan.promote`); the finalists' full trainings end with ``best_model.pt``. The planner is
pure (:mod:`nas.search.plan`); the candidates' values, costs and scores are kept by
:class:`~nas.search.budget_run.BudgetRun`; the state stored after every job
(:mod:`~nas.search.budget_state`) lets a rerun continue an interrupted climb within the budget left.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

from .plan import RESERVE, RUNGS, BudgetError, makespan, plan, promote, replan, waves_time
from . import keys
from .budget_run import BudgetRun, finite
from .budget_async import climb_async
from .budget_policy import fit_epochs
from .budget_state import BudgetState, load_state
from .executor import cluster_workers, default_workers, make_executor, run_jobs, sigterm_interrupts
from .lifecycle import Lifecycle
from .ranking import best_trained
from .ownership import HEARTBEAT_INTERVAL_S, STALE_GRACE_S, Driver, Heartbeat, driver_running, recover_stale_trials

__all__ = ["run_budget"]

#: Seconds between saves of the state while jobs run (besides one after every finished job).
SAVE_EVERY_S = 10.0


def run_budget(study, space, settings, objectives, constraints, folder, input_shape, train_size: int,
               on_event: Callable[[dict], None] | None = None, clock: Callable[[], float] = time.monotonic,
               executor: Any = None) -> dict:
    """Run (or continue) a budgeted multi-fidelity search on ``study``.

    Args:
        settings: a resolved :class:`~nas.search.SearchConfig` (``budget_s``, ``epochs``, ``eta``, ``trials``
            as the most rung-0 candidates, the scoring and the workers).
        objectives, constraints: told when a trial stops climbing (init-phase keys, which every candidate has).
        folder: the study's :class:`~nas.search.keys.StudyFolder` (checkpoints, ``best_model.pt``).
        input_shape, train_size: the dataset's image shape and training-set size (plans epochs).
        on_event: receives dicts ``{"kind": "resume" | "plan" | "rung" | "job" | "fail" | "shorten" | "done",
            "rung", "elapsed", "budget", ...}`` for a progress display.
        clock, executor: the time source and the executor (tests drive the planning with a fake clock).

    Returns:
        ``{"plan", "failed", "completed", "rungs": {rung: candidates}, "best": {...} or None, "resumed"}``.
    """
    t0 = clock()  # the budget counts from here (executor start-up included, as a user waits for it)
    grace = settings.stale_grace or STALE_GRACE_S
    state = load_state(study)
    resumed = state is not None and not state.finished
    if resumed and driver_running(study, state.driver, grace):
        raise BudgetError(f"a budget search is running on study {study.study_name!r} (driver {state.driver}); "
                          f"wait for it to end, or search another --study")
    if not resumed:
        state = BudgetState(budget=float(settings.budget_s), full_epochs=int(settings.epochs))
    elif abs(state.budget - float(settings.budget_s)) > 1e-6:  # another --budget: this run gets it afresh
        state.budget, state.spent = float(settings.budget_s), 0.0
    driver = Driver.new()
    state.driver = driver.id
    heartbeat = Heartbeat(study, driver, settings.heartbeat_interval or HEARTBEAT_INTERVAL_S).__enter__()
    life = Lifecycle(study, space, settings, objectives, constraints, heartbeat)
    workers = int(settings.workers or default_workers(settings.trials_per_gpu))
    own_executor = executor is None
    try:
        if own_executor:
            executor = make_executor(workers, trials_per_gpu=settings.trials_per_gpu,
                                     timeout=settings.trial_timeout, ray_address=settings.ray_address)
            if settings.workers is None:  # a joined cluster runs as many candidates at once as it has workers
                workers = cluster_workers(executor, settings.trials_per_gpu) or workers
        run = BudgetRun(life, settings, folder, input_shape, train_size, workers, state, on_event, clock, t0=t0)
        run.save()  # this driver owns the climb from now on
        if resumed:
            _adopt(run)
        recovered = recover_stale_trials(study, driver, grace)
        if resumed:
            run.event("resume", candidates=len(run.values), left=run.left(), recovered=recovered)
        with sigterm_interrupts():
            try:
                if resumed and (run.state.closing or run.state.best is not None):
                    _close(run)
                if run.state.best is not None:  # interrupted after the result was saved: only the tells were left
                    _end(run, run.state.best)
                elif _is_async(run):
                    handle = _handler(run)
                    climb_async(run, executor, recovered, pilot=lambda: _pilot(run, executor, handle), end=_end,
                                spec=_spec)
                else:
                    _climb(run, executor, recovered)
            finally:
                run.stats["failed"] += life.invalid
                if not run.state.finished:
                    _interrupted(run)
    finally:
        if own_executor and executor is not None:
            executor.shutdown()
        heartbeat.__exit__(None, None, None)
    run.stats["resumed"] = resumed
    return run.stats


#: ``promotion="auto"`` climbs asynchronously from this many workers on. Measured: on one worker the replay
#: (benchmarks/budget_search.py, 50 seeds) found sync ahead (0.92 vs 0.84 of seeds at a top-5 % config at the
#: largest budget; 9.0 vs 11.4 epochs to half the seeds); the simulator (benchmarks/budget_simulator.py) had
#: async 3-5x sooner to a top-5 % config at 8, 64 and 512 workers (budget of 4 trainings; no difference at 8
#: with 20) and nothing clear at 2. A 2-core CPU (2 workers) keeps the synchronous climb the CPU figures describe.
ASYNC_MIN_WORKERS = 4


def _is_async(run: BudgetRun) -> bool:
    """An async climb: the resumed state's (it has a ladder, or it was in its pilot: nothing promoted yet),
    else the settings'."""
    st = run.state
    if st.ladder is not None:
        return True
    if st.rung > 0 or st.closing:
        return False
    if run.settings.promotion == "auto":  # brackets live in the asynchronous climb only
        return run.workers >= ASYNC_MIN_WORKERS or run.settings.brackets > 1
    return run.settings.promotion == "async"


def _interrupted(run: BudgetRun) -> None:
    """Leave the climb for a rerun: the state saved and released (this driver no longer runs it), the
    candidates whose rung-0 scoring was in flight failed and queued again with their config and seed (the
    rerun scores them; the others stay RUNNING for it to adopt)."""
    st = run.state
    kept = st.members()
    for n in [n for n in list(run.life.running) if n not in kept]:
        cand = run.life.running[n]
        if run.life.fail(n, "interrupted: the budget search stopped while it was being scored") and cand.trial.params:
            run.study.enqueue_trial(cand.trial.params, user_attrs={keys.RETRY_OF: n, keys.SEED: cand.seed})
    st.driver = None
    run.save()


def _adopt(run: BudgetRun) -> None:
    """Take over the candidates of the interrupted run that are still climbing (or still to be told)."""
    import optuna

    st = run.state
    numbers = sorted(st.members())
    running = {t.number for t in run.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))}
    for n in numbers:
        if n in running:
            run.adopt(n)
    st.cohort = [n for n in st.cohort if n in run.values]
    st.done = [n for n in st.done if n in run.values]


def _close(run: BudgetRun) -> None:
    """Tell the candidates a promotion had stopped (interrupted while telling them)."""
    run.finish([n for n in run.state.closing if n in run.values], rung=run.state.closing_rung)
    run.state.closing = []
    run.save()


def _jobs(run: BudgetRun, executor, jobs, handle, more=None, stop_when=None) -> None:
    """Run jobs of the current rung; record each one's seconds and say so."""
    seconds = run.seconds.setdefault(run.rung, {})
    count = [0]

    def on_result(number, status, payload, sec) -> None:
        seconds[number] = sec
        count[0] += 1
        handle(number, status, payload)
        run.event("job", trial=number, status=status, done=count[0])

    last = [run.clock()]

    def poll() -> None:  # the seconds spent are saved every few seconds, so a kill -9 loses little of them
        if run.clock() - last[0] > SAVE_EVERY_S:
            run.save()
            last[0] = run.clock()

    run_jobs(executor, run.workers, jobs, on_result, more=more, stop_when=stop_when, poll=poll, clock=run.clock)


def _handler(run: BudgetRun):
    from .keys import EARLY_RUNG_KEYS

    def handle(number, status, payload) -> None:
        if status != "ok":
            run.fail(number, str(payload))
            return
        if run.rung == 0:
            run.store(number, payload)
        elif run.rung == 1:
            run.store(number, {key: payload[key] for key in EARLY_RUNG_KEYS if key in payload})
        else:
            run.store_training(number, payload, run.rung)
        run.mark_done(number)
    return handle


def _pilot(run: BudgetRun, executor, handle) -> None:
    """The pilot (unless the plan exists): rung-0 candidates that measure the costs, then the first plan."""
    s = run.settings
    pilot = s.pilot or max(6, 3 * run.workers)
    if s.trials is not None:
        pilot = min(pilot, s.trials)
    if run.plan is None:
        _jobs(run, executor, [], handle, more=run.ask, stop_when=lambda: run.state.asked >= pilot)
        run.plan = run.first_plan(s.trials)
        run.save()


def _rung0(run: BudgetRun, executor, handle, recovered: int) -> None:
    """The pilot (unless the plan exists), the plan, then the rest of rung 0's cohort."""
    s = run.settings
    cap = s.trials
    _pilot(run, executor, handle)
    run.stats["plan"] = run.plan
    run.event("plan", plan=run.plan, recovered=recovered)

    def rung0_done() -> bool:
        """Rung 0 goes on while the plan, re-fitted to the time left and the costs measured so far, still
        has room for more candidates before the later rungs."""
        if cap is not None and run.state.asked >= cap:
            return True
        costs = run.costs()
        later = dataclasses.replace(run.plan, costs=costs)
        need = sum(waves_time(n, c, run.workers) for n, c in zip(later.counts[1:], later.rung_costs[1:]))
        tight = run.left() * (1 - RESERVE) - need < costs[0]
        if tight or run.state.asked % (4 * run.workers) == 0:
            # the time left, plus what the candidates asked so far cost at today's estimate
            horizon = max(0.0, run.left()) + waves_time(run.state.asked, costs[0], run.workers)
            try:
                run.plan = plan(horizon, costs, run.workers, s.eta, cap, run.full_epochs,
                                min(s.short_epochs, run.full_epochs))
            except BudgetError:
                return True  # not even the smallest chain fits any more: go on with what there is
        return run.state.asked >= run.plan.counts[0]

    _jobs(run, executor, [], handle, more=run.ask, stop_when=rung0_done)


def _promote(run: BudgetRun, prev: int, k: int, cohort: list[int]) -> list[int]:
    """Re-plan with the time left and promote the best of rung ``prev``'s cohort into rung ``k``; the
    others are told COMPLETE. Returns the promoted candidates."""
    before, costs = run.plan, run.costs()
    run.plan = replan(before, prev, run.left(), costs, available=len(cohort))
    run.rung = prev
    survivors = sorted(cohort)
    scores = run.scores(survivors, prev)
    if k in (2, 3):
        # the rung's cost was the median over all; those it promotes (the best-ranked) are often the wider,
        # dearer nets: re-plan with the later rungs' costs scaled to what the promoted ones cost themselves
        # (live, a 15-minute search whose finalists cost 39-81 s against a 45 s median ended at 15m36s)
        top = [survivors[j] for j in promote(scores, run.plan.counts[k])]
        own = [run.short_cost(n) if k == 2 else run.rest_cost(n) for n in top]
        own = [c for c in own if finite(c)]
        if own and costs[k] > 0:
            ratio = sum(own) / len(own) / costs[k]
            dear = tuple(c * ratio if r >= k else c for r, c in enumerate(costs))
            run.plan = replan(before, prev, run.left(), dear, available=len(cohort))
    fits = None
    if k == 3:  # each finalist's rest of training, from its own short rung when it ran
        fits = [run.rest_cost(n) <= max(0.0, run.left()) * (1 - RESERVE) for n in survivors]
        if not any(fits):
            # none finishes its --epochs in time: the best one trains fewer epochs, from scratch (a shorter
            # cosine schedule), as many as fit; it says so
            best_n = survivors[promote(scores, 1)[0]]
            # the one epoch cut (the asynchronous tail's too): as many as fit, fewer than --epochs
            epochs = fit_epochs(max(0.0, run.left()) * (1 - RESERVE), run.epoch_cost(best_n), run.full_epochs)
            if 0 < epochs < run.full_epochs:
                run.event("shorten", trial=best_n, epochs=epochs, was=run.full_epochs)
                run.full_epochs = epochs
                # its short-rung checkpoint follows the longer schedule: start clean
                run.folder.checkpoint(best_n).unlink(missing_ok=True)
            fits = [n == best_n for n in survivors]
    chosen = [survivors[j] for j in promote(scores, run.plan.counts[k], fits)]
    if k == 3:  # the re-plan above counted the finalists' mean cost; their own costs spread around it: the
        # lowest-ranked leave until those fit the time left in waves of the workers
        while len(chosen) > 1 and makespan([run.rest_cost(n) for n in chosen], run.workers) > (
                max(0.0, run.left()) * (1 - RESERVE)):
            chosen.pop()
    for n, sc in zip(survivors, scores):
        run.life.set(n, keys.score_key(RUNGS[prev]), float(sc) if finite(sc) else None)
    # the promotion is stored before the others are told: a rerun after an interruption here finishes
    # the telling (_close) instead of promoting again from a smaller cohort
    run.state.closing, run.state.closing_rung = [n for n in survivors if n not in chosen], prev
    run.rung = k
    run.state.cohort, run.state.done = list(chosen), []
    run.save()
    _close(run)
    run.event("rung", count=len(chosen), plan=run.plan)
    return chosen


def _climb(run: BudgetRun, executor, recovered: int) -> None:
    handle = _handler(run)
    if run.rung == 0:
        _rung0(run, executor, handle, recovered)
        prev = 0
        cohort = list(run.state.cohort)
    else:  # resumed in a training rung: only its unfinished jobs run again
        run.stats["plan"] = run.plan
        run.event("plan", plan=run.plan, recovered=recovered)
        prev = run.rung
        pending = [n for n in run.state.cohort if n not in run.state.done]
        _jobs(run, executor, [(n, _spec(run, n, prev)) for n in pending], handle)
        cohort = list(run.state.done)
    run.stats["rungs"][RUNGS[prev]] = len(cohort)
    for k in range(prev + 1, 4):
        if run.plan.counts[k] == 0 or not cohort:
            continue
        chosen = _promote(run, prev, k, cohort)
        _jobs(run, executor, [(n, _spec(run, n, k)) for n in chosen], handle)
        cohort = list(run.state.done)
        run.stats["rungs"][RUNGS[k]] = len(cohort)
        prev = k
    # ---- the end: the best fully trained finalist is the result; every trial is told
    run.rung = prev
    trained = sorted(cohort) if prev == 3 else []
    best = best_trained({n: run.values[n] for n in trained})
    if best is not None:
        run.save_best(best)
        run.state.best = best
        run.save()  # the result is kept: a rerun after an interruption from here on only tells the rest
    _end(run, best)


def _end(run: BudgetRun, best: int | None) -> None:
    """Tell every candidate still running, report the result (read back from ``best_model.json``)."""
    import json

    run.finish(list(run.life.running))
    summary = None
    if best is not None and run.folder.best_model_json.is_file():
        summary = json.loads(run.folder.best_model_json.read_text())
    run.stats["best"] = summary
    run.state.finished = True
    run.save()
    run.event("done", best=summary)


def _spec(run: BudgetRun, number: int, rung: int):
    if rung == 1:
        return run.early_spec(number)
    return run.train_spec(number, run.settings.short_epochs if rung == 2 else None)
