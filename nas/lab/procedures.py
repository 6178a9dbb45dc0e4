"""Selection procedures: how the combined score's four sets are chosen on the training labs' tables.

A procedure turns the training labs' phase tables (``{"init": [...], "early": [...]}``, plain metric names
and ``acc``; :mod:`nas.lab.loo`) into the sets ``objectives`` ships (:data:`SETS`):

* ``init``: the full init score, its metrics capped at ``init_cap`` training steps (``None``: no cap);
* ``budget_init``: the budget search's rung-0 score, capped at :data:`BUDGET_MAX_COST` steps;
* ``early``: the score after the early steps (from the labs that have an early phase);
* ``budget_early``: the budget search's rung 1, the early loss plus the rung-0 set (a budget search does not
  score its metrics again after the early steps: :func:`nas.lab.selection.structured`).

Costs are :func:`nas.lab.selection.cost_steps` (the sum of each metric's cost measured alone,
``objectives/data/metric_costs.json``): an upper bound, since metrics scored together share passes.

Procedures (:data:`PROCEDURES`):

* ``greedy`` (the one that chose the shipped sets): greedy forward selection of summed log-ranks on the
  pooled tau (:func:`nas.lab.selection.select_over`), init uncapped; early = the early loss, weighted, plus
  the init set (:func:`nas.lab.selection.select_structured_over`);
* ``greedy-4``: the same with the init set capped at :data:`INIT_MAX_COST` steps;
* ``consensus``: the keys whose direction agrees on every training lab that measured them, ranked by their
  smallest tau, the first :data:`~nas.lab.selection.CONSENSUS_TOP` under the cap summed with equal weights
  (:func:`nas.lab.selection.consensus_over`; none agree: the best single key, as greedy starts); early = the
  early loss, weighted, plus the init set;
* ``consensus-early``: the same init sets; early = the early loss, weighted, plus the consensus over the
  early tables of the init set's keys, the same metrics measured after the early steps (``<m>@early``: the
  search scores the same metrics again, at the init set's cost, so nothing is added to the init scoring)
  and the free values of the early steps (:data:`STEP_KEYS`).

``pool`` (``mean`` | ``min``, :data:`nas.lab.selection.POOLS`) is how the greedy rule and every loss weight
judge a set on several labs; the consensus rule always ranks a key by its worst lab.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import pandas as pd

from objectives import registry
from objectives.combine import CONFIG_COLUMNS, DERIVED, DERIVED_INPUTS, Feature, feature_inputs

from .selection import (LOSS_KEYS, LOSS_WEIGHTS, POOLS, candidate_features, consensus_over, cost_steps,
                        has_feature, pooled_tau, select_over, select_structured_over, structured)
from .tables import STEP_VALUES, from_steps

__all__ = ["SETS", "INIT_MAX_COST", "BUDGET_MAX_COST", "STEP_KEYS", "CURRENT", "Procedure", "PROCEDURES",
           "candidates", "early_candidates", "set_cost", "choose"]

#: The sets a procedure chooses: name -> the phase it ranks at.
SETS = {"init": "init", "budget_init": "init", "early": "early", "budget_early": "early"}
#: The cap on the full init set (issue 24 item 3), in training steps of the same network.
INIT_MAX_COST = 4.0
#: The cap on a budgeted search's rung-0 set, in training steps of the same network.
BUDGET_MAX_COST = 2.0
#: Values of the early steps an early set may read at no scoring cost besides the early loss.
STEP_KEYS = ("loss_early", "loss_drop", "train_kappa_w", "train_loss_smooth_min")
#: The procedure that chose the shipped sets before leave-one-lab-out (the baseline of the decision).
CURRENT = "greedy"

Tables = Mapping[str, Sequence[pd.DataFrame]]


def candidates(tables: Sequence[pd.DataFrame], phase: str) -> list[str]:
    """The keys a choice may use: every key a training table has at that phase (union, first seen first)."""
    return list(dict.fromkeys(k for t in tables for k in candidate_features(t, phase)))


def early_candidates(tables: Sequence[pd.DataFrame], init: Sequence[Feature]) -> list[str]:
    """Keys of an early set that add no metric to the scoring: the init set's keys, its metrics (and the
    derived values of those metrics) measured after the early steps, and :data:`STEP_KEYS`; those the
    ``tables`` have."""
    metrics = [m for m in feature_inputs(init) if m in registry.names()]
    keys = [f.key for f in init] + [f"{m}@early" for m in metrics]
    keys += [f"{d}@early" for d in DERIVED
             if set(DERIVED_INPUTS[d]) <= {*metrics, *CONFIG_COLUMNS} and not set(DERIVED_INPUTS[d]) <= {*CONFIG_COLUMNS}]
    keys += list(STEP_KEYS)
    return [k for k in dict.fromkeys(keys) if any(has_feature(t, k) for t in tables)]


def set_cost(features: Sequence[Feature]) -> float:
    """Training steps to score a set's metrics once (:func:`nas.lab.selection.cost_steps`): a ``<m>@early``
    key costs what ``<m>`` does (the search scores the same metrics at init and after the early steps, so an
    early set that reads only its init set's metrics adds nothing at init); the values of the early steps
    (the losses, :data:`STEP_KEYS`) are free."""
    keys = [f.key.split("@")[0] for f in features]
    return cost_steps([k for k in keys if k not in (*LOSS_KEYS, *STEP_VALUES, *STEP_KEYS) and not from_steps(k)])


def _greedy(tables: Sequence[pd.DataFrame], keys: Sequence[str], cap: float | None, pool: str):
    return select_over(tables, keys, max_cost=cap, pool=pool)[0]


def _consensus(tables: Sequence[pd.DataFrame], keys: Sequence[str], cap: float | None, pool: str):
    """The consensus set; when no key agrees on every training lab, the best single key by pooled tau (the
    key greedy starts from), so that a procedure always returns a score."""
    return consensus_over(tables, keys, max_cost=cap)[0] or select_over(tables, keys, 1, max_cost=cap, pool=pool)[0]


def _loss_and_init(tables: Sequence[pd.DataFrame], init: Sequence[Feature], pool: str) -> tuple[Feature, ...]:
    return select_structured_over(tables, init, pool)


def _loss_and_consensus(tables: Sequence[pd.DataFrame], init: Sequence[Feature], pool: str) -> tuple[Feature, ...]:
    extra = consensus_over(tables, early_candidates(tables, init))[0]
    w = max(LOSS_WEIGHTS, key=lambda w: pooled_tau(tables, structured(extra, w), pool))
    return structured(extra, w)


@dataclasses.dataclass(frozen=True)
class Procedure:
    """A selection procedure: the init rule (tables, keys, cap, pool -> set), the init cap, the early rule
    (early tables, the init set, pool -> set)."""

    name: str
    about: str
    init_rule: Callable[[Sequence[pd.DataFrame], Sequence[str], float | None, str], tuple[Feature, ...]]
    init_cap: float | None
    early_rule: Callable[[Sequence[pd.DataFrame], Sequence[Feature], str], tuple[Feature, ...]]


PROCEDURES: dict[str, Procedure] = {p.name: p for p in (
    Procedure("greedy", "greedy forward selection on the pooled tau, init uncapped; early: loss + init set",
              _greedy, None, _loss_and_init),
    Procedure("greedy-4", f"greedy forward selection on the pooled tau, init <= {INIT_MAX_COST:g} steps; early: "
              "loss + init set", _greedy, INIT_MAX_COST, _loss_and_init),
    Procedure("consensus", f"keys agreeing on every training lab, by smallest tau, top few, equal weights, init <= "
              f"{INIT_MAX_COST:g} steps; early: loss + init set", _consensus, INIT_MAX_COST, _loss_and_init),
    Procedure("consensus-early", f"consensus init sets (<= {INIT_MAX_COST:g} steps); early: loss + the consensus "
              "of the init set's keys, their @early values and the free step values", _consensus, INIT_MAX_COST,
              _loss_and_consensus),
)}


def choose(tables: Tables, pool: str = "mean", procedure: str = CURRENT) -> dict[str, tuple[Feature, ...]]:
    """The sets of :data:`SETS` chosen by ``procedure`` on ``tables`` (phase -> the training labs' tables
    at that phase); no early sets when no table has an early phase.

    Raises:
        ValueError: an unknown procedure or pool."""
    if procedure not in PROCEDURES:
        raise ValueError(f"unknown procedure {procedure!r} (one of {', '.join(PROCEDURES)})")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r} (one of {', '.join(POOLS)})")
    p = PROCEDURES[procedure]
    init_tables = list(tables["init"])
    keys = candidates(init_tables, "init")
    init = p.init_rule(init_tables, keys, p.init_cap, pool)
    budget = p.init_rule(init_tables, keys, BUDGET_MAX_COST, pool)
    out = {"init": init, "budget_init": budget}
    early_tables = list(tables.get("early", ()))
    if early_tables:
        out["early"] = p.early_rule(early_tables, init, pool)
        out["budget_early"] = select_structured_over(early_tables, budget, pool)
    return out
