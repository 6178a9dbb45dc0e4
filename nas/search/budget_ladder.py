"""Which job a budget search runs next: successive halving's promotion rule, synchronous or asynchronous
(ASHA), over one or several brackets (Hyperband). Pure (no I/O, no clock, no torch): the live driver
(:mod:`nas.search.budget_async`), the cluster simulator (``benchmarks/budget_simulator.py``) and the replay
(``benchmarks/budget_search.py``) all decide with it.

A :class:`Ladder` holds the brackets' plans (:func:`nas.search.plan.plan_brackets`) and where each candidate
is: its bracket, the rung it is at, whether that rung's job has finished, whether it was told (stopped).
:meth:`Ladder.next_job` answers, for a free worker, the promotion or the new candidate to run:

* **async** (ASHA, Li et al. 2020): a candidate done at rung ``k`` climbs to the bracket's next used rung
  ``k'`` as soon as it is among the best ``floor(n * counts[k'] / counts[k])`` of the ``n`` candidates that
  have finished rung ``k`` so far (the top ``1 / eta`` when the plan's ratio is ``eta``; the plan's own ratio
  otherwise, so the rung fills as planned), while rung ``k'`` has room. Once rung ``k`` is *closed* (no
  candidate can still arrive there) its best fill the rest of ``k'``. Promotions go first, highest rung
  first; a new candidate only when nothing is promotable: no worker waits for a rung to complete.
* **sync**: a rung promotes only once it is closed (the old behaviour: every candidate of the rung in).

A bracket entering at a rung ``start > 0`` admits each of its candidates there as soon as its rung-0 job
(which records its values) is done, whatever its rung-0 score: it recovers what the rung-0 ranking misses.
Scores come from the caller (``score(bracket, rung, numbers) -> list``, higher is better; the rung-0
ranking is relative to the cohort, so it is asked again as the cohort grows).

:func:`choose` adds the budget: a job starts only if it, and its candidate's climb to the final rung after
it, fit the time left; new candidates stop when the planned later rungs no longer fit; and when no
candidate has started the final rung yet and waiting any longer would leave none that fits, the best
candidate at the highest rung reached goes straight to the final rung (the run ends with a trained model).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .plan import RESERVE, Plan

__all__ = ["PROMOTIONS", "Ladder", "choose", "ranked"]

PROMOTIONS = ("sync", "async")

#: ``score(bracket, rung, numbers)``: promotion scores of ``numbers`` (done at ``rung``), higher is better.
Score = Callable[[int, int, list[int]], Sequence[float]]
#: ``cost(number, rung)``: expected seconds of the job of ``number`` (None: a new candidate) at ``rung``.
Cost = Callable[[Any, int], float]


def ranked(numbers: Sequence[int], scores: Sequence[float]) -> list[int]:
    """``numbers`` best score first (NaN last, ties by the lower number)."""
    s = [float(x) if x is not None and np.isfinite(x) else math.nan for x in scores]
    return [n for _, n in sorted(zip(s, numbers), key=lambda t: (not np.isfinite(t[0]),
                                                                  -t[0] if np.isfinite(t[0]) else 0.0, t[1]))]


class Ladder:
    """Brackets and the position of every candidate (module docstring).

    ``cands[n] = [bracket, rung, done, told]``; ``asked[b]``: candidates bracket ``b`` has asked (failed ones
    too); ``stop_new``: no more new candidates (the time left is for the later rungs).
    """

    def __init__(self, brackets: Sequence[Plan], mode: str = "async") -> None:
        if mode not in PROMOTIONS:
            raise ValueError(f"promotion must be one of {', '.join(PROMOTIONS)}, got {mode!r}")
        if not brackets:
            raise ValueError("a ladder needs at least one bracket")
        self.brackets, self.mode = list(brackets), mode
        self.cands: dict[int, list] = {}
        self.asked = [0] * len(self.brackets)
        self.stop_new = False

    # ---------------------------------------------------------------- structure
    def used(self, b: int) -> list[int]:
        """The rungs bracket ``b`` runs: 0, then its entry rung and the later used rungs."""
        p = self.brackets[b]
        return [0] + [k for k in range(1, len(p.counts)) if p.counts[k] > 0 and k >= p.start]

    def next_rung(self, b: int, k: int) -> int | None:
        u = self.used(b)
        i = u.index(k)
        return u[i + 1] if i + 1 < len(u) else None

    def final(self, b: int) -> int:
        return self.used(b)[-1]

    # ---------------------------------------------------------------- events
    def add(self, number: int, bracket: int) -> None:
        """A new candidate of ``bracket``, its rung-0 job running."""
        self.cands[number] = [bracket, 0, False, False]
        self.asked[bracket] += 1

    def start(self, number: int, rung: int) -> None:
        """``number``'s job at ``rung`` starts (a promotion)."""
        c = self.cands[number]
        c[1], c[2] = rung, False

    def finish(self, number: int) -> None:
        self.cands[number][2] = True

    def drop(self, number: int) -> None:
        """A failed candidate leaves the ladder (its slot in the rung is free again)."""
        self.cands.pop(number, None)

    def tell(self, number: int) -> None:
        self.cands[number][3] = True

    # ---------------------------------------------------------------- queries
    def members(self, b: int) -> list[int]:
        return [n for n, c in self.cands.items() if c[0] == b]

    def finished(self, b: int, k: int) -> list[int]:
        """Candidates of bracket ``b`` that finished rung ``k`` (those promoted past it included)."""
        return sorted(n for n, c in self.cands.items() if c[0] == b and (c[1] > k or (c[1] == k and c[2])))

    def started(self, b: int, k: int) -> int:
        """Candidates of bracket ``b`` that reached rung ``k`` (running or done there, or past it)."""
        return sum(1 for c in self.cands.values() if c[0] == b and c[1] >= k)

    def running(self) -> list[int]:
        return sorted(n for n, c in self.cands.items() if not c[2])

    def closed(self, b: int, k: int) -> bool:
        """No candidate can still arrive at, or be running at, rung ``k`` of bracket ``b``."""
        if any(c[0] == b and c[1] <= k and not c[2] for c in self.cands.values()):
            return False
        if k == 0:
            return self.stop_new or self.asked[b] >= self.brackets[b].counts[0]
        u = self.used(b)
        prev = u[u.index(k) - 1]
        return self.closed(b, prev) and self.started(b, k) >= min(self.brackets[b].counts[k], len(self.finished(b, prev)))

    def quota(self, b: int, k: int) -> int:
        """How many of the best done at rung ``k`` may be at the next rung now (module docstring)."""
        nx = self.next_rung(b, k)
        fin = len(self.finished(b, k))
        p = self.brackets[b]
        if k == 0 and p.start > 0:
            return fin  # admitted whatever their rung-0 score
        if self.closed(b, k):
            return p.counts[nx]
        if self.mode == "sync":
            return 0
        return min(p.counts[nx], (fin * p.counts[nx]) // max(1, p.counts[k]))

    def promotable(self, b: int, k: int, score: Score) -> list[int]:
        """Candidates done at rung ``k`` of bracket ``b`` that may climb now, best first."""
        nx = self.next_rung(b, k)
        if nx is None or self.started(b, nx) >= self.brackets[b].counts[nx]:
            return []
        q = self.quota(b, k)
        if q <= 0:
            return []
        fin = self.finished(b, k)
        order = fin if (k == 0 and self.brackets[b].start > 0) else ranked(fin, score(b, k, fin))
        return [n for n in order[:q] if self.cands[n][1] == k and not self.cands[n][3]]

    def next_job(self, score: Score, fits: Callable[[Any, int], bool] = lambda n, k: True) -> tuple | None:
        """``("promote", number, rung)``, ``("new", bracket)`` or None (nothing to start now)."""
        for k in sorted({k for b in range(len(self.brackets)) for k in self.used(b)}, reverse=True):
            for b in range(len(self.brackets)):
                if k not in self.used(b) or k == self.final(b):
                    continue
                nx = self.next_rung(b, k)
                for n in self.promotable(b, k, score):
                    if fits(n, nx):
                        return ("promote", n, nx)
        if not self.stop_new:
            for b, p in enumerate(self.brackets):
                if self.asked[b] < p.counts[0] and fits(None, 0):
                    return ("new", b)
        return None

    def stopped(self) -> list[int]:
        """Candidates done at a rung below their bracket's final one, not told yet, that can no longer climb
        (the next rung is full)."""
        out = []
        for n, (b, k, done, told) in self.cands.items():
            if done and not told and k != self.final(b):
                nx = self.next_rung(b, k)
                if self.started(b, nx) >= self.brackets[b].counts[nx]:
                    out.append(n)
        return sorted(out)

    def best_waiting(self, score: Score) -> tuple[int, int] | None:
        """(number, bracket) of the best candidate done at the highest non-final rung any bracket reached
        (the one to train fully when time runs out); None when none is done."""
        for k in sorted({k for b in range(len(self.brackets)) for k in self.used(b)}, reverse=True):
            for b in range(len(self.brackets)):
                if k not in self.used(b) or k == self.final(b):
                    continue
                fin = [n for n in self.finished(b, k) if self.cands[n][1] == k and not self.cands[n][3]]
                if fin:
                    return ranked(fin, score(b, k, fin))[0], b
        return None

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "cands": {str(n): list(c) for n, c in self.cands.items()},
                "asked": list(self.asked), "stop_new": self.stop_new}

    @classmethod
    def from_dict(cls, data: dict[str, Any], brackets: Sequence[Plan]) -> "Ladder":
        lad = cls(brackets, data.get("mode", "async"))
        lad.cands = {int(n): list(c) for n, c in data.get("cands", {}).items()}
        lad.asked = list(data.get("asked", lad.asked))
        lad.stop_new = bool(data.get("stop_new", False))
        return lad


def choose(ladder: Ladder, score: Score, left: float, cost: Cost, workers: int,
           reserve: float = RESERVE) -> tuple | None:
    """:meth:`Ladder.next_job` within ``left`` seconds (module docstring); sets ``ladder.stop_new`` when the
    planned later rungs need the time left. ``cost(number, rung)`` (number None: a new candidate)."""
    usable = max(0.0, left) * (1.0 - reserve)

    def climb(n: Any, b: int, k: int) -> float:
        """Seconds of ``n``'s job at ``k`` and of its climb to the bracket's final rung after it."""
        u = ladder.used(b)
        return sum(cost(n, r) for r in u[u.index(k):])

    def fits(n: Any, k: int) -> bool:
        b = ladder.cands[n][0] if n is not None else next(
            (i for i, p in enumerate(ladder.brackets) if ladder.asked[i] < p.counts[0]), 0)
        return climb(n, b, k) <= usable

    # the final rung must be reached: nobody there yet and no time to wait for one more job
    if not any(ladder.started(b, ladder.final(b)) for b in range(len(ladder.brackets))):
        best = ladder.best_waiting(score)
        if best is not None:
            n, b = best
            wait = max(cost(m, ladder.cands[m][1]) for m in ladder.running()) if ladder.running() else 0.0
            if cost(n, ladder.final(b)) + wait >= usable:
                ladder.stop_new = True
                return ("promote", n, ladder.final(b))
    if not ladder.stop_new:
        # the planned work above rung 0 still to start, in waves of the workers
        need = 0.0
        for b, p in enumerate(ladder.brackets):
            for k in ladder.used(b)[1:]:
                need += max(0, p.counts[k] - ladder.started(b, k)) * cost(None, k)
        if usable - need / max(1, workers) < cost(None, 0):
            ladder.stop_new = True
    return ladder.next_job(score, fits)
