"""nas.lab.procedures and the consensus rule against hand references; the decision rule on hand-made rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.lab import loo, procedures, selection
from objectives.combine import Feature


def _tau(x, acc) -> float:
    return float(stats.kendalltau(x, acc).statistic)


def _tables(n=60):
    """good: tracks acc in both (maximize); flip: maximize in one, minimize in the other; weak: |tau| < 0.05
    in one; lr: constant in the second table (not measured there); bad: minimize in both."""
    out = []
    for seed, flip in ((0, 1.0), (1, -1.0)):
        rng = np.random.default_rng(seed)
        acc = rng.random(n)
        weak = rng.random(n)
        if seed == 1:
            weak = acc + 50 * rng.standard_normal(n)
        out.append(pd.DataFrame({"acc": acc, "kappa_w": acc + 0.3 * rng.standard_normal(n),
                                 "confusion": flip * acc + 0.3 * rng.standard_normal(n), "kappa_x": weak,
                                 "lr": acc + 0.5 * rng.standard_normal(n) if seed == 0 else np.full(n, 0.1),
                                 "snip": -acc + 0.5 * rng.standard_normal(n)}))
    return out


def test_consensus_keeps_the_keys_that_agree_ranked_by_their_worst_table(monkeypatch):
    monkeypatch.setattr(selection, "COST_STEPS", {"kappa_w": 1.0, "confusion": 1.0, "kappa_x": 1.0, "snip": 1.5})
    tables = _tables()
    keys = ["kappa_w", "confusion", "kappa_x", "lr", "snip"]
    chosen, agreed = selection.consensus_over(tables, keys, top=4, threshold=0.05)
    # hand reference: oriented taus per table with scipy (no missing values here)
    ref = {}
    for k, d in (("kappa_w", 1), ("snip", -1), ("kappa_x", 1), ("confusion", 1), ("confusion", -1)):
        taus = [_tau(d * t[k], t["acc"]) for t in tables]
        if min(taus) >= 0.05:
            ref[k] = ("maximize" if d > 0 else "minimize", min(taus))
    assert "confusion" not in ref and set(agreed) == set(ref)  # confusion flips: out; lr: one table only: out
    assert {k: (d, pytest.approx(t)) for k, (d, t) in ref.items()} == agreed
    order = sorted(ref, key=lambda k: -ref[k][1])
    assert [f.key for f in chosen] == order and all(f.weight == 1.0 for f in chosen)
    # the cost cap skips a key that would lift the set above it, and takes the next one
    capped, _ = selection.consensus_over(tables, keys, top=4, max_cost=2.0)
    assert selection.cost_steps([f.key for f in capped]) <= 2.0
    # with one table needed, lr is judged on the table that measured it
    assert "lr" in selection.consensus_over(tables, keys, min_tables=1)[1]


def test_procedures_keep_the_shipped_structure_within_their_caps(monkeypatch):
    monkeypatch.setattr(selection, "COST_STEPS", {"kappa_w": 3.0, "confusion": 1.0, "kappa_x": 1.5, "snip": 0.5})
    tables = _tables()
    for t in tables:
        t["train_loss_last"] = -t["acc"] + 0.3 * np.random.default_rng(5).standard_normal(len(t))
        t["kappa_w@early"] = t["kappa_w"]
    for name, p in procedures.PROCEDURES.items():
        sets = procedures.choose({"init": tables, "early": tables}, "mean", name)
        assert set(sets) == set(procedures.SETS)
        cap = p.init_cap if p.init_cap is not None else np.inf
        assert procedures.set_cost(sets["init"]) <= cap
        assert procedures.set_cost(sets["budget_init"]) <= procedures.BUDGET_MAX_COST
        assert sets["budget_early"][0].key == sets["early"][0].key == selection.EARLY_LOSS
        assert sets["budget_early"][1:] == sets["budget_init"]
        allowed = set(procedures.early_candidates(tables, sets["init"]))
        assert {f.key for f in sets["early"][1:]} <= allowed | {f.key for f in sets["init"]}
    with pytest.raises(ValueError, match="unknown procedure"):
        procedures.choose({"init": tables}, "mean", "nope")


def test_set_cost_counts_early_keys_as_their_metric_and_step_values_free(monkeypatch):
    monkeypatch.setattr(selection, "COST_STEPS", {"kappa_w": 2.0, "grad_weight_ratio": 1.0})
    feats = [Feature("train_loss_last", "minimize"), Feature("loss_drop", "maximize"),
             Feature("kappa_w@early", "maximize"), Feature("kappa_w", "maximize"),
             Feature("relative_step@early", "maximize"), Feature("train_loss_smooth_min", "minimize")]
    assert procedures.set_cost(feats) == pytest.approx(3.0)


def _rows(figures: dict[str, list[float]]) -> pd.DataFrame:
    """Hand-made leave-one-out rows: procedure -> its init taus (init and rung-0 sets over the labs)."""
    return pd.DataFrame([{"left_out": f"L{i}", "phase": "init", "ranker": p, "procedure": p, "tau": t}
                         for p, taus in figures.items() for i, t in enumerate(taus)])


def test_decision_rule_by_mean_then_minimum():
    init, early, follow, _ = loo.decide(_rows({"greedy": [0.3, 0.3], "consensus": [0.5, 0.2]}))
    assert init == early == "consensus" and follow  # mean 0.35 > 0.30 + TIE
    init, _, follow, _ = loo.decide(_rows({"greedy": [0.3, 0.3], "consensus": [0.4, 0.203]}))
    assert init == "greedy" and not follow  # means within TIE (0.3015 vs 0.30): the higher minimum, greedy's
    init, _, follow, _ = loo.decide(_rows({"greedy": [0.2, 0.4], "greedy-4": [0.3, 0.302]}))
    assert init == "greedy-4" and follow  # a tie on the mean, broken by the minimum
    with pytest.raises(ValueError):
        loo.decide(pd.DataFrame({"left_out": [], "phase": [], "ranker": [], "tau": []}))


def test_unscored_configs_are_left_out_of_a_lab(tmp_path):
    rng = np.random.default_rng(0)
    n = 40
    acc = rng.random(n)
    failed = acc < 0.25  # the early steps diverged: no values at all
    path = tmp_path / "pop.csv"
    pd.DataFrame({"index": range(n), "config": [json.dumps({"lr": 0.1, "batch_size": 32})] * n,
                  "eval_status": np.where(failed, "failed", "ok"), "val_best_acc": acc,
                  "meco": np.where(failed, np.nan, 0.0),
                  "kappa_w": np.where(failed, np.nan, acc + rng.standard_normal(n))}).to_csv(path, index=False)
    kept = loo.load_lab(path).phases["init"]
    assert len(kept) == int((~failed).sum())
    # a constant feature ranks nothing among the scored configs; kept, the unscored ones gave it a head start
    assert loo.evaluate(kept, [Feature("meco", "maximize")])[0] == 0.0
    every = loo.load_lab(path, scored_only=False).phases["init"]
    assert loo.evaluate(every, [Feature("meco", "maximize")])[0] == pytest.approx(
        _tau(np.where(failed, 0, 1), acc))
