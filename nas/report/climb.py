"""The report of a budget search's climb: per rung how many candidates, what promoted them, and how well each
rung's promotion score predicted the accuracy the candidates then reached.

Read from what the budget search stores (:mod:`nas.search.keys`): the plan in the study's
:data:`~nas.search.keys.BUDGET_STATE`, each trial's :data:`~nas.search.keys.RUNG` (the last rung it reached)
and :data:`~nas.search.keys.RUNG_DONE` (the last it finished), and the promotion score it had after a rung
(``score@init``, ``score@early``, ``score@short``; stored for every candidate of a rung that promoted).

Accuracy labels:

* **short**: the test accuracy after the short rung's epochs (the trial's intermediate value at epoch
  ``short_epochs``: the full training continues the short one, so finalists keep it too);
* **trained**: the full-training accuracy (:data:`~nas.report.stats.ACCURACY` of the validated trials:
  the finalists, and every trial ``python -m nas validate`` trained with the report's epochs).

For each rung whose score promoted candidates, Kendall's tau (:func:`~nas.report.stats.correlate`, larger
score = promoted first) of the score against the next rung's accuracy (short after init/early when the
short rung ran, trained otherwise), and for init/early also against the trained accuracy. Only the
promoted candidates reach the next rung: n is small and the range restricted (a low tau among the best
of a rung says little about the rung's ability to screen the rest). A tau is **too small to judge** when
n < :data:`JUDGE_N`, the fewest pairs whose exact two-sided Kendall p can reach
:data:`~nas.report.stats.ALPHA` (5: a perfect order of 4 has p = 2/4! = 0.083); the report then suggests
training more candidates with ``python -m nas validate --top K``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import optuna

from ..search.budget_state import load_state
from ..search.keys import RUNG, RUNG_DONE, score_key
from ..search.plan import RUNGS, format_duration
from .stats import ACCURACY, ALPHA, MIN_N, correlate, finite_or_none

__all__ = ["JUDGE_N", "Climb", "RungRow", "Prediction", "climb", "climb_text", "prediction_text", "suggested_top"]

#: Fewest pairs at which a Kendall tau can be significant at ALPHA (exact p of a perfect order of n: 2 / n!).
JUDGE_N = 5


@dataclasses.dataclass(frozen=True)
class RungRow:
    """One rung: ``planned`` (the plan's count, 0 = skipped), ``entered`` (candidates that reached it),
    ``finished`` (finished its job), ``failed`` (failed in it), ``promoted_by`` (how its candidates were
    chosen from the previous rung)."""

    rung: str
    planned: int
    entered: int
    finished: int
    failed: int
    promoted_by: str


@dataclasses.dataclass(frozen=True)
class Prediction:
    """How rung ``rung``'s promotion score (``score``) ordered the accuracy ``target`` (``"short"`` or
    ``"trained"``) of the candidates that have both: :func:`~nas.report.stats.correlate`'s dict in ``corr``;
    ``judged`` False when n < :data:`JUDGE_N`."""

    rung: str
    score: str
    target: str
    corr: dict[str, Any]

    @property
    def judged(self) -> bool:
        return self.corr["n"] >= JUDGE_N and self.corr["kendall_tau"] is not None


@dataclasses.dataclass(frozen=True)
class Climb:
    """A budget search's climb: the plan line, the rungs, the predictions, how many candidates have a trained
    accuracy, and the finalists' epochs."""

    plan: str
    budget: float
    spent: float
    finished: bool
    rungs: list[RungRow]
    predictions: list[Prediction]
    trained: int
    full_epochs: int


def _promoted_by(k: int, counts: Sequence[int], short_epochs: int, start: int) -> str:
    if k == 0:
        return "every candidate sampled (rung-0 metrics, no training)"
    if counts[k] == 0:
        return "skipped (plan)"
    prev = max(j for j in range(k) if counts[j] > 0)
    if start and prev == 0:
        return "admitted after rung 0 (Hyperband bracket: no screening)"
    return {0: "combined rung-0 score (score@init)", 1: "combined early score (score@early)",
            2: f"test accuracy after {short_epochs} epoch(s) (score@short)"}[prev]


def _short_acc(t: optuna.trial.FrozenTrial, short_epochs: int) -> float | None:
    return finite_or_none(t.intermediate_values.get(short_epochs))


def climb(study: optuna.Study, trials: Sequence[optuna.trial.FrozenTrial],
          validated: Sequence[optuna.trial.FrozenTrial]) -> Climb | None:
    """The climb of the study's budget search, or None when no budget search ran on it.

    Args:
        study: the study (its budget state).
        trials: every trial of the study.
        validated: the trials with a full-training result used by the report (their ``ACCURACY``).
    """
    state = load_state(study)
    if state is None or not state.plan:
        return None
    plan = state.to_plan()
    counts = list(plan.counts)
    index = {name: k for k, name in enumerate(RUNGS)}
    reached = [index.get(t.user_attrs.get(RUNG), 0) for t in trials]
    done = [t.user_attrs.get(RUNG_DONE) for t in trials]
    failed = [t.state == optuna.trial.TrialState.FAIL for t in trials]
    rows = []
    for k, name in enumerate(RUNGS):
        if 0 < k < plan.start:
            counts[k] = 0
        rows.append(RungRow(
            rung=name, planned=counts[k], entered=sum(1 for r in reached if r >= k),
            finished=sum(1 for d in done if isinstance(d, int) and d >= k),
            failed=sum(1 for r, f in zip(reached, failed) if f and r == k),
            promoted_by=_promoted_by(k, counts, plan.short_epochs, plan.start)))
    trained = {t.number: finite_or_none(t.user_attrs.get(ACCURACY)) for t in validated}
    short_ran = counts[2] > 0
    predictions = []
    for k, name in enumerate(RUNGS[:3]):
        key = score_key(name)
        scored = [t for t in trials if finite_or_none(t.user_attrs.get(key)) is not None]
        if not scored:
            continue
        targets = (["short", "trained"] if short_ran and k < 2 else ["trained"])
        for target in targets:
            if target == "short":
                y = [_short_acc(t, plan.short_epochs) for t in scored]
            else:
                y = [trained.get(t.number) for t in scored]
            predictions.append(Prediction(name, key, target, correlate([t.user_attrs[key] for t in scored], y)))
    return Climb(plan=plan.describe(), budget=state.budget, spent=state.spent, finished=state.finished,
                 rungs=rows, predictions=predictions, trained=sum(1 for v in trained.values() if v is not None),
                 full_epochs=int(state.full_epochs))


def suggested_top(trained: int) -> int:
    """K of the suggested ``validate --top K``: enough trained candidates for a tau to be judged twice over
    (``2 * JUDGE_N``), and at least ``JUDGE_N`` more than are trained now."""
    return max(2 * JUDGE_N, trained + JUDGE_N)


_TARGET = {"short": "short-rung accuracy", "trained": f"trained accuracy ({ACCURACY})"}


def prediction_text(p: Prediction) -> str:
    """``+0.600 (n=6, p=0.14 ns)``, ``+1.000 (n=4, p=0.083 ns): too small to judge``, ``n=2: too small to
    judge`` or ``undefined (n=6: metric constant)``."""
    c = p.corr
    if c["kendall_tau"] is None and c["n"] >= MIN_N:
        return f"undefined (n={c['n']}: {c['note'].replace('undefined: ', '')})"
    if c["kendall_tau"] is None:
        return f"n={c['n']}: too small to judge"
    ns = "" if c["kendall_p"] <= ALPHA else " ns"
    text = f"{c['kendall_tau']:+.3f} (n={c['n']}, p={c['kendall_p']:.2g}{ns})"
    return text if p.judged else text + ": too small to judge"


def climb_text(c: Climb, study_name: str) -> str:
    """The climb for the terminal: the plan, a table of rungs, the score -> accuracy taus, and what to do
    when they cannot be judged."""
    from ..text import table

    state = "finished" if c.finished else "not finished (a rerun continues it)"
    lines = [f"Budget search: {c.plan}; budget {format_duration(c.budget)}, spent {format_duration(c.spent)}, "
             f"{state}", ""]
    lines.append(table([[r.rung, r.planned, r.entered, r.finished, r.failed, r.promoted_by] if r.planned or r.rung == RUNGS[0]
                        else [r.rung, "skipped", "–", "–", "–", r.promoted_by] for r in c.rungs],
                       ["rung", "planned", "entered", "finished", "failed", "promoted by"]))
    if c.predictions:
        lines += ["", "How each rung's promotion score ordered the accuracy its candidates reached next "
                      "(Kendall tau, +1 = the same order; n = candidates with both):"]
        lines.append(table([[p.score, _TARGET[p.target], prediction_text(p)] for p in c.predictions],
                           ["score", "against", "tau"]))
    small = [p for p in c.predictions if not p.judged and p.corr["n"] < JUDGE_N]
    if small or not c.predictions:
        k = suggested_top(c.trained)
        what = ", ".join(dict.fromkeys(f"{p.score} vs {p.target} accuracy" for p in small)) or "the promotion scores"
        lines += ["", f"n is too small to judge {what}: {c.trained} candidate(s) fully trained, and a Kendall tau "
                      f"needs n >= {JUDGE_N} to be significant at p <= {ALPHA}. Train more candidates to get labels: "
                      f"python -m nas validate --study {study_name} --top {k} --epochs {c.full_epochs} (the finalists' "
                      f"epochs), then rerun python -m nas report "
                      f"--study {study_name}"]
    return "\n".join(lines)
