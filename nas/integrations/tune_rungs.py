"""The decisions of the gradnas Ray Tune scheduler, without Ray: a gradient gate, then asynchronous halving.

:class:`Promotions` holds every decision :class:`nas.integrations.tune.GradientScheduler` takes, as plain
functions of what the trials reported, so a replay (``benchmarks/tune_scheduler.py``) drives the very same
code with simulated results:

* **gate** (iteration 0): a candidate reports its rung-0 values (gradient metrics at initialization,
  :func:`nas.integrations.gate.rung0_values`); once ``warmup`` earlier candidates have reported, it is stopped
  when its combined gradnas score sits below the ``quantile`` of the earlier candidates' scores
  (:func:`nas.integrations.gate.decide`, the rule the Optuna pruner applies too). The earlier candidates count
  whether they were stopped or not.
* **halving** on the user's metric afterwards, asynchronous successive halving as Ray's ``ASHAScheduler``
  (Li et al., "A System for Massively Parallel Hyperparameter Tuning", MLSys 2020, arXiv:1810.05934), one
  bracket: rungs at ``grace_period * reduction_factor**k <= max_t``; a result at or past a rung the trial has
  not been recorded at is compared with the values recorded there before it, then recorded. One metric:
  stopped when below the ``1 - 1/reduction_factor`` percentile of the earlier values (Ray's rule, its
  interpolation included; earlier NaN values left out as Ray does, but a NaN value -- a diverged run -- is
  stopped, where Ray's ASHA lets it continue). Several metrics: stopped when more than ``len(earlier) / reduction_factor`` of the
  earlier candidates at the rung have a better non-dominated rank
  (:func:`nas.search.ranking.dominance_ranks` over the earlier vectors and its own) -- the same fraction,
  counted by Pareto rank instead of by value. A result at ``t >= max_t`` stops the trial (it is done).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from nas.search.ranking import dominance_ranks, worst_if_undefined
from objectives.combine import Feature

from .gate import Decision, decide

__all__ = ["CONTINUE", "STOP", "MODES", "milestones", "Promotions"]

CONTINUE, STOP = "CONTINUE", "STOP"  # the values of ray.tune.schedulers.TrialScheduler.CONTINUE / .STOP
MODES = ("min", "max")


def milestones(grace_period: float, reduction_factor: float, max_t: float) -> list[float]:
    """The rungs ``grace_period * reduction_factor**k`` that are ``<= max_t`` (ascending; 1e-9 slack for the
    float powers, so 1 * 3**1 counts as 3)."""
    out, m = [], float(grace_period)
    while m <= max_t * (1 + 1e-9):
        out.append(m)
        m *= reduction_factor
    return out


def _check(grace_period: float, reduction_factor: float, max_t: float) -> None:
    for name, v in (("grace_period", grace_period), ("reduction_factor", reduction_factor), ("max_t", max_t)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"{name} must be a finite number, got {v!r}")
    if grace_period <= 0:
        raise ValueError(f"grace_period must be > 0, got {grace_period!r}")
    if max_t < grace_period:
        raise ValueError(f"max_t ({max_t!r}) must be >= grace_period ({grace_period!r})")
    if reduction_factor <= 1:
        raise ValueError(f"reduction_factor must be > 1, got {reduction_factor!r}")


class Promotions:
    """The gate and the rungs of one experiment (one bracket).

    Args:
        modes: ``"min"`` or ``"max"`` per metric, in the order the values are passed (one: ASHA's percentile
            rule; several: the non-dominated-rank rule).
        grace_period, reduction_factor, max_t: the rungs (:func:`milestones`), in units of the time attribute.
        quantile: a candidate whose combined rung-0 score is below this quantile (in [0, 1]) of the earlier
            candidates' is stopped; None: no gate (plain asynchronous halving).
        warmup: earlier candidates needed before the gate stops anything.
        features: the combined score's features (default: the rung-0 set,
            :data:`objectives.combine.BUDGET_INIT_FEATURES`).

    Raises:
        ValueError, TypeError: a bad mode, rung or gate setting (one line).
    """

    def __init__(self, modes: Sequence[str], grace_period: float = 1, reduction_factor: float = 3,
                 max_t: float = 100, quantile: float | None = 0.5, warmup: int = 5,
                 features: Sequence[Feature] | None = None) -> None:
        modes = [modes] if isinstance(modes, str) else list(modes)
        if not modes or any(m not in MODES for m in modes):
            raise ValueError(f"mode must be 'min' or 'max' (one per metric), got {modes!r}")
        _check(grace_period, reduction_factor, max_t)
        if quantile is not None and (isinstance(quantile, bool) or not isinstance(quantile, (int, float))
                                     or not 0 <= quantile <= 1):
            raise ValueError(f"quantile must be a number in [0, 1] or None (no gate), got {quantile!r}")
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        self.modes, self.reduction_factor, self.max_t = modes, float(reduction_factor), float(max_t)
        self.quantile, self.warmup = quantile, warmup
        self.features = tuple(features) if features is not None else None
        self.rungs: list[tuple[float, dict[str, list[float]]]] = [
            (m, {}) for m in reversed(milestones(grace_period, reduction_factor, max_t))]  # highest first
        self.rung0: dict[str, dict[str, Any]] = {}  # trial id -> its rung-0 values, in report order
        self.decisions: dict[str, Decision] = {}  # trial id -> the gate's decision

    # ------------------------------------------------------------------ the gate
    def gate(self, trial_id: str, values: Mapping[str, Any]) -> str:
        """Record a candidate's rung-0 ``values`` and decide: :data:`STOP` when at least ``warmup`` earlier
        candidates reported and its score's position among theirs is below ``quantile``. A second report of
        the same trial is not recorded again (its first decision stands)."""
        if trial_id in self.rung0:
            d = self.decisions.get(trial_id)
            return STOP if d is not None and d.prune else CONTINUE
        earlier = list(self.rung0.values())
        self.rung0[trial_id] = dict(values)
        if self.quantile is None:
            return CONTINUE
        d = decide(values, earlier, quantile=self.quantile, warmup=self.warmup, features=self.features)
        self.decisions[trial_id] = d
        return STOP if d.prune else CONTINUE

    # ------------------------------------------------------------------ the rungs
    def signed(self, values: Sequence[float]) -> list[float]:
        """The values oriented so that larger is better (a missing or NaN value is the worst: -inf)."""
        if len(values) != len(self.modes):
            raise ValueError(f"expected {len(self.modes)} metric values, got {len(values)}")
        return [-worst_if_undefined(v, "minimize") if m == "min" else worst_if_undefined(v, "maximize")
                for v, m in zip(values, self.modes)]

    def stop_at_rung(self, earlier: Sequence[Sequence[float]], value: Sequence[float]) -> bool:
        """Whether a candidate with (signed, larger-is-better) ``value`` is stopped at a rung where ``earlier``
        were recorded before it (the module docstring's two rules)."""
        if not earlier:
            return False
        if len(self.modes) == 1:
            if not math.isfinite(value[0]):  # undefined (NaN): the worst value there is
                return True
            finite = [e[0] for e in earlier if math.isfinite(e[0])]  # as Ray's nanpercentile leaves NaN out
            return bool(finite) and bool(value[0] < np.percentile(finite, (1 - 1 / self.reduction_factor) * 100))
        ranks = dominance_ranks([[-x for x in v] for v in [*earlier, value]])  # dominance_ranks minimizes
        better = sum(r < ranks[-1] for r in ranks[:-1])
        return better > len(earlier) / self.reduction_factor

    def on_result(self, trial_id: str, t: float, values: Sequence[float]) -> str:
        """The decision on an intermediate result at time ``t`` with the metric ``values`` (raw, in the
        modes' order)."""
        if t >= self.max_t:
            return STOP
        return self._record(trial_id, t, values)

    def on_complete(self, trial_id: str, t: float, values: Sequence[float]) -> None:
        """A trial's last result: recorded at the highest rung it reached and has no value at (as Ray's ASHA)."""
        self._record(trial_id, t, values)

    def _record(self, trial_id: str, t: float, values: Sequence[float]) -> str:
        signed = self.signed(values)
        for milestone, recorded in self.rungs:
            if t < milestone or trial_id in recorded:
                continue
            stop = self.stop_at_rung(list(recorded.values()), signed)
            recorded[trial_id] = signed
            return STOP if stop else CONTINUE
        return CONTINUE

    def debug_string(self) -> str:
        rungs = ", ".join(f"{m:g}: {len(r)}" for m, r in reversed(self.rungs))
        stopped = sum(d.prune for d in self.decisions.values())
        return (f"gradient gate: {stopped} of {len(self.rung0)} stopped at iteration 0 "
                f"(quantile {self.quantile:g}, warm-up {self.warmup}); rungs (time: recorded) {rungs}")
