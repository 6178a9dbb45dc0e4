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

The budget (which of these jobs fits the time left, the forced final training, the end-of-run tail) is
:mod:`nas.search.budget_policy`.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .plan import Plan

__all__ = ["PROMOTIONS", "Ladder", "ranked", "Score", "Cost"]

PROMOTIONS = ("sync", "async")

#: ``score(bracket, rung, numbers)``: promotion scores of ``numbers`` (done at ``rung``), higher is better.
Score = Callable[[int, int, list[int]], Sequence[float]]
#: ``cost(number, rung)``: expected seconds of the job of ``number`` (None: a new candidate) at ``rung``; rung 3:
#: the epochs after the short rung (:func:`nas.search.budget_policy.choose` adds the short rung's cost where
#: a training starts from scratch).
Cost = Callable[[Any, int], float]


def ranked(numbers: Sequence[int], scores: Sequence[float]) -> list[int]:
    """``numbers`` best score first (NaN last, ties by the lower number)."""
    s = [float(x) if x is not None and np.isfinite(x) else math.nan for x in scores]
    return [n for _, n in sorted(zip(s, numbers), key=lambda t: (not np.isfinite(t[0]),
                                                                  -t[0] if np.isfinite(t[0]) else 0.0, t[1]))]


class Ladder:
    """Brackets and the position of every candidate (module docstring).

    ``cands[n] = [bracket, rung, done, told]``; ``asked[b]``: candidates bracket ``b`` has asked (failed ones
    too); ``stop_new``: no more new candidates by the plan, for good (the time left is for the later rungs; an
    idle worker may still take one, see :func:`~nas.search.budget_policy.choose`); ``tight``: the same for now
    (async, recomputed by :func:`~nas.search.budget_policy.choose`); ``limit``: the most candidates in all. Per
    (bracket, rung) it keeps who finished there, how many reached it, how many run there and the ranking last
    computed, so a decision costs O(rungs) besides re-ranking a rung that changed. ``epochs[n]``: the epochs of
    ``n``'s shortened final training (the tail); ``tail``: how many waiting candidates :meth:`stopped` keeps for
    it.
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
        self.tight = False  # async: the planned later rungs need the time left now (choose recomputes it)
        self.limit: int | None = None  # the most candidates in all (the search's --trials)
        self.tail = 0  # waiting candidates kept untold for the end-of-run tail (0: none)
        self.epochs: dict[int, int] = {}  # shortened final trainings' epochs
        self._used = [[0] + [k for k in range(1, len(p.counts)) if p.counts[k] > 0 and k >= p.start]
                      for p in self.brackets]
        self._fin: dict[tuple[int, int], set[int]] = {}
        self._started: dict[tuple[int, int], int] = {}
        self._running: dict[tuple[int, int], int] = {}
        self._waiting: dict[tuple[int, int], set[int]] = {}  # done there, not promoted, not told
        self._ranked: dict[tuple[int, int], tuple[frozenset, list[int]]] = {}

    # ---------------------------------------------------------------- structure
    def used(self, b: int) -> list[int]:
        """The rungs bracket ``b`` runs: 0, then its entry rung and the later used rungs."""
        return self._used[b]

    def next_rung(self, b: int, k: int) -> int | None:
        u = self._used[b]
        i = u.index(k)
        return u[i + 1] if i + 1 < len(u) else None

    def final(self, b: int) -> int:
        return self._used[b][-1]

    def _rungs_desc(self) -> list[int]:
        return sorted({k for u in self._used for k in u}, reverse=True)

    # ---------------------------------------------------------------- events
    def add(self, number: int, bracket: int) -> None:
        """A new candidate of ``bracket``, its rung-0 job running."""
        self.cands[number] = [bracket, 0, False, False]
        self.asked[bracket] += 1
        self._bump(self._started, (bracket, 0), 1)
        self._bump(self._running, (bracket, 0), 1)

    def start(self, number: int, rung: int, epochs: int | None = None) -> None:
        """``number``'s job at ``rung`` starts (a promotion, or straight to the final rung, ``epochs`` when cut)."""
        c = self.cands[number]
        if epochs is not None:
            self.epochs[number] = int(epochs)
        b, old = c[0], c[1]
        if not c[2]:
            self._bump(self._running, (b, old), -1)
        self._waiting.get((b, old), set()).discard(number)
        for r in self._used[b]:
            if old < r <= rung:
                self._bump(self._started, (b, r), 1)
        c[1], c[2] = rung, False
        self._bump(self._running, (b, rung), 1)

    def finish(self, number: int) -> None:
        c = self.cands[number]
        b, k = c[0], c[1]
        c[2] = True
        self._bump(self._running, (b, k), -1)
        self._fin.setdefault((b, k), set()).add(number)
        if not c[3]:
            self._waiting.setdefault((b, k), set()).add(number)

    def drop(self, number: int) -> None:
        """A failed candidate leaves the ladder (its slot in the rung is free again)."""
        c = self.cands.pop(number, None)
        self.epochs.pop(number, None)
        if c is None:
            return
        b, k, done = c[0], c[1], c[2]
        if not done:
            self._bump(self._running, (b, k), -1)
        for r in self._used[b]:
            if r <= k:
                self._bump(self._started, (b, r), -1)
            self._fin.get((b, r), set()).discard(number)
            self._waiting.get((b, r), set()).discard(number)

    def tell(self, number: int) -> None:
        c = self.cands[number]
        c[3] = True
        self._waiting.get((c[0], c[1]), set()).discard(number)

    @staticmethod
    def _bump(d: dict, key: tuple[int, int], by: int) -> None:
        d[key] = d.get(key, 0) + by

    # ---------------------------------------------------------------- queries
    def members(self, b: int) -> list[int]:
        return [n for n, c in self.cands.items() if c[0] == b]

    def finished(self, b: int, k: int) -> list[int]:
        """Candidates of bracket ``b`` that finished rung ``k`` (those promoted past it included)."""
        return sorted(self._fin.get((b, k), ()))

    def started(self, b: int, k: int) -> int:
        """Candidates of bracket ``b`` that reached rung ``k`` (running or done there, or past it)."""
        return self._started.get((b, k), 0)

    def running(self) -> list[int]:
        return sorted(n for n, c in self.cands.items() if not c[2])

    def running_rungs(self) -> set[int]:
        return {k for (b, k), m in self._running.items() if m > 0}

    @property
    def no_new(self) -> bool:
        """No new candidate by the plan now: stopped for good (:attr:`stop_new`) or, async, for as long as the
        planned later rungs need the time left (:attr:`tight`, recomputed by
        :func:`~nas.search.budget_policy.choose`)."""
        return self.stop_new or self.tight

    def closed(self, b: int, k: int) -> bool:
        """No candidate can still arrive at, or be running at, rung ``k`` of bracket ``b``."""
        u = self._used[b]
        if any(self._running.get((b, r), 0) for r in u if r <= k):
            return False
        if k == 0:
            return self.no_new or self.asked[b] >= self.brackets[b].counts[0]
        prev = u[u.index(k) - 1]
        return self.closed(b, prev) and self.started(b, k) >= min(self.brackets[b].counts[k],
                                                                  len(self._fin.get((b, prev), ())))

    def quota(self, b: int, k: int) -> int:
        """How many of the best done at rung ``k`` may be at the next rung now (module docstring)."""
        nx = self.next_rung(b, k)
        fin = len(self._fin.get((b, k), ()))
        p = self.brackets[b]
        if k == 0 and p.start > 0:
            return fin  # admitted whatever their rung-0 score
        if self.closed(b, k):
            return p.counts[nx]
        if self.mode == "sync":
            return 0
        return min(p.counts[nx], (fin * p.counts[nx]) // max(1, p.counts[k]))

    def order(self, b: int, k: int, score: Score) -> list[int]:
        """Those done at rung ``k`` of bracket ``b``, best first (recomputed only when they changed)."""
        fin = frozenset(self._fin.get((b, k), ()))
        cached = self._ranked.get((b, k))
        if cached is None or cached[0] != fin:
            numbers = sorted(fin)
            out = numbers if (k == 0 and self.brackets[b].start > 0) else ranked(numbers, score(b, k, numbers))
            self._ranked[(b, k)] = cached = (fin, out)
        return cached[1]

    def promotable(self, b: int, k: int, score: Score) -> list[int]:
        """Candidates done at rung ``k`` of bracket ``b`` that may climb now, best first."""
        nx = self.next_rung(b, k)
        if nx is None or self.started(b, nx) >= self.brackets[b].counts[nx] or not self._waiting.get((b, k)):
            return []
        q = self.quota(b, k)
        if q <= 0:
            return []
        waiting = self._waiting[(b, k)]
        return [n for n in self.order(b, k, score)[:q] if n in waiting]

    def next_job(self, score: Score, fits: Callable[[Any, int], bool] = lambda n, k: True) -> tuple | None:
        """``("promote", number, rung)``, ``("new", bracket)`` or None (nothing to start now)."""
        for k in self._rungs_desc():
            for b in range(len(self.brackets)):
                if k not in self._used[b] or k == self.final(b):
                    continue
                nx = self.next_rung(b, k)
                for n in self.promotable(b, k, score):
                    if fits(n, nx):
                        return ("promote", n, nx)
        if not self.no_new:
            # the bracket furthest behind its planned rung-0 count (bracket 0 first on ties): the brackets
            # fill side by side, so a re-fit that grows bracket 0 does not starve the later ones
            open_ = [b for b, p in enumerate(self.brackets) if self.asked[b] < p.counts[0]]
            if open_:
                b = min(open_, key=lambda b: (self.asked[b] / self.brackets[b].counts[0], b))
                if fits(None, 0):
                    return ("new", b)
        return None

    def stopped(self, score: Score | None = None, epoch: Callable[[int], float] | None = None) -> list[int]:
        """Candidates done at a rung below their bracket's final one, not told yet, that can no longer climb
        (the next rung is full), but those the tail may take (given ``score``): the ones with fewer than
        :attr:`tail` waiting candidates ahead of them in :meth:`tail_order` at no more seconds per ``epoch``
        (without ``epoch``: the first :attr:`tail`)."""
        out: list[int] = []
        for (b, k), waiting in self._waiting.items():
            nx = self.next_rung(b, k) if k in self._used[b] else None
            if waiting and nx is not None and self.started(b, nx) >= self.brackets[b].counts[nx]:
                out += waiting
        if out and self.tail > 0 and score is not None:
            kept, ahead = set(), []  # ahead: the per-epoch seconds of those before, sorted
            for n in self.tail_order(score):
                c = float(epoch(n)) if epoch is not None else 0.0
                if bisect.bisect_right(ahead, c) < self.tail:
                    kept.add(n)
                bisect.insort(ahead, c)
            out = [n for n in out if n not in kept]
        return sorted(out)

    def tail_order(self, score: Score) -> Iterator[int]:
        """The candidates waiting below their bracket's final rung, highest rung first, each rung best first."""
        for k in self._rungs_desc():
            for b in range(len(self.brackets)):
                if k in self._used[b] and k != self.final(b) and self._waiting.get((b, k)):
                    waiting = self._waiting[(b, k)]
                    yield from (n for n in self.order(b, k, score) if n in waiting)

    def best_waiting(self, score: Score) -> tuple[int, int] | None:
        """(number, bracket) of the best candidate done at the highest non-final rung any bracket reached
        (the one to train fully when time runs out); None when none is done."""
        n = next(self.tail_order(score), None)
        return None if n is None else (n, self.cands[n][0])

    def resize(self, brackets: Sequence[Plan]) -> bool:
        """Take re-fitted plans' counts (the time left and the costs measured so far): never below what a
        rung already holds; only when every bracket runs the same rungs as before. True when taken."""
        if len(brackets) != len(self.brackets):
            return False
        new = [[0] + [k for k in range(1, len(p.counts)) if p.counts[k] > 0 and k >= p.start] for p in brackets]
        if new != self._used or any(p.start != q.start for p, q in zip(brackets, self.brackets)):
            return False
        self.brackets = [dataclasses.replace(p, counts=tuple(max(c, self.started(b, k) if c else 0)
                                                               for k, c in enumerate(p.counts)))
                         for b, p in enumerate(brackets)]
        return True

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "cands": {str(n): list(c) for n, c in self.cands.items()},
                "asked": list(self.asked), "stop_new": self.stop_new,
                "epochs": {str(n): e for n, e in self.epochs.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], brackets: Sequence[Plan]) -> "Ladder":
        """The ladder :meth:`to_dict` saved (its candidates re-entered in order: rung, done, told)."""
        lad = cls(brackets, data.get("mode", "async"))
        for n, (b, k, done, told) in sorted((int(n), c) for n, c in data.get("cands", {}).items()):
            lad.add(n, b)
            for r in lad.used(b)[1:]:
                if r <= k:  # it finished every rung below the one it is at
                    lad.finish(n)
                    lad.start(n, r, data.get("epochs", {}).get(str(n)) if r == k else None)
            if done:
                lad.finish(n)
            if told:
                lad.tell(n)
        lad.asked = list(data.get("asked", lad.asked))
        lad.stop_new = bool(data.get("stop_new", False))
        return lad
