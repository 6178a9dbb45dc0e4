"""nas.lab.tables: the accuracy to rank, the phase views, NB201 detection, the seed-to-seed ceiling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from nas.lab import tables


def test_load_averages_the_two_seeds_and_expands_the_config(toy_path):
    df = tables.load(toy_path)
    raw = pd.read_csv(toy_path)
    assert len(df) == 60 and not df.attrs.get("nb201")
    np.testing.assert_allclose(df["acc"], (raw["val_best_acc"] + raw["rep_best_acc"]) / 2)
    assert (df["lr"] == 0.1).all() and (df["batch_size"] == 32).all()  # from the config JSON
    assert tables.phases(df) == ("init", "early", "50")


def test_load_keeps_a_single_seed_and_drops_rows_without_accuracy(tmp_path):
    raw = pd.DataFrame({"index": [0, 1, 2], "config": [json.dumps({"lr": 0.1})] * 3,
                        "val_best_acc": [0.5, np.nan, 0.7]})
    raw.to_csv(tmp_path / "t.csv", index=False)
    df = tables.load(tmp_path / "t.csv")
    assert df["acc"].tolist() == [0.5, 0.7] and df["index"].tolist() == [0, 2]


def test_nb201_table_ranks_the_target_accuracy(tmp_path):
    raw = pd.DataFrame({"index": [0, 1, 2], "C10": [90.0, 80.0, np.nan], "C100": [60.0, 70.0, 50.0],
                        "IN16": [30.0, 20.0, 10.0], "flops": [3.0, 1.0, 2.0], "kappa_w[mnist5k]": [1.0, 2.0, 3.0],
                        "kappa_w[gaussian]": [3.0, 2.0, 1.0]})
    raw.to_csv(tmp_path / "nb.csv", index=False)
    assert tables.is_nb201(raw)
    df = tables.load(tmp_path / "nb.csv", "C100")
    assert df.attrs["nb201"] and df["acc"].tolist() == [0.6, 0.7, 0.5]
    assert tables.load(tmp_path / "nb.csv", "C10")["acc"].tolist() == [0.9, 0.8]
    assert tables.phases(df) == ("init",) and tables.data_kinds(df) == ["gaussian", "mnist5k"]
    assert tables.with_data(df, "gaussian")["kappa_w"].tolist() == [3.0, 2.0, 1.0]


def test_steps_view_renames_the_50_step_values_as_a_search_stores_them():
    df = pd.DataFrame({"kappa_w": [1.0], "kappa_w@early": [2.0], "kappa_w@50": [3.0], "train_loss_last": [4.0],
                       "train_loss_last@50": [5.0], "loss_curve@50": ["[1, 2]"]})
    df.attrs["x"] = 1
    view = tables.steps_view(df)
    assert sorted(view.columns) == ["kappa_w", "kappa_w@early", "loss_curve", "train_loss_last"]
    assert view["kappa_w@early"][0] == 3.0 and view["train_loss_last"][0] == 5.0 and view.attrs["x"] == 1
    t, kind = tables.phase_table(df, "50")
    assert kind == "early" and t["kappa_w@early"][0] == 3.0
    assert tables.phase_table(df, "init") == (df, "init")


def test_seed_ceiling_is_kendall_tau_of_the_two_trainings(toy_path):
    df = tables.load(toy_path)
    ceiling = tables.seed_ceiling(df)
    assert ceiling["all"] == (stats.kendalltau(df["val_best_acc"], df["rep_best_acc"]).statistic, 60)
    trains = df[df["acc"] > tables.TRAINS]
    assert ceiling["trains"][1] == len(trains)
    assert ceiling["trains"][0] == stats.kendalltau(trains["val_best_acc"], trains["rep_best_acc"]).statistic
    assert tables.seed_ceiling(df.drop(columns=["rep_best_acc"])) == {}
