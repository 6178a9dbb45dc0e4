"""The baseline strategies of ``benchmarks/budget_search.py`` on its lab pool: random search with full
training, random + a loss@50 filter, TPE + Hyperband (Optuna), NSGA-II on the old default objectives. Each
returns a :class:`budget_search.Trace` (anytime: its answer at every budget)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import optuna
import pandas as pd

from budget_search import FILTER_BATCH, FULL_EPOCHS, Pool, Trace
from nas.search.ranking import nondominated_ranks
from objectives.combine import Feature, rank_aggregate
from search_spaces import get_space


def random_full(pool: Pool, rng: np.random.Generator) -> Trace:
    tr = Trace(pool)
    for i in rng.permutation(pool.n):
        tr.cost += FULL_EPOCHS
        tr.trained(int(i))
    return tr


def random_filter(pool: Pool, rng: np.random.Generator) -> Trace:
    tr = Trace(pool)
    order = list(rng.permutation(pool.n))
    for start in range(0, pool.n, FILTER_BATCH):
        batch = order[start:start + FILTER_BATCH]
        tr.cost += float(pool.cost_early[batch].sum())
        loss = np.where(np.isfinite(pool.loss50[batch]), pool.loss50[batch], np.inf)
        tr.cost += FULL_EPOCHS
        tr.trained(int(batch[int(np.argmin(loss))]))
    return tr


class Nearest:
    """Maps a sampled config to the nearest pool config not yet used."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.used: set[int] = set()
        keys = [k for k in pool.configs[0] if len({json.dumps(c.get(k)) for c in pool.configs}) > 1]
        self.keys = keys
        self.ranges = {}
        for k in keys:
            vals = [c[k] for c in pool.configs]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                lg = k in ("lr", "batch_size")
                tv = np.log(vals) if lg else np.asarray(vals, dtype=float)
                self.ranges[k] = (lg, float(tv.min()), float(tv.max() - tv.min()) or 1.0)

    def __call__(self, config: dict[str, Any]) -> int:
        best, best_d = -1, math.inf
        for i, c in enumerate(self.pool.configs):
            if i in self.used:
                continue
            d = 0.0
            for k in self.keys:
                if k in self.ranges:
                    lg, _, span = self.ranges[k]
                    a, b = (math.log(config[k]), math.log(c[k])) if lg else (float(config[k]), float(c[k]))
                    d += abs(a - b) / span
                else:
                    d += float(config.get(k) != c.get(k))
            if d < best_d:
                best, best_d = i, d
        self.used.add(best)
        return best


def _space(pool: Pool):
    bounds = json.loads(pool.rows["settings"].iloc[0])["bounds"]
    return get_space("resnet_cifar").with_bounds(**bounds)


def tpe_hyperband(pool: Pool, seed: int) -> Trace:
    tr = Trace(pool)
    space, nearest = _space(pool), Nearest(pool)
    # a fixed study name: HyperbandPruner assigns brackets by hashing it with the trial number
    study = optuna.create_study(study_name=f"tpe-hyperband-{seed}", direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=FULL_EPOCHS,
                                                                      reduction_factor=3))
    for _ in range(pool.n):
        trial = study.ask()
        i = nearest(space.sample(trial))
        pruned = False
        for epoch in range(1, FULL_EPOCHS + 1):
            tr.cost += 1.0
            trial.report(pool.epoch_acc(i, epoch), epoch)
            if epoch < FULL_EPOCHS and trial.should_prune():
                pruned = True
                break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, pool.epoch_acc(i, FULL_EPOCHS))
            tr.trained(i)
    return tr


def nsga2_old(pool: Pool, seed: int) -> Trace:
    tr = Trace(pool)
    space, nearest = _space(pool), Nearest(pool)
    keys = ("confusion", "diversity", "kappa_w")
    rank_input = pd.to_numeric(pool.rows["rank_input"], errors="coerce").to_numpy(dtype=float)
    sampler = optuna.samplers.NSGAIISampler(seed=seed)
    study = optuna.create_study(directions=["minimize"] * 3, sampler=sampler)
    seen: list[int] = []
    trained: set[int] = set()
    for n in range(pool.n):
        trial = study.ask()
        i = nearest(space.sample(trial))
        vals = [float(pd.to_numeric(pool.rows[k].iloc[i], errors="coerce")) for k in keys]
        vals = [v if np.isfinite(v) else math.inf for v in vals]
        c = rank_input[i] - 0.15 if np.isfinite(rank_input[i]) else 1e9
        trial.set_constraint("rank_input<=0.15", float(c))  # <= 0: satisfied (as nas.study tells it)
        study.tell(trial, vals)
        tr.cost += float(pool.cost_old[i])
        seen.append(i)
        if (n + 1) % FILTER_BATCH == 0 or n == pool.n - 1:
            done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            idx = [nearest_i for nearest_i in seen]
            ranks = nondominated_ranks(done, study.directions)
            mean_rank = rank_aggregate(pool.rows.iloc[idx].reset_index(drop=True),
                                       [Feature(k, "minimize") for k in keys])
            order = sorted(range(len(idx)), key=lambda j: (rank_input[idx[j]] > 0.15 or not np.isfinite(
                rank_input[idx[j]]), ranks[j], -mean_rank[j]))
            pick = next((idx[j] for j in order if idx[j] not in trained), None)
            if pick is not None:
                trained.add(pick)
                tr.cost += FULL_EPOCHS
                tr.trained(pick)
    return tr
