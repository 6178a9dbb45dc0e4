"""nas.lab.loo against independent references: three constructed labs whose answers are known."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nas.lab import judge, loo, selection
from nas.lab.tables import load
from objectives.combine import AZ_NAS_FEATURES, INIT_FEATURES, Feature


def _log_rank_score(df: pd.DataFrame, features) -> np.ndarray:
    """Summed weighted log-ranks written out with scipy (tables without missing values); a feature whose
    column the table lacks is left out."""
    n = len(df)
    total = np.zeros(n)
    for f in features:
        if f.key in df.columns:
            v = df[f.key].to_numpy(float)
            total += f.weight * np.log(stats.rankdata(v if f.direction == "maximize" else -v) / n)
    return total


def _tau(score, acc) -> float:
    return float(stats.kendalltau(score, acc).statistic)


def _table(n: int, seed: int, local: bool, early: bool = True, confusion: bool = True) -> pd.DataFrame:
    """kappa_w tracks accuracy in every lab (higher is better); confusion tracks it closely (lower is
    better) only where ``local``, elsewhere it is noise; params is noise; the early loss tracks it."""
    rng = np.random.default_rng(seed)
    acc = rng.random(n)
    df = pd.DataFrame({"acc": acc, "kappa_w": acc + 0.2 * rng.standard_normal(n), "params": rng.random(n),
                       "meco": acc + 0.6 * rng.standard_normal(n)})
    if confusion:
        df["confusion"] = -acc + 0.03 * rng.standard_normal(n) if local else rng.random(n)
    if early:
        df["train_loss_last"] = 1.0 - acc + 0.3 * rng.standard_normal(n)
    return df


def _labs(n: int = 80) -> list[loo.Lab]:
    """A: confusion predicts there only; B: noise; C: no early phase and no confusion column (NB201-like)."""
    a, b = _table(n, 1, local=True), _table(n, 2, local=False)
    c = _table(n, 3, local=False, early=False, confusion=False)
    return [loo.Lab("A", {"init": a, "early": a}), loo.Lab("B", {"init": b, "early": b}), loo.Lab("C", {"init": c})]


def test_the_feature_that_ranks_in_every_lab_is_chosen_over_one_that_ranks_in_one_lab():
    a, b, _ = (lab.phases["init"] for lab in _labs())
    # within lab A alone confusion is the best single key ...
    assert selection.select(a, selection.candidate_features(a, "init"))[1] == Feature("confusion", "minimize")
    # ... chosen on A and B together, kappa_w (it ranks in both) comes first
    chosen = loo.choose({"init": [a, b], "early": [a, b]})
    assert chosen["init"][0] == Feature("kappa_w", "maximize")
    # the pooled tau is the mean of the within-lab taus (references: scipy on each lab)
    one = (Feature("confusion", "minimize"),)
    assert selection.pooled_tau([a, b], one) == pytest.approx(
        (_tau(-a["confusion"], a["acc"]) + _tau(-b["confusion"], b["acc"])) / 2)
    assert selection.pooled_tau([a, b], one, "min") == pytest.approx(
        min(_tau(-a["confusion"], a["acc"]), _tau(-b["confusion"], b["acc"])))
    # the early sets: the early loss (minimized, a weight of LOSS_WEIGHTS) before the init set
    assert chosen["early"][0].key == selection.EARLY_LOSS and chosen["early"][1:] == chosen["init"]
    assert chosen["early"][0].weight in selection.LOSS_WEIGHTS


def test_leave_one_out_reports_scipy_taus_on_the_left_out_rows(monkeypatch):
    # the costs this test reasons with (not the package's measured ones, which are re-measured now and then)
    monkeypatch.setattr(selection, "COST_STEPS", {"kappa_w": 2.9, "confusion": 1.8, "meco": 0.4, "params": 0.0})
    labs = _labs()
    res = loo.leave_one_out(labs, splits=3, seed=0)
    by = {(r.left_out, r.phase, r.ranker): r for r in res.itertuples()}
    assert {(lab, ph) for lab, ph, _ in by} == {("A", "init"), ("A", "early"), ("B", "init"), ("B", "early"),
                                                ("C", "init")}  # C has no early phase
    for out in labs:
        train = [lab for lab in labs if lab is not out]
        chosen = loo.choose({ph: [lab.phases[ph] for lab in train if ph in lab.phases] for ph in loo.PHASES})
        for phase, table in out.phases.items():
            name = "init" if phase == "init" else "early"
            row = by[(out.name, phase, "greedy")]
            assert row.n == len(table)
            assert row.tau == pytest.approx(_tau(_log_rank_score(table, chosen[name]), table["acc"]))
            assert row.p == pytest.approx(stats.kendalltau(_log_rank_score(table, chosen[name]), table["acc"]).pvalue)
        t = out.phases["init"]
        assert by[(out.name, "init", "MeCo")].tau == pytest.approx(_tau(t["meco"], t["acc"]))
        assert by[(out.name, "init", "params")].tau == pytest.approx(_tau(t["params"], t["acc"]))
        # AZ-NAS reads columns these labs lack: not measured there, no crash; the shipped set is measured
        # where the lab has one of its features, on the features it has
        assert (out.name, "init", "AZ-NAS") not in by
        if any(f.key in t.columns for f in INIT_FEATURES):
            assert by[(out.name, "init", "shipped")].tau == pytest.approx(
                _tau(_log_rank_score(t, INIT_FEATURES), t["acc"]))
        else:
            assert (out.name, "init", "shipped") not in by
    e = labs[0].phases["early"]
    assert by[("A", "early", "loss after 50 steps")].tau == pytest.approx(_tau(-e["train_loss_last"], e["acc"]))
    # left out C (no confusion column): kappa_w, which ranks in A and B, is chosen; the budget choice (kappa_w
    # costs more than 2 steps) is confusion, missing in C: not measured there
    c = labs[2].phases["init"]
    assert by[("C", "init", "greedy")].features == "kappa_w:max"
    assert by[("C", "init", "greedy")].tau == pytest.approx(_tau(c["kappa_w"], c["acc"]))
    row = by[("C", "init", "greedy budget (<= 2 steps)")]
    assert row.features == "confusion:min" and row.missing == "confusion" and np.isnan(row.tau)
    # left out B: chosen on A and C, where C lacks confusion: it is judged on A alone and enters after kappa_w
    row = by[("B", "init", "greedy")]
    assert row.features == "kappa_w:max + confusion:min" and row.missing == ""
    b = labs[1].phases["init"]
    assert row.tau == pytest.approx(_tau(_log_rank_score(b, [Feature("kappa_w", "maximize"),
                                                              Feature("confusion", "minimize")]), b["acc"]))


def test_a_set_a_lab_lacks_entirely_is_not_measured_there():
    t = _table(30, 4, local=False, early=False)
    assert np.isnan(loo.evaluate(t, AZ_NAS_FEATURES)[0])
    assert loo.evaluate(t, (Feature("kappa_w", "maximize"), *AZ_NAS_FEATURES))[0] == pytest.approx(
        _tau(t["kappa_w"], t["acc"]))


def _population(path, n=40, seed=0) -> None:
    rng = np.random.default_rng(seed)
    acc = rng.random(n)
    pd.DataFrame({"index": range(n), "config": [json.dumps({"lr": 0.1, "batch_size": int(b)})
                                                for b in rng.integers(32, 128, n)],
                  "val_best_acc": acc, "rep_best_acc": acc + 0.01 * rng.standard_normal(n),
                  "kappa_w": acc + 0.3 * rng.standard_normal(n), "confusion": rng.random(n),
                  "train_loss_last": 2.0 - acc + 0.4 * rng.standard_normal(n),
                  "train_loss_last@50": 2.0 - acc + 0.2 * rng.standard_normal(n),
                  # the early steps' per-step loss (the early sets' smoothed loss reads it)
                  "loss_curve@50": [json.dumps(list(2.3 - a * np.linspace(0, 1, 50) + 0.3 * rng.standard_normal(50)))
                                    for a in acc]}).to_csv(path, index=False)


def test_in_lab_score_is_the_judges_held_out_figure(tmp_path):
    path = tmp_path / "pop.csv.gz"
    _population(path)
    lab = loo.load_lab(path)
    assert lab.name == "pop" and set(lab.phases) == {"init", "early"}
    inside = loo.in_lab(lab, splits=4, seed=3)
    held = judge.held_out(load(path), splits=4, seed=3)
    assert inside["init"] == pytest.approx(held["combined init"].mean())
    assert inside["early"] == pytest.approx(held["combined 50 (early loss + init set)"].mean())


def test_nb201_lab_columns_map_to_plain_metric_names(tmp_path):
    rng = np.random.default_rng(0)
    n = 20
    path = tmp_path / "nb.csv"
    pd.DataFrame({"index": range(n), "arch": [f"a{i}" for i in range(n)], "C10": 60 + 30 * rng.random(n),
                  "C100": rng.random(n), "IN16": rng.random(n), "lr": 0.1, "batch_size": 256,
                  "flops": rng.random(n), "kappa_w[mnist5k]": rng.random(n),
                  "kappa_w[gaussian]": rng.random(n)}).to_csv(path, index=False)
    lab = loo.load_lab(path)
    t = lab.phases["init"]
    assert set(lab.phases) == {"init"} and lab.name == "nb"
    assert "kappa_w[gaussian]" not in t.columns and "kappa_w[mnist5k]" not in t.columns
    raw = pd.read_csv(path)
    np.testing.assert_allclose(t["kappa_w"], raw["kappa_w[mnist5k]"])
    np.testing.assert_allclose(loo.load_lab(path, nb201_input="gaussian").phases["init"]["kappa_w"],
                               raw["kappa_w[gaussian]"])
    np.testing.assert_allclose(t["acc"], raw["C10"] / 100)
    assert {"kappa_w", "flops"} <= set(selection.candidate_features(t, "init"))


def test_report_prints_the_table_and_the_targets():
    text = loo.report(_labs(40), splits=2, seed=0)
    assert "greedy budget (<= 2 steps)" in text and "targets (issue 24), for" in text
    assert "greedy without C (init)" in text and "init winner:" in text
    with pytest.raises(ValueError):
        loo.leave_one_out(_labs(40)[:1])
