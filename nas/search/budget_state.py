"""What a budget search stores on its study so that a rerun continues the climb (Ctrl-C, kill -9).

The state (study user attribute :data:`~nas.search.keys.BUDGET_STATE`, JSON) says which rung is running,
which candidates are in it and which of them have finished it, the plan, the measured job times and the
seconds spent so far. The candidates' own values live on their trials, which stay RUNNING while they
climb (each records ``rung`` and ``rung_done``). It is written after every finished job and every
promotion, so a kill loses at most the jobs in flight: a rerun adopts the candidates (they are not taken
for stale), re-runs only the jobs that had not finished (a training resumes from its last epoch's
checkpoint) and plans with the time left. A state marked ``finished`` is history: a rerun then starts a
new budget on the same study.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from .plan import Plan
from .keys import BUDGET_STATE

__all__ = ["BudgetState", "load_state", "save_state"]


@dataclasses.dataclass
class BudgetState:
    """Attributes:
        budget: the run's budget in seconds; ``spent``: seconds used by the runs so far.
        rung: the rung running (0..3); ``cohort``: its candidates (rung 0: those that finished it);
        done: candidates of the current rung whose job finished (``rung_done`` on their trials).
        asked: rung-0 candidates asked so far; ``plan``: the plan (None during the pilot);
        estimates: the rung-0 medians the training rungs are planned with (step and build seconds, batch);
        full_epochs: the finalists' epochs (may have been cut); ``seconds``: per rung, each job's seconds.
        closing, closing_rung: candidates a promotion stopped at ``closing_rung``, still to be told COMPLETE
            (the state is saved before the tells, so a rerun finishes them instead of re-promoting);
        best: the result's trial once ``best_model.pt`` is written (a rerun then only tells the rest);
        driver: the driver running the climb (another driver resumes it only when that one is gone);
        finished: the run ended (a rerun starts a new budget).
        ladder, brackets: the asynchronous climb (:mod:`~nas.search.budget_async`): every candidate's bracket,
            rung, done and told (:meth:`nas.search.budget_ladder.Ladder.to_dict`) and the brackets' plans;
            None and empty for a synchronous climb, or before the async one's pilot ended.
    """

    budget: float
    spent: float = 0.0
    rung: int = 0
    cohort: list[int] = dataclasses.field(default_factory=list)
    done: list[int] = dataclasses.field(default_factory=list)
    asked: int = 0
    plan: dict[str, Any] | None = None
    full_epochs: int = 10
    seconds: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    estimates: dict[str, float] = dataclasses.field(default_factory=dict)
    closing: list[int] = dataclasses.field(default_factory=list)
    closing_rung: int = 0
    best: int | None = None
    driver: str | None = None
    finished: bool = False
    ladder: dict[str, Any] | None = None
    brackets: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def members(self) -> set[int]:
        """The candidates the climb still holds: in the current rung, finished in it, to be told, the result;
        in an async climb those of the ladder not told yet (but those whose rung-0 job was in flight: a
        rerun retries them with their config and seed)."""
        climbing = {int(n) for n, (_, rung, done, told) in (self.ladder or {}).get("cands", {}).items()
                    if not told and (rung > 0 or done)}
        return (set(self.cohort) | set(self.done) | set(self.closing) | climbing
                | ({self.best} if self.best is not None else set()))

    def to_plan(self) -> Plan | None:
        return None if self.plan is None else self.to_plan_of(self.plan)

    @staticmethod
    def to_plan_of(data: dict[str, Any]) -> Plan:
        """The :class:`~nas.search.plan.Plan` that :meth:`plan_dict` stored."""
        return Plan(**{**data, "counts": tuple(data["counts"]), "costs": tuple(data["costs"])})

    @staticmethod
    def plan_dict(plan: Plan | None) -> dict[str, Any] | None:
        return None if plan is None else {k: (list(v) if isinstance(v, tuple) else v)
                                          for k, v in dataclasses.asdict(plan).items()}


def load_state(study: optuna.Study) -> BudgetState | None:
    """The study's budget state, or None (no budget search ran on it, or it came from another version)."""
    raw = study.user_attrs.get(BUDGET_STATE)
    if not isinstance(raw, dict):
        return None
    try:
        return BudgetState(**raw)
    except TypeError:
        return None


def save_state(study: optuna.Study, state: BudgetState) -> None:
    study.set_user_attr(BUDGET_STATE, dataclasses.asdict(state))
