"""Budgeted multi-fidelity search: successive halving over the rungs init -> early steps -> short -> full.

A candidate climbs rungs of growing cost and evidence:

====  =========  =====================================================  ==============================
rung  name       what runs on each candidate                            promotion by
====  =========  =====================================================  ==============================
0     ``init``   the rung-0 metrics (no training; <= 2 steps' cost)     combined rung-0 score
1     ``early``  ``early_steps`` SGD steps (the training loss curve)    combined early score
2     ``short``  the first ``short_epochs`` epochs of the full run      test accuracy after them
3     ``full``   the remaining epochs (resumed from the rung-2 state)   -- (the best is the result)
====  =========  =====================================================  ==============================

The rung-0 and early scores are :func:`objectives.combined_score` with
:data:`objectives.combine.BUDGET_INIT_FEATURES` / ``BUDGET_EARLY_FEATURES``: a feature set chosen on the
proxy lab under a cost cap of 2 training steps, because at rung 0 the cost per candidate decides how many
candidates are seen (a non-dominated rank of the objectives when those inputs are missing).

The short rung is the beginning of the full training (same cosine schedule over ``full_epochs``, resumed
from its checkpoint), so a finalist's first epochs are not trained twice. Scores are relative to the
cohort ranked together (:func:`objectives.combined_score` sums log-ranks), so a rung promotes once all of
its candidates are in.

:func:`plan` turns a wall-clock budget, the number of workers and the measured cost of each rung per
candidate into the number of candidates per rung (a reduction factor ``eta`` between rungs 1, 2 and 3,
as in successive halving / Hyperband; rung 0 is cheap, so it takes ``eta`` times more candidates than rung 1
and then whatever budget is left, up to ``max_candidates``). The search measures the first candidates'
costs, plans, and re-plans the later rungs after each rung with the time actually left
(:func:`replan`); :func:`promote` picks the best candidates whose next rung still fits.

This module is pure (no I/O, no torch): the same planner drives ``python -m nas search --budget`` (its
driver, :func:`nas.search.budget.run_budget`) and the replay benchmark ``benchmarks/budget_search.py``.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import re
from typing import Sequence

import numpy as np

__all__ = ["RUNGS", "Plan", "BudgetError", "parse_duration", "format_duration", "waves_time", "makespan", "plan",
           "replan", "promote", "DEFAULT_ETA", "RESERVE", "resources", "used_rungs", "plan_brackets"]

RUNGS = ("init", "early", "short", "full")
DEFAULT_ETA = 3
#: Fraction of the budget kept free for what the plan cannot see (scheduling, stragglers, the final save).
RESERVE = 0.1


class BudgetError(ValueError):
    """A budget that cannot be parsed or that no plan fits (the message says the least that fits)."""


_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """Seconds of ``"90s"``, ``"20m"``, ``"1h"``, ``"1h30m"`` or a bare number of seconds (``"300"``)."""
    t = str(text).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", t):
        seconds = float(t)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([a-z]+)", t)
        if not parts or "".join(n + u for n, u in parts) != t or any(u not in _UNITS for _, u in parts):
            raise BudgetError(f"cannot read duration {text!r}: write e.g. 90s, 20m, 1h or 1h30m")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0:
        raise BudgetError(f"duration {text!r} must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """``"1h02m"``, ``"4m05s"``, ``"12s"``."""
    s = int(round(max(0.0, seconds)))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def waves_time(count: int, cost: float, workers: int) -> float:
    """Wall time of ``count`` jobs of ``cost`` seconds each on ``workers`` parallel workers."""
    return math.ceil(count / max(1, workers)) * cost if count > 0 else 0.0


def makespan(costs: Sequence[float], workers: int) -> float:
    """Wall time of jobs of ``costs`` seconds started in this order, each on the first free of ``workers``."""
    free = [0.0] * max(1, int(workers))
    for c in costs:
        heapq.heapreplace(free, free[0] + float(c))
    return max(free)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Candidates per rung and the wall time the plan expects.

    Attributes:
        budget: seconds for the whole run.
        workers: parallel workers.
        eta: reduction factor between rungs 1 -> 2 -> 3 (rung 0 -> 1 is at least ``eta``).
        counts: candidates per rung (``RUNGS`` order), non-increasing, the last >= 1.
        costs: seconds per candidate of each rung (measured or estimated).
        full_epochs: epochs of the full training (rung 3).
        short_epochs: epochs of the short training (rung 2).
        start: the rung its candidates enter (a Hyperband bracket, :func:`plan_brackets`): 0 screens them by
            the rung-0 score; a later rung admits every candidate there after its rung-0 job (which only
            records its values), ``counts[0] == counts[start]`` and the rungs in between are 0.
    """

    budget: float
    workers: int
    eta: int
    counts: tuple[int, ...]
    costs: tuple[float, ...]
    full_epochs: int
    short_epochs: int = 1
    start: int = 0

    @property
    def rung_costs(self) -> tuple[float, ...]:
        """Seconds per candidate of each rung as planned: the full rung includes the short rung's epochs
        when the short rung is skipped (the full training then starts from scratch)."""
        c = list(self.costs)
        if self.counts[2] == 0:
            c[3] = c[2] + c[3]
        return tuple(c)

    @property
    def expected(self) -> float:
        """Expected wall time: each rung's candidates in waves of ``workers``."""
        return sum(waves_time(n, c, self.workers) for n, c in zip(self.counts, self.rung_costs))

    def expected_from(self, rung: int) -> float:
        """Expected wall time of rungs ``rung`` and later."""
        return sum(waves_time(n, c, self.workers) for n, c in list(zip(self.counts, self.rung_costs))[rung:])

    def describe(self) -> str:
        """One line: ``init 81 -> early 27 -> short 9 (1 ep) -> full 3 (10 ep), expected 14m10s``."""
        parts = []
        for k, (name, n) in enumerate(zip(RUNGS, self.counts)):
            if 0 < k < self.start:
                continue
            if n == 0:
                parts.append(f"{name} skipped")
                continue
            extra = {"short": f" ({self.short_epochs} ep)", "full": f" ({self.full_epochs} ep)"}.get(name, "")
            parts.append(f"{name} {n}{extra}")
        if self.start:
            parts[0] = f"init {self.counts[0]} (all admitted)"
        return " -> ".join(parts) + f", expected {format_duration(self.expected)}"


def resources(costs: Sequence[float]) -> tuple[float, ...]:
    """The compute a candidate has had at each rung: the rung's own cost, and for the full rung the short
    rung's epochs too (the full training continues the short one)."""
    c = tuple(float(max(0.0, x)) for x in costs)
    return (c[0], c[1], c[2], c[2] + c[3])


def used_rungs(costs: Sequence[float], eta: int) -> tuple[bool, ...]:
    """Which rungs a plan runs. Successive halving needs each rung to give a candidate ``eta`` times the
    compute of the previous one (Hyperband's geometric resources); a middle rung whose next rung is not
    ``eta`` times dearer is skipped: its evidence costs about as much as the next rung's, which is better.
    E.g. 50 early steps on a 4,000-example set are most of an epoch (skipped before a 1-epoch rung),
    on CIFAR-10 at batch 128 an eighth of one (kept). Rungs 0 and 3 always run."""
    r = resources(costs)
    used = [True, True, True, True]
    if r[3] < eta * r[2]:
        used[2] = False
    nxt = 2 if used[2] else 3
    if r[nxt] < eta * r[1]:
        used[1] = False
    return tuple(used)


def _factors(costs: Sequence[float], used: Sequence[bool], eta: int) -> dict[int, float]:
    """Per used rung (but the last), how many candidates it takes per candidate of the next used rung: the
    resource ratio (each rung spends about the same budget), at least ``eta``."""
    r = resources(costs)
    idx = [k for k in range(len(RUNGS)) if used[k]]
    out = {}
    for a, b in zip(idx, idx[1:]):
        ratio = r[b] / r[a] if r[a] > 0 else math.inf
        out[a] = max(float(eta), min(ratio, 1e6))
    return out


def plan(
    budget: float,
    costs: Sequence[float],
    workers: int = 1,
    eta: int = DEFAULT_ETA,
    max_candidates: int | None = None,
    full_epochs: int = 10,
    short_epochs: int = 1,
    reserve: float = RESERVE,
) -> Plan:
    """The plan that fits ``budget`` seconds with the most candidates beyond rung 0.

    ``costs`` are seconds per candidate of the four rungs (rung 3: the epochs after the short rung).
    Rungs that are not ``eta`` times cheaper than the next are skipped (:func:`used_rungs`; count 0).
    Going up, each used rung keeps ``1 / f`` of its candidates, ``f`` = the next rung's resource over
    this one's, at least ``eta`` (:func:`_factors`): the count at the first used rung after rung 0 is
    the largest that fits ``(1 - reserve) * budget``; the later ones are ``ceil(n / f)``; rung 0 has
    ``f * n`` candidates (up to ``max_candidates``) and then takes whatever budget is left.

    Raises:
        BudgetError: not even one candidate per used rung fits; the message gives the budget that would.
    """
    if eta < 2:
        raise BudgetError(f"eta must be >= 2, got {eta}")
    costs = tuple(float(max(0.0, c)) for c in costs)
    if len(costs) != len(RUNGS):
        raise BudgetError(f"need one cost per rung ({', '.join(RUNGS)}), got {len(costs)}")
    workers = max(1, int(workers))
    usable = budget * (1.0 - reserve)
    cap = max_candidates if max_candidates is not None else 10**6
    used = used_rungs(costs, eta)
    factors = _factors(costs, used, eta)
    idx = [k for k in range(len(RUNGS)) if used[k]]
    second = idx[1]

    def make(n0: int, n: int) -> Plan:
        counts = [0] * len(RUNGS)
        counts[0], counts[second] = n0, n
        for a, b in zip(idx[1:], idx[2:]):
            counts[b] = max(1, math.ceil(counts[a] / factors[a]))
        return Plan(budget, workers, eta, tuple(counts), costs, full_epochs, short_epochs)

    best: Plan | None = None
    n = 1
    while True:
        n0 = min(cap, math.ceil(factors[0] * n))
        if n0 < eta * n:  # rung 0 must still screen: at most 1 / eta of it goes on
            break
        candidate = make(n0, n)
        if candidate.expected > usable:
            break
        best = candidate
        n += 1
    if best is None:
        least = make(min(cap, max(1, math.ceil(factors[0]))), 1).expected / (1.0 - reserve)
        raise BudgetError(
            f"budget {format_duration(budget)} is too small: one candidate through every rung takes about "
            f"{format_duration(least)} here (give --budget {format_duration(least * 1.2)} or more, or smaller "
            f"--bounds / fewer --epochs)"
        )
    # rung 0 takes the budget left over (it is the cheapest evidence)
    n0 = best.counts[0]
    while n0 < cap and make(n0 + 1, best.counts[second]).expected <= usable:
        n0 += 1
    return make(n0, best.counts[second])


def replan(current: Plan, done_rung: int, remaining: float, costs: Sequence[float],
           available: int | None = None) -> Plan:
    """The later rungs' counts after rung ``done_rung`` finished with ``remaining`` seconds left and the
    costs now measured: the largest next-rung count whose chain (each later used rung ``ceil(n / f)`` with
    the plan's ratios) fits ``(1 - RESERVE) * remaining``; at least one candidate at every later used rung
    even when nothing fits (the run then ends late rather than empty). Without ``available`` the counts are
    never raised above the plan's; with ``available`` (the candidates that finished rung ``done_rung``)
    the next count is at most ``available // eta`` (successive halving keeps screening when a rung was
    cut short), and may rise to it when time is left over (the later ones with it).
    Skipped rungs (count 0) stay skipped."""
    costs = tuple(float(max(0.0, c)) for c in costs)
    counts = list(current.counts)
    later = [k for k in range(done_rung + 1, len(RUNGS)) if counts[k] > 0]
    if not later:
        return dataclasses.replace(current, costs=costs)
    usable = remaining * (1.0 - RESERVE)

    raise_ok = available is not None

    def chain(n: int) -> list[int]:
        out = [n]
        for a, b in zip(later, later[1:]):
            ratio = max(1.0, counts[a] / counts[b])
            nxt_n = max(1, math.ceil(out[-1] / ratio))
            out.append(nxt_n if raise_ok else min(counts[b], nxt_n))
        return out

    top = counts[later[0]]
    if raise_ok:  # survivors // eta: up from the plan when time is left over, down when rung 0 was cut short
        top = max(1, int(available) // current.eta)
    choice = chain(1)
    for n in range(top, 0, -1):
        c = chain(n)
        rc = dataclasses.replace(current, costs=costs).rung_costs
        if sum(waves_time(m, rc[k], current.workers) for k, m in zip(later, c)) <= usable:
            choice = c
            break
    for k, m in zip(later, choice):
        counts[k] = m
    return dataclasses.replace(current, counts=tuple(counts), costs=costs)


def promote(scores: Sequence[float], count: int, fits: Sequence[bool] | None = None) -> list[int]:
    """Indices of the ``count`` best scores (higher is better; NaN last, ties by index), skipping those
    whose next rung does not fit (``fits[i]`` False)."""
    s = np.asarray(scores, dtype=float)
    order = sorted(range(len(s)), key=lambda i: (not np.isfinite(s[i]), -s[i] if np.isfinite(s[i]) else 0.0, i))
    if fits is not None:
        order = [i for i in order if fits[i]]
    return order[: max(0, int(count))]


def _bracket(budget: float, costs: Sequence[float], workers: int, eta: int, start: int, full_epochs: int,
             short_epochs: int, cap: int, reserve: float) -> Plan | None:
    """The largest bracket entering at rung ``start`` (> 0) that fits ``budget``: ``n`` candidates scored at
    rung 0 (their values only) and admitted at ``start``, each later used rung ``ceil(n / f)``; None when
    not even one candidate fits."""
    used = used_rungs(costs, eta)
    factors = _factors(costs, used, eta)
    idx = [k for k in range(len(RUNGS)) if used[k] and k >= start]
    if not idx or idx[0] != start:
        return None

    def make(n: int) -> Plan:
        counts = [0] * len(RUNGS)
        counts[0] = counts[start] = n
        for a, b in zip(idx, idx[1:]):
            counts[b] = max(1, math.ceil(counts[a] / factors[a]))
        return Plan(budget, workers, eta, tuple(counts), tuple(costs), full_epochs, short_epochs, start)

    best = None
    n = 1
    while n <= cap and make(n).expected <= budget * (1.0 - reserve):
        best, n = make(n), n + 1
    return best


def plan_brackets(budget: float, costs: Sequence[float], workers: int = 1, eta: int = DEFAULT_ETA,
                  max_candidates: int | None = None, full_epochs: int = 10, short_epochs: int = 1,
                  brackets: int = 1, reserve: float = RESERVE) -> list[Plan]:
    """Hyperband's schedule: up to ``brackets`` brackets over the budget, bracket 0 = :func:`plan` (every
    candidate screened from rung 0), the next ones entering at the later used rungs in Hyperband's order
    (the most aggressive first: early, short, full). The budget is shared equally (Hyperband) among the
    brackets that fit; a later bracket is added only while bracket 0, at its share, still trains at least
    ``eta`` candidates fully (or, when ``max_candidates`` keeps it below that, as many as alone) and the new
    bracket fits at least ``eta`` candidates at its entry rung (below that the hedge costs the screening more
    than it can recover: with "``eta`` at bracket 0's second used rung" instead, the replay's budget to half
    the seeds was 0.64x TPE + Hyperband's, 0.40x with this rule, ``benchmarks/budget_search.py``).
    ``brackets=1`` is :func:`plan` alone.

    Raises:
        BudgetError: bracket 0 does not fit (as :func:`plan`), or ``brackets < 1``.
    """
    if int(brackets) < 1:
        raise BudgetError(f"brackets must be >= 1, got {brackets}")
    first = plan(budget, costs, workers, eta, max_candidates, full_epochs, short_epochs, reserve)
    cap = max_candidates if max_candidates is not None else 10**6
    starts = [k for k in range(1, len(RUNGS)) if first.counts[k] > 0]
    best = [first]
    for b in range(2, min(int(brackets), len(starts) + 1) + 1):
        share = budget / b
        try:
            zero = plan(share, costs, workers, eta, max_candidates, full_epochs, short_epochs, reserve)
        except BudgetError:
            break
        later = [_bracket(share, costs, workers, eta, s, full_epochs, short_epochs, cap, reserve)
                 for s in starts[: b - 1]]
        # the hedge must not starve the screening: bracket 0, at its share, still trains eta candidates fully
        # (or as many as it would alone, when a cap on the candidates keeps that below eta)
        if zero.counts[-1] < min(eta, first.counts[-1]) or any(
                p is None or p.counts[p.start] < eta for p in later):
            break
        best = [zero, *later]
    return [dataclasses.replace(p, budget=budget) if len(best) == 1 else p for p in best]
