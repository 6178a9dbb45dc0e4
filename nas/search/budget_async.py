"""The budget search's asynchronous climb (``promotion="async"``, the default): ASHA's promotions over one or
several Hyperband brackets, every decision by :func:`nas.search.budget_policy.choose`.

After the pilot (rung-0 candidates that measure the costs, as in the synchronous search) the brackets are
planned (:func:`nas.search.plan.plan_brackets`) and one submit/wait loop (:func:`~nas.search.executor.run_jobs`)
runs to the end: each free worker gets the promotion or the new candidate the ladder names, each finished
job is stored and the ladder told; candidates that can no longer climb are told COMPLETE as soon as that
is so, but the few the end of the run may still train (about one per worker, :meth:`Ladder.stopped`): when
a worker would idle, the best waiting candidate climbs past the plan, to the final rung shortened to the
epochs that fit when its climb does not (the ladder's tail, :func:`~nas.search.budget_policy.choose`: the
synchronous finalist's epoch cut, from scratch on a shorter schedule; a ``shorten`` event says so); those
left over are told at the end. The ladder (bracket, rung, done, told of every candidate, shortened epochs)
is saved with the budget state after every job, so a rerun after a kill continues it: the candidates still
climbing are adopted, the jobs that had not finished run again (a shortened one with its epochs), the told
ones still count in their rungs' rankings.

A later bracket's candidates are sampled by TPE on the test accuracies of the training rungs so far
(:func:`suggest`; the study's own sampler while fewer than :data:`MIN_OBSERVED` are in) and enter their
bracket's training rung whatever their rung-0 score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from . import keys
from .budget_ladder import Ladder
from .budget_policy import choose
from .budget_run import BudgetRun
from .budget_state import BudgetState
from .executor import run_jobs
from .plan import RUNGS, BudgetError, plan_brackets, waves_time
from .ranking import best_trained

__all__ = ["climb_async", "suggest", "MIN_OBSERVED"]

#: Training-rung results a later bracket's sampler needs before it models them (TPE), else the study's sampler.
MIN_OBSERVED = 4


def climb_async(run: BudgetRun, executor: Any, recovered: int, pilot: Callable[[], None],
                end: Callable[[BudgetRun, int | None], None], spec: Callable[[BudgetRun, int, int], Any]) -> None:
    """Climb to the end of the budget (module docstring). ``pilot()`` runs the synchronous search's pilot
    and first plan (its finished candidates are in ``run.state.cohort``); ``end(run, best)`` tells the rest
    and reports; ``spec(run, number, rung)`` is a candidate's job at a rung."""
    st, s = run.state, run.settings
    if st.ladder is None:
        pilot()
        try:
            plans = plan_brackets(st.budget, run.costs(), run.workers, s.eta, s.trials, run.full_epochs,
                                  min(s.short_epochs, run.full_epochs), s.brackets)
        except BudgetError:
            plans = [run.plan]
        ladder = Ladder(plans, "async")
        for n in st.cohort:
            ladder.add(n, 0)
            ladder.finish(n)
        ladder.asked[0] = max(ladder.asked[0], st.asked)
        st.brackets = [BudgetState.plan_dict(p) for p in plans]
        st.cohort, st.done = [], []
        run.plan = plans[0]
        run.ladder = ladder
        run.save()
        run.event("plan", plan=run.plan, brackets=plans, recovered=recovered)
    else:
        ladder = Ladder.from_dict(st.ladder, [BudgetState.to_plan_of(p) for p in st.brackets])
        run.ladder = ladder
        run.plan = ladder.brackets[0]
        _restore(run, ladder)
        run.event("plan", plan=run.plan, brackets=ladder.brackets, recovered=recovered)
    ladder.limit = s.trials
    ladder.tail = 2 * run.workers  # waiting candidates kept for the tail: two per worker
    run.stats["plan"] = run.plan
    scores: dict[tuple[int, int], dict[int, float]] = {}

    def score(b: int, k: int, numbers: list[int]) -> list[float]:
        out = run.scores(numbers, k)
        scores[(b, k)] = dict(zip(numbers, out))
        return out

    costs = [run.costs()]

    def cost(n: Any, k: int) -> float:
        c = costs[0]
        if k < 3:
            return c[k]
        if n is not None and n in run.seconds.get(2, {}):
            return run.rest_cost(n)  # the rest of its training, from its own short rung's time
        return c[3]  # the epochs after the short rung (choose adds the short rung for a whole training)

    refitted = [-1]
    refit_done = [-1]  # jobs finished at the last re-plan made because new candidates were paused
    book = [0.0]  # the longest the driver's bookkeeping of a finished job took (store, tell, save the state)
    pending = [n for n, c in ladder.cands.items() if not c[2] and c[1] > 0 and n in run.values]

    def mark(n: int) -> None:
        """Store on ``n``'s trial the score that ranked it at the rung it is leaving (None when it has none)."""
        b, k = ladder.cands[n][0], ladder.cands[n][1]
        sc = scores.get((b, k), {}).get(n)
        run.life.set(n, keys.score_key(RUNGS[k]), sc if sc is None or sc == sc else None)

    def job_spec(n: int, k: int):
        """``n``'s job at rung ``k``: a shortened final training has its own (shorter) schedule."""
        out = spec(run, n, k)
        return dataclasses.replace(out, epochs=ladder.epochs[n]) if k == 3 and n in ladder.epochs else out

    def more():
        if pending:
            n = pending.pop(0)
            return n, job_spec(n, ladder.cands[n][1])
        if s.trials is not None and run.state.asked >= s.trials:
            ladder.stop_new = True
        costs[0] = run.costs()
        by_asked = sum(ladder.asked) != refitted[0] and (
            sum(ladder.asked) % (4 * run.workers) == 0
            or all(a >= p.counts[0] for a, p in zip(ladder.asked, ladder.brackets)))
        # paused (the plan's later rungs do not fit at today's costs): re-plan as results come in, else a plan
        # made with the first, cheaper jobs' costs keeps rung 0 paused for the rest of the run
        by_pause = ladder.tight and done[0] != refit_done[0]
        if not ladder.stop_new and (by_asked or by_pause):
            refitted[0], refit_done[0] = sum(ladder.asked), done[0]
            _refit(run, ladder, costs[0])
        # the end (saving the result, telling the trials) needs about two jobs' bookkeeping after the last job
        job = choose(ladder, score, run.left() - 2 * book[0], cost, run.workers, epoch=run.epoch_cost)
        if job is None:
            return None
        if job[0] == "new":
            b = job[1]
            if b > 0 and (params := suggest(run, ladder)) is not None:
                run.study.enqueue_trial(params, user_attrs={keys.BRACKET: b})
            item = run.ask()
            if item is None:
                ladder.stop_new = True
                return None
            ladder.add(item[0], b)
            run.life.set(item[0], keys.BRACKET, b)
            return item
        _, n, k, *cut = job
        mark(n)
        ladder.start(n, k, cut[0] if cut else None)
        if cut:  # from scratch: its short-rung checkpoint follows the longer schedule
            run.folder.checkpoint(n).unlink(missing_ok=True)
            run.event("shorten", trial=n, epochs=cut[0], was=run.full_epochs)
        run.life.set(n, keys.RUNG, RUNGS[k])
        run.rung = max(run.rung, k)
        run.save()
        if sum(ladder.started(b, k) for b in range(len(ladder.brackets))) == 1:  # the rung's first: one line
            run.event("rung", count=1, plan=run.plan, trial=n, promoted=k)
        return n, job_spec(n, k)

    def tell(m: int) -> None:
        """``m`` climbs no further: told COMPLETE at the rung it reached, with that rung's score."""
        mark(m)
        run.finish([m], rung=ladder.cands[m][1])
        ladder.tell(m)

    done = [0]

    def on_result(n, status, payload, sec) -> None:
        t = run.clock()
        k = ladder.cands[n][1]
        if n not in ladder.epochs:  # a shortened training's seconds are not the full rung's cost
            run.seconds.setdefault(k, {})[n] = sec
        rung, run.rung = run.rung, k
        if status != "ok":
            run.fail(n, str(payload))
            ladder.drop(n)
        else:
            if k == 0:
                run.store(n, payload)
            elif k == 1:
                run.store(n, {key: payload[key] for key in keys.EARLY_RUNG_KEYS if key in payload})
            else:
                run.store_training(n, payload, k)
            run.life.set(n, keys.RUNG_DONE, k)
            ladder.finish(n)
        run.rung = rung
        if status == "ok" and k == 2 and payload.get("diverged") and k != ladder.final(ladder.cands[n][0]):
            tell(n)  # diverged in its short training: its full one would too (and its seconds are no epoch's)
        for m in ladder.stopped(score, run.epoch_cost):  # they can no longer climb (but the tail's few): told now
            tell(m)
        done[0] += 1
        run.save()
        book[0] = max(book[0], run.clock() - t)
        run.event("job", trial=n, status=status, done=done[0])

    last = [run.clock()]

    def poll() -> None:
        if run.clock() - last[0] > 10.0:
            run.save()
            last[0] = run.clock()

    run_jobs(executor, run.workers, [], on_result, more=more, poll=poll, clock=run.clock)
    # ---- the end: the best candidate that finished its bracket's final rung is the result
    finals = [n for n, c in ladder.cands.items() if c[2] and c[1] == ladder.final(c[0]) and c[1] == 3]
    for k in range(4):
        count = len({n for b in range(len(ladder.brackets)) for n in ladder.finished(b, k)})
        if count:
            run.stats["rungs"][RUNGS[k]] = count
    run.rung = 3 if finals else run.rung
    run.stats["shortened"] = sum(1 for n in finals if n in ladder.epochs)
    best = best_trained({n: run.values[n] for n in finals if n in run.values})
    if best is not None:
        run.save_best(best)
        run.state.best = best
        run.save()
    for m in [n for n, c in ladder.cands.items() if c[2] and not c[3] and c[1] != ladder.final(c[0])]:
        tell(m)  # kept for a tail that did not take them: told at the rung they reached
    end(run, best)


def _refit(run: BudgetRun, ladder: Ladder, costs) -> None:
    """The brackets re-planned for the time left plus what the candidates asked so far cost at today's
    estimate (as the synchronous rung 0 re-plans): more rung-0 candidates when time is left over."""
    s = run.settings
    horizon = max(0.0, run.left()) + waves_time(sum(ladder.asked), costs[0], run.workers)
    try:
        plans = plan_brackets(horizon, costs, run.workers, s.eta, s.trials, run.full_epochs,
                              min(s.short_epochs, run.full_epochs), len(ladder.brackets))
    except BudgetError:
        return
    if ladder.resize(plans):
        run.plan = ladder.brackets[0]
        run.state.brackets = [BudgetState.plan_dict(p) for p in ladder.brackets]


def _restore(run: BudgetRun, ladder: Ladder) -> None:
    """After a resume: candidates neither adopted nor told leave the ladder (their rung-0 job was in flight:
    they were failed and queued again); the told ones' values are read back for their rungs' rankings."""
    told = [n for n, c in ladder.cands.items() if c[3] and n not in run.values]
    if told:
        by_number = {t.number: t for t in run.study.get_trials(deepcopy=False)}
        for n in told:
            t = by_number.get(n)
            if t is not None and keys.CONFIG in t.user_attrs:
                run.values[n] = {**t.user_attrs, keys.CONFIG: t.user_attrs[keys.CONFIG]}
    for n in [n for n in ladder.cands if n not in run.values]:
        ladder.drop(n)


def suggest(run: BudgetRun, ladder: Ladder) -> dict | None:
    """Parameters for a later bracket's new candidate: TPE (seeded by the search's seed) on the candidates'
    test accuracy after the short rung or their full training; None (the study's sampler decides) while
    fewer than :data:`MIN_OBSERVED` have one."""
    import warnings

    import optuna

    observed = {n: run.values[n].get("final_test_acc") for b in range(len(ladder.brackets))
                for k in (2, 3) for n in ladder.finished(b, k) if n in run.values}
    observed = {n: float(v) for n, v in observed.items() if isinstance(v, (int, float)) and v == v}
    if len(observed) < MIN_OBSERVED:
        return None
    trials = [t for t in run.study.get_trials(deepcopy=False) if t.number in observed and t.params]
    if len(trials) < MIN_OBSERVED:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(
            seed=int(run.settings.seed) + sum(ladder.asked), n_startup_trials=MIN_OBSERVED))
        for t in trials:
            tmp.add_trial(optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                                    value=observed[t.number]))
        trial = tmp.ask()
        try:
            run.life.space.sample(trial)
        except Exception:  # noqa: BLE001 - a rejected sample: the study's sampler decides
            return None
    return dict(trial.params)
