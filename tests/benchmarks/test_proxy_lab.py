"""benchmarks/proxy_lab.py (a thin script over nas.lab, tested in tests/nas/lab) end to end on constructed tables."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.lab import judge, selection, tables

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("proxy_lab", ROOT / "benchmarks" / "proxy_lab.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["proxy_lab"] = module
    spec.loader.exec_module(module)
    return module


lab = _load()


def _lab_conftest():
    """The lab tests' toy ground-truth table (tests/nas/lab/conftest.py: toy_table), one definition."""
    spec = importlib.util.spec_from_file_location("_gradnas_lab_conftest", ROOT / "tests" / "nas" / "lab" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_table = _lab_conftest().toy_table


def test_cli_writes_evidence_and_rejects_bad_input(tmp_path, capsys):
    path = tmp_path / "t.csv.gz"
    _table().to_csv(path, index=False)
    evidence = tmp_path / "evidence.json"
    args = ["--table", str(path), "--splits", "2", "--write-evidence", str(evidence), "--lab", "toy"]
    assert lab.main(args) == 0
    out = capsys.readouterr().out
    assert "seed-to-seed tau (all)" in out and "held-out Kendall tau" in out
    doc = json.loads(evidence.read_text())  # the format of objectives/data/evidence.json
    entry = doc["measured"]["kappa_w"]["init"]
    assert entry == {"direction": "maximize", "tau": entry["tau"], "n": 60, "lab": "toy", "stable": None}
    assert entry["tau"] > 0.4
    assert doc["command"] == "python benchmarks/proxy_lab.py " + " ".join(args)
    assert doc["sha256"] == {path.as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()}
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


def test_nb201_lab_pivots_caches_and_proxy_lab_reads_it(tmp_path, capsys):
    wide, cells, truth = _nb201_lab(tmp_path)
    assert len(wide) == len(cells) - 1  # only cells with every column
    assert {"flops", "kappa_w[mnist5k]", "kappa_w[gaussian]", "C10", "C100", "IN16"} <= set(wide.columns)
    row = wide.iloc[0]
    assert row["C10"] == truth["CIFAR10TestAccuracy200Epochs"][row["index"]]
    assert row["arch"] == f"arch{row['index']}"
    path = tmp_path / "nb.csv.gz"
    wide.to_csv(path, index=False)
    df = tables.load(path, "C10")
    assert df.attrs["nb201"] and np.allclose(df["acc"], df["C10"] / 100)
    assert tables.phases(df) == ("init",) and tables.data_kinds(df) == ["gaussian", "mnist5k"]
    keys = selection.candidate_features(df, "init")
    assert set(keys) == {"flops", "kappa_w[mnist5k]", "kappa_w[gaussian]"}
    assert selection.measured_direction(df, "kappa_w[gaussian]")[0] == "minimize"
    assert tables.with_data(df, "gaussian")["kappa_w"].equals(df["kappa_w[gaussian]"])
    res = judge.held_out(df, splits=3, seed=0)
    assert (res["best single init"] > 0.5).all() and "combined early" not in res.columns
    capsys.readouterr()
    assert lab.main(["--table", str(path), "--splits", "2", "--target", "C100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"table: {len(wide)} NAS-Bench-201 cells; target C100") and "combined early" not in out
    assert "inputs of the data metrics: gaussian, mnist5k" in out and "best single init" in out


def test_cli_leave_one_lab_out(tmp_path, capsys):
    paths = []
    for i, name in enumerate(("a", "b", "c")):
        paths.append(tmp_path / f"{name}.csv.gz")
        _table(40, seed=i).to_csv(paths[-1], index=False)
    assert lab.main(["--loo", *map(str, paths), "--splits", "2"]) == 0
    out = capsys.readouterr().out
    assert "consensus-early budget (<= 2 steps)" in out and "a early" in out and "targets (issue 24), for greedy" in out
    assert "greedy without c (init): kappa_w:max" in out
    with pytest.raises(SystemExit):
        lab.main(["--loo", str(paths[0])])  # one lab: nothing to leave out
    with pytest.raises(SystemExit):
        lab.main(["--loo", str(paths[0]), str(paths[0])])  # the same name twice
    with pytest.raises(SystemExit):
        lab.main(["--loo", str(paths[0]), str(tmp_path / "missing.csv")])
