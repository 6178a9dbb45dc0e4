"""benchmarks/proxy_lab.py on a constructed table whose answer is known."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("proxy_lab", ROOT / "benchmarks" / "proxy_lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["proxy_lab"] = module
    spec.loader.exec_module(module)
    return module


lab = _load()


def _table(n=60, seed=0):
    """kappa_w ranks accuracy in reverse of the paper (higher is better), confusion is noise, the loss
    after 20 steps ranks it well; a NaN kappa_w (undefined) goes with the worst accuracies."""
    rng = np.random.default_rng(seed)
    acc = rng.random(n)
    kappa_w = acc + 0.3 * rng.standard_normal(n)
    kappa_w[np.argsort(acc)[:3]] = np.nan
    rows = []
    for i in range(n):
        rows.append({"index": i, "config": json.dumps({"lr": 0.1, "batch_size": 32}), "eval_status": "ok",
                     "val_best_acc": acc[i] + 0.01 * rng.standard_normal(), "rep_best_acc": acc[i],
                     "kappa_w": kappa_w[i], "kappa_w@early": kappa_w[i], "confusion": rng.random(),
                     "train_loss_last": 2.0 - acc[i] + 0.2 * rng.standard_normal(),
                     "train_loss_last@50": 2.0 - acc[i], "params": rng.random()})
    return pd.DataFrame(rows)


def test_measured_direction_and_undefined_values_rank_last(tmp_path):
    path = tmp_path / "t.csv.gz"
    _table().to_csv(path, index=False)
    df = lab.load(path)
    assert len(df) == 60 and (df["acc"] == (df["val_best_acc"] + df["rep_best_acc"]) / 2).all()
    d, t = lab.measured_direction(df, "kappa_w")
    assert d == "maximize" and t > 0.4  # the constructed sign, NaN rows (worst accuracies) ranked last
    assert lab.measured_direction(df, "train_loss_last")[0] == "minimize"  # losses are never learned
    ev = lab.evidence(df, "toy")
    assert ev["kappa_w"]["init"][:1] == ("maximize",) and ev["kappa_w"]["init"][2:4] == (60, "toy")


def test_held_out_selection_reports_on_the_other_half():
    table = _table()
    table["acc"] = (table["val_best_acc"] + table["rep_best_acc"]) / 2
    table["lr"], table["batch_size"] = 0.1, 32
    res = lab.held_out(table, splits=4, seed=0)
    assert len(res) == 4
    assert (res["loss after 50 steps"] > 0.8).all()  # a near-perfect fixed baseline stays near-perfect
    assert res["best single early"].mean() > 0.5
    assert all("kappa_w:max" in s or "train_loss_last" in s for s in res["combined early features"])


def test_cli_writes_evidence_and_rejects_bad_input(tmp_path, capsys):
    path = tmp_path / "t.csv.gz"
    _table().to_csv(path, index=False)
    evidence = tmp_path / "evidence.py"
    evidence.write_text('"""doc"""\n\nMEASURED: dict = {}\n')
    assert lab.main(["--table", str(path), "--splits", "2", "--write-evidence", str(evidence), "--lab", "toy"]) == 0
    out = capsys.readouterr().out
    assert "seed-to-seed tau (all)" in out and "held-out Kendall tau" in out
    namespace: dict = {}
    exec(evidence.read_text(), namespace)
    assert namespace["MEASURED"]["kappa_w"]["init"][0] == "maximize"
    assert namespace["__doc__"] == "doc"
    with pytest.raises(SystemExit):
        lab.main(["--table", str(tmp_path / "missing.csv")])


def _nb201_lab(tmp_path, n=40, seed=0):
    """Two score caches of nb201_proxies (one data-free + mnist5k, one gaussian) for n cells whose
    flops track the CIFAR-10 accuracy and whose kappa_w on gaussian inputs tracks it in reverse."""
    spec = importlib.util.spec_from_file_location("nb201_lab", ROOT / "benchmarks" / "nb201_lab.py")
    nb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nb)
    rng = np.random.default_rng(seed)
    truth = pd.DataFrame({"CIFAR10TestAccuracy200Epochs": 60 + 30 * rng.random(200),
                          "CIFAR100TestAccuracy200Epochs": 30 + 30 * rng.random(200),
                          "ImageNetTestAccuracy200Epochs": 10 + 30 * rng.random(200),
                          "ArchitectureString": [f"arch{i}" for i in range(200)]})
    base = "nb201 C=16 N=5 classes=10 input=3x32x32 init=index+0"
    cells = rng.choice(200, n, replace=False)
    acc = truth["CIFAR10TestAccuracy200Epochs"].to_numpy()
    m_rows, g_rows = [], []
    for i in cells:
        m_rows.append((i, "flops", f"{base}; flops per example", acc[i] + rng.normal(), 0.1, 1))
        m_rows.append((i, "kappa_w", f"{base}; data=mnist5k batch=32 data_seed=0", rng.random(), 0.1, 1))
        g_rows.append((i, "kappa_w", f"{base}; data=gaussian batch=32 data_seed=0", -acc[i] + rng.normal(), 0.1, 1))
    cols = ["index", "metric", "settings", "value", "seconds", "threads"]
    pd.DataFrame(m_rows, columns=cols).to_csv(tmp_path / "m.csv", index=False)
    pd.DataFrame(g_rows[:-1], columns=cols).to_csv(tmp_path / "g.csv", index=False)  # one cell unscored
    wide = nb.build([tmp_path / "m.csv", tmp_path / "g.csv"], truth)
    return wide, cells, truth


def test_nb201_lab_pivots_caches_and_proxy_lab_reads_it(tmp_path):
    wide, cells, truth = _nb201_lab(tmp_path)
    assert len(wide) == len(cells) - 1  # only cells with every column
    assert {"flops", "kappa_w[mnist5k]", "kappa_w[gaussian]", "C10", "C100", "IN16"} <= set(wide.columns)
    row = wide.iloc[0]
    assert row["C10"] == truth["CIFAR10TestAccuracy200Epochs"][row["index"]]
    assert row["arch"] == f"arch{row['index']}"
    path = tmp_path / "nb.csv.gz"
    wide.to_csv(path, index=False)
    df = lab.load(path, "C10")
    assert df.attrs["nb201"] and np.allclose(df["acc"], df["C10"] / 100)
    assert lab.phases(df) == ("init",) and lab.data_kinds(df) == ["gaussian", "mnist5k"]
    keys = lab.candidate_features(df, "init")
    assert set(keys) == {"flops", "kappa_w[mnist5k]", "kappa_w[gaussian]"}
    assert lab.measured_direction(df, "kappa_w[gaussian]")[0] == "minimize"
    assert lab.with_data(df, "gaussian")["kappa_w"].equals(df["kappa_w[gaussian]"])
    res = lab.held_out(df, splits=3, seed=0)
    assert (res["best single init"] > 0.5).all() and "combined early" not in res.columns
    assert lab.main(["--table", str(path), "--splits", "2", "--target", "C100"]) == 0


def test_evidence_marks_signs_stable_or_unstable_across_labs(tmp_path):
    path = tmp_path / "t.csv.gz"
    _table().to_csv(path, index=False)
    df = lab.load(path)  # kappa_w: maximized on this lab
    acc = np.linspace(0.5, 0.9, 30)
    for sign, stable in ((1.0, True), (-1.0, False)):
        other = pd.DataFrame({"acc": acc, "kappa_w[mnist5k]": sign * acc, "confusion[gaussian]": acc})
        ev = lab.evidence(df, "toy", other)
        assert ev["kappa_w"]["init"][4] is stable
        assert "early" not in ev["kappa_w"] or ev["kappa_w"]["early"][4] is None  # judged at init only
    assert lab.evidence(df, "toy", pd.DataFrame({"acc": acc}))["kappa_w"]["init"][4] is None  # not measured there
