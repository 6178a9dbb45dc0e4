"""The budget search's budget policy: which job of the :class:`~nas.search.budget_ladder.Ladder` fits the time
left (:func:`choose`), and the one rule that cuts a training's epochs to it (:func:`fit_epochs`). Pure (no I/O,
no clock): the live drivers, the simulator and the replay decide with it.

:func:`choose` adds the budget: a job starts only if it, and its candidate's climb to the final rung after
it, fit the time left; new candidates stop when (async: while) the planned later rungs do not fit; when no
candidate has started the final rung yet and waiting any longer would leave none that fits, the best
candidate at the highest rung reached goes straight to the final rung (the run ends with a trained model).

**The tail** (async, given a per-epoch ``epoch`` cost): when a worker would idle (nothing to promote, and no new
candidate may start: its climb does not fit the time left, or ``limit`` is reached), the best waiting candidate
(highest rung first, then its rung's ranking) climbs anyway, past the plan's counts: to its next rung when its
climb from there fits, else straight to the final rung *shortened* to the epochs that fit (:func:`fit_epochs`,
the rule the synchronous climb cuts its finalist with), from scratch on a shorter cosine schedule, at least one
epoch and not fewer than the short rung it trained. A shortened training is a trained candidate like any other:
the result is the best final accuracy, so a shortened one (usually below a full one: fewer epochs) wins only
when it is more accurate. The forced final training above is shortened the same way when it would not fit. A
candidate whose next rung is full stays untold (not :meth:`~nas.search.budget_ladder.Ladder.stopped`) for the
tail while fewer than :attr:`~nas.search.budget_ladder.Ladder.tail` waiting candidates are ahead of it at no
more seconds per epoch: when little time is left the tail would take it before them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .budget_ladder import Cost, Ladder, Score
from .plan import RESERVE

__all__ = ["choose", "fit_epochs"]


def fit_epochs(seconds: float, per_epoch: float, most: int, least: int = 1) -> int:
    """Epochs of a training that fit ``seconds`` at ``per_epoch`` seconds each, at most ``most``; 0 when fewer
    than ``least`` fit (the one shortening rule: the synchronous finalist and the asynchronous tail)."""
    if not per_epoch > 0 or not math.isfinite(per_epoch):
        return 0
    epochs = min(int(most), int(max(0.0, seconds) // per_epoch))
    return epochs if epochs >= max(1, int(least)) else 0


def choose(ladder: Ladder, score: Score, left: float, cost: Cost, workers: int,
           reserve: float = RESERVE, epoch: Callable[[int], float] | None = None) -> tuple | None:
    """:meth:`Ladder.next_job` within ``left`` seconds (module docstring); sets ``ladder.stop_new`` when the
    planned later rungs need the time left. ``cost(number, rung)`` (number None: a new candidate);
    ``epoch(number)``: seconds per epoch of its training (None: nothing is shortened, no tail). Returns
    ``("promote", number, rung)``, ``("shorten", number, rung, epochs)``, ``("new", bracket)`` or None."""
    usable = max(0.0, left) * (1.0 - reserve)

    def seconds(n: Any, b: int, k: int) -> float:
        """Seconds of a job at rung ``k`` of bracket ``b``: the full rung continues the short one, so without
        a short rung in the bracket it is the whole training."""
        return cost(n, k) + (cost(n, 2) if k == 3 and 2 not in ladder.used(b) else 0.0)

    def climb(n: Any, b: int, k: int) -> float:
        """Seconds of ``n``'s job at ``k`` and of its climb to the bracket's final rung after it."""
        u = ladder.used(b)
        return sum(seconds(n, b, r) for r in u[u.index(k):])

    def fits(n: Any, k: int) -> bool:
        b = ladder.cands[n][0] if n is not None else next(
            (i for i, p in enumerate(ladder.brackets) if ladder.asked[i] < p.counts[0]), 0)
        return climb(n, b, k) <= usable

    def whole(n: int) -> float:  # n's final training from where it is (from scratch without its short rung)
        final = ladder.final(ladder.cands[n][0])
        return cost(n, final) + (cost(n, 2) if final == 3 and ladder.cands[n][1] < 2 else 0.0)

    def shortened(n: int) -> int:  # epochs of n's final training cut to the time left (0: not its least)
        p, k = ladder.brackets[ladder.cands[n][0]], ladder.cands[n][1]
        least = p.short_epochs if k >= 2 else 1  # not below the short rung it trained
        epochs = fit_epochs(usable, epoch(n), p.full_epochs, least) if epoch is not None else 0
        return epochs if epochs < p.full_epochs else 0

    # the final rung must be reached: nobody there yet and no time to wait for one more job
    if not any(ladder.started(b, ladder.final(b)) for b in range(len(ladder.brackets))):
        best = ladder.best_waiting(score)
        if best is not None:
            n, b = best
            # the longest a worker may still be busy: a typical job of the highest rung running
            wait = max((cost(None, k) for k in ladder.running_rungs()), default=0.0)
            if whole(n) + wait >= usable:
                if ladder.mode == "async":
                    ladder.tight = True
                else:
                    ladder.stop_new = True
                epochs = shortened(n) if whole(n) > usable else 0
                return ("shorten", n, ladder.final(b), epochs) if epochs else ("promote", n, ladder.final(b))
    if ladder.mode == "async" or not ladder.stop_new:
        # the work above rung 0 still to start, in waves of the workers; async decides it afresh at every call
        # (a cost measured high once, e.g. a slow first short-rung job, must not end rung 0 for the rest of
        # the run: live, that left 24 candidates scored in 3 minutes), sync stops for good
        need = sum(max(0, c - ladder.started(b, k)) * seconds(None, b, k)
                   for b, owed in enumerate(_owed(ladder)) for k, c in owed.items())
        tight = usable - need / max(1, workers) < cost(None, 0)
        if ladder.mode == "async":
            ladder.tight = tight
        elif tight:
            ladder.stop_new = True
    job = ladder.next_job(score, fits)
    if job is None and ladder.mode == "async" and fits(None, 0) and (
            ladder.limit is None or sum(ladder.asked) < ladder.limit):
        # nothing to promote: a worker would idle, so rung 0 grows (ASHA) beyond the plan while a new
        # candidate's climb still fits (up to ``ladder.limit`` candidates in all)
        job = ("new", 0)
    if job is None and ladder.mode == "async" and epoch is not None:
        # the tail: a worker would idle (no new candidate may start); the best waiting candidate whose next rung
        # and climb fit, else whose final training shortened to the time left fits, takes it, past the plan
        for n in ladder.tail_order(score):
            b = ladder.cands[n][0]
            nx = ladder.next_rung(b, ladder.cands[n][1])
            if climb(n, b, nx) <= usable:
                return ("promote", n, nx)
            if epochs := shortened(n):
                return ("shorten", n, ladder.final(b), epochs)
    return job


def _owed(ladder: Ladder) -> list[dict[int, int]]:
    """Per bracket, ``{rung: candidates}`` the later rungs are planned to hold. Sync: the plan's counts.
    Async: what the candidates asked so far earn at the plan's ratios (ASHA's quota once they are all done,
    :meth:`Ladder.quota`), never above the plan: a plan made with the first, cheap jobs' costs that
    overcommits the later rungs then closes rung 0 only once the candidates in hand fill the time left
    (with the plan's own counts a 3-minute search on 2 workers closed it after 24 candidates of ~330)."""
    out = []
    for b, p in enumerate(ladder.brackets):
        u, owed = ladder.used(b), {}
        arrive = ladder.asked[b]
        for j, k in zip(u, u[1:]):
            if ladder.mode == "async":
                owed[k] = min(p.counts[k], arrive * p.counts[k] // max(1, p.counts[j]))
                arrive = max(owed[k], ladder.started(b, k))
            else:
                owed[k] = p.counts[k]
        out.append(owed)
    return out
