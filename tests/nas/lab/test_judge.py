"""nas.lab.judge: held-out selection reports on the half it did not choose on."""

from __future__ import annotations

import numpy as np
import pytest

from nas.lab import judge
from nas.lab.selection import candidate_features, select, tau
from nas.lab.tables import load
from objectives.combine import rank_aggregate


def test_halves_are_disjoint_covering_and_seeded():
    parts = judge.halves(11, 3, seed=5)
    assert len(parts) == 3
    for a, b in parts:
        assert len(a) == 5 and sorted(np.concatenate([a, b]).tolist()) == list(range(11))
    rng = np.random.default_rng(5)
    assert [a.tolist() for a, _ in parts] == [rng.permutation(11)[:5].tolist() for _ in range(3)]
    assert [a.tolist() for a, _ in judge.halves(11, 3, seed=5)] == [a.tolist() for a, _ in parts]


def test_held_out_selection_reports_on_the_other_half(toy):
    table = toy
    table["acc"] = (table["val_best_acc"] + table["rep_best_acc"]) / 2
    table["lr"], table["batch_size"] = 0.1, 32
    res = judge.held_out(table, splits=4, seed=0)
    assert len(res) == 4
    assert (res["loss after 50 steps"] > 0.8).all()  # a near-perfect fixed baseline stays near-perfect
    assert res["best single early"].mean() > 0.5
    assert all("kappa_w:max" in s or "train_loss_last" in s for s in res["combined early features"])


def test_first_splits_on_the_config_index(toy_path):
    df = load(toy_path)
    res = judge.held_out(df, splits=20, seed=0, first=40)
    a, b = df[df["index"] < 40].reset_index(drop=True), df[df["index"] >= 40].reset_index(drop=True)
    combo, _ = select(a, candidate_features(a, "init"))
    assert len(res) == 1
    assert res["combined init"][0] == pytest.approx(tau(rank_aggregate(b, combo), b["acc"].to_numpy()))
    text = judge.report(df, 2, 0, choose=True, directions=True, first=40)
    assert "chosen on the 40 configs with index < 40, reported on the 20 later ones" in text
    assert "INIT_FEATURES = (" in text and "measured direction per key" in text


def test_old_defaults_put_infeasible_rows_last():
    import pandas as pd

    df = pd.DataFrame({"confusion": [1.0, 2.0, 3.0], "diversity": [1.0, 2.0, 3.0], "kappa_w": [1.0, 2.0, 3.0],
                       "rank_input": [0.5, 0.1, 0.1]})
    s = judge.old_defaults(df)
    assert s[0] < s[2] < s[1]  # the best by the objectives is infeasible


def test_capped_report_pairs_the_capped_and_uncapped_choice_on_the_same_halves(toy_path):
    df = load(toy_path)
    # a cap above every metric's cost chooses what the uncapped selection chooses: no difference on any half
    loose = judge.capped_report(df, max_cost=1e9, splits=3, seed=0)
    assert "capped - uncapped +0.000 +- 0.000, capped >= uncapped in 100% of halves" in loose
    # the capped tau of one half, by hand
    a, b = judge.halves(len(df), 1, 0)[0]
    ta, tb = df.iloc[a].reset_index(drop=True), df.iloc[b].reset_index(drop=True)
    combo, _ = select(ta, candidate_features(ta, "init"), max_cost=1.0)
    expected = tau(rank_aggregate(tb, combo), tb["acc"].to_numpy())
    assert f"held-out tau {expected:.3f} +- 0.000 (1 halves)" in judge.capped_report(df, 1.0, splits=1, seed=0)
