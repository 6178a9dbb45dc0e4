"""The search command's two progress displays: the budget search's bar (the budget's seconds, with the
plan, each rung and each failure said above it) and the proxy search's bar (complete trials, with the best
feasible value of each objective). Both are refreshed every second by a ticker thread, so their elapsed time
moves while a trial runs; ``--no-progress`` turns them off (the lines above the bar are still printed)."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["BudgetProgress", "TrialsProgress"]

_RUNGS = ("init", "early", "short", "full")


def _tick(bar, update=None) -> threading.Event:
    """Refresh ``bar`` every second from a daemon thread, after ``update()`` when given; returns the event
    that stops it."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(1.0):
            if update is not None:
                update()
            bar.refresh()

    if not bar.disable:
        threading.Thread(target=run, daemon=True).start()
    return stop


class BudgetProgress:
    """A context manager around a budget search: a bar over the budget's seconds showing the current rung and
    the candidates done and failed there; :meth:`on_event` is ``run_budget``'s ``on_event``."""

    def __init__(self, budget_s: float, disable: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=round(budget_s), unit="s", disable=disable, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}]{postfix}")
        self.rung, self.done, self.failed = "init", 0, 0
        self.t0 = time.monotonic()
        self._stop: threading.Event | None = None

    def __enter__(self) -> "BudgetProgress":
        self._stop = _tick(self.bar, self._elapsed)
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
        self._elapsed()
        self.bar.close()

    def _elapsed(self) -> None:  # the bar counts the budget's seconds
        self.bar.n = min(self.bar.total, round(time.monotonic() - self.t0))

    def on_event(self, e: dict[str, Any]) -> None:
        from ..search.plan import format_duration

        bar, kind = self.bar, e["kind"]
        if kind == "resume":
            bar.write(f"resuming the interrupted budget search at rung {e['rung']}: {e['candidates']} candidate(s) "
                      f"climbing, {format_duration(max(0.0, e['left']))} of the budget left")
            self.rung = e["rung"]
            self.t0 -= e["elapsed"]  # the bar counts the whole budget's seconds
        elif kind == "plan":
            bar.write(f"plan: {e['plan'].describe()} (costs per candidate: "
                      + ", ".join(f"{n} {format_duration(c)}" for n, c in zip(_RUNGS, e["plan"].rung_costs)) + ")")
        elif kind == "rung":
            self.rung, self.done = e["rung"], 0
            k = _RUNGS.index(e["rung"])
            bar.write(f"rung {e['rung']}: {e['count']} candidate(s) at {format_duration(e['elapsed'])}; plan now "
                      f"{e['plan'].describe().split(', expected')[0]}, expected to end in "
                      f"{format_duration(e['plan'].expected_from(k))}")
        elif kind == "shorten":
            bar.write(f"no finalist finishes {e['was']} epochs in the time left: trial {e['trial']} trains "
                      f"{e['epochs']} epoch(s) instead (from scratch, a shorter schedule)")
        elif kind == "fail":
            self.failed += 1
            bar.write(f"trial {e['trial']} failed at rung {e['rung']}: {e['reason'][:300]}")
        elif kind == "job":
            self.done = e["done"]
        bar.set_description_str(f"rung {self.rung}")
        bar.set_postfix_str(f"done {self.done}, failed {self.failed}", refresh=False)


class TrialsProgress:
    """A context manager around a proxy search: a bar over complete trials (starting at those already in the
    study) with the failures and the best feasible value of each objective; :meth:`on_update` is
    ``run_trials``'s ``on_update``."""

    def __init__(self, study, objectives, total: int, already: int, disable: bool) -> None:
        from tqdm.auto import tqdm

        self.study, self.objectives = study, objectives
        self.bar = tqdm(total=total, initial=min(already, total), unit="trial", disable=disable, dynamic_ncols=True)
        self.feasible_best: dict[str, float] = {}
        self.all_best: dict[str, float] = {}
        self._stop: threading.Event | None = None

    def __enter__(self) -> "TrialsProgress":
        self._stop = _tick(self.bar)
        return self

    def __exit__(self, *exc) -> None:
        if self._stop is not None:
            self._stop.set()
        self.bar.close()

    def on_update(self, status: dict[str, Any]) -> None:
        from ..search.ranking import is_feasible

        bar = self.bar
        if status.get("reason"):  # a failure is said when it happens, not only with -v
            bar.write(f"trial {status['trial']} failed: {status['reason'][:300]}")
        if status["status"] == "ok":
            bar.update(1)
            # each objective's best over the study's best trials (best_trials: the feasible non-dominated
            # ones, all complete ones while none is feasible) = its best over that pool; kept incrementally
            t = self.study.trials[status["trial"]]
            for pool in ((self.feasible_best, self.all_best) if is_feasible(t) else (self.all_best,)):
                for o, v in zip(self.objectives, t.values or []):
                    cur = pool.get(o.key)
                    pool[o.key] = v if cur is None or (v < cur if o.direction == "minimize" else v > cur) else cur
        best = self.feasible_best or self.all_best
        bar.set_postfix(failed=status["failed"], **{k: f"{v:.3g}" for k, v in best.items()})
