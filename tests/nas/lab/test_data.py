"""nas.lab.data: the package data objectives reads is what the committed tables give, with their hashes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from nas.lab import data, procedures, selection
from nas.lab.__main__ import main
from objectives import combine, evidence

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_package_data_is_what_the_committed_tables_give(in_root, tmp_path, capsys):
    """``python -m nas.lab regenerate --check``: regenerating changes nothing (the shipped evidence and
    feature sets are reproducible from benchmarks/tables/)."""
    assert main(["regenerate", "--check"]) == 0, capsys.readouterr().out
    assert "differs" not in capsys.readouterr().out
    # into another folder: the same bytes
    changed = data.regenerate(out=tmp_path)
    assert changed == {"evidence.json": True, "feature_sets.json": True}
    for name in changed:
        assert (tmp_path / name).read_bytes() == (data.PACKAGE_DATA / name).read_bytes()
    assert data.regenerate(out=tmp_path) == {"evidence.json": False, "feature_sets.json": False}


def test_documents_record_their_sources_and_command():
    for name in ("evidence.json", "feature_sets.json"):
        doc = data.read_document(data.PACKAGE_DATA / name)
        assert doc["command"] == data.COMMAND
        for path, digest in doc["sha256"].items():
            assert data.sha256(ROOT / path) == digest, path
    assert "benchmarks/tables/resnet_mnist5k.csv.gz" in data.read_document(
        data.PACKAGE_DATA / "evidence.json")["sha256"]


def test_objectives_reads_the_package_data():
    sets = data.read_document(data.PACKAGE_DATA / "feature_sets.json")["sets"]
    for name, features in (("init", combine.INIT_FEATURES), ("early", combine.EARLY_FEATURES),
                           ("budget_init", combine.BUDGET_INIT_FEATURES),
                           ("budget_early", combine.BUDGET_EARLY_FEATURES)):
        assert [(f.key, f.direction, f.weight) for f in features] == [
            (f["key"], f["direction"], f["weight"]) for f in sets[name]["features"]]
    assert combine.EARLY_LOSS_WEIGHT == combine.EARLY_FEATURES[0].weight
    measured = data.read_document(data.PACKAGE_DATA / "evidence.json")["measured"]
    fields = evidence.EVIDENCE_FIELDS
    assert evidence.MEASURED["kappa_x"]["init"] == tuple(measured["kappa_x"]["init"][k] for k in fields)
    costs = data.read_document(data.PACKAGE_DATA / "metric_costs.json")["cost_steps"]
    assert evidence.COST_STEPS == costs and all(isinstance(v, float) for v in evidence.COST_STEPS.values())


def test_shipped_sets_keep_their_structure_and_caps():
    """Properties of the shipped sets (not their keys): the rung-0 set within 2 steps, the early sets the
    early loss (a weight the procedure tries) first, the rung-1 set the loss plus the rung-0 set, each
    recorded cost the set's cost."""
    doc = data.read_document(data.PACKAGE_DATA / "feature_sets.json")
    assert procedures.set_cost(combine.BUDGET_INIT_FEATURES) <= procedures.BUDGET_MAX_COST
    for early in (combine.EARLY_FEATURES, combine.BUDGET_EARLY_FEATURES):
        assert (early[0].key, early[0].direction) == (selection.EARLY_LOSS, "minimize")
        assert early[0].weight in selection.LOSS_WEIGHTS
    assert combine.BUDGET_EARLY_FEATURES[1:] == combine.BUDGET_INIT_FEATURES
    for name in ("init", "budget_init"):
        entry = doc["sets"][name]
        assert entry["cost_steps"] == pytest.approx(procedures.set_cost(
            [combine.Feature(f["key"], f["direction"]) for f in entry["features"]]), abs=0.005)


def test_all_labs_document_runs_a_procedure_on_every_lab(in_root):
    """What a winning procedure would ship: its sets chosen on all the lab tables at once, within its caps,
    with the procedure, the labs and every table's hash recorded, and in-sample taus that scipy agrees with."""
    from scipy import stats

    from nas.lab.loo import load_lab

    tables = [data.TABLES / t for t in data.LABS]
    doc = data.all_labs_document(tables, data.PACKAGE_DATA / "metric_costs.json", "cmd", "greedy-4")
    assert doc["procedure"] == doc["early_procedure"] == "greedy-4" and doc["command"] == "cmd"
    assert doc["labs"] == [t.split(".")[0] for t in data.LABS]
    assert {f"benchmarks/tables/{t}" for t in data.LABS} < set(doc["sha256"])
    sets = {name: [combine.Feature(f["key"], f["direction"], f["weight"]) for f in e["features"]]
            for name, e in doc["sets"].items()}
    assert procedures.set_cost(sets["init"]) <= procedures.INIT_MAX_COST
    assert procedures.set_cost(sets["budget_init"]) <= procedures.BUDGET_MAX_COST
    assert sets["budget_early"][1:] == sets["budget_init"] and sets["early"][0].key == selection.EARLY_LOSS
    resnet = load_lab(tables[0]).phases["init"]
    s = selection.score(resnet, sets["init"])
    assert doc["sets"]["init"]["in_sample_tau"]["resnet_mnist5k"] == pytest.approx(
        stats.kendalltau(s, resnet["acc"]).statistic, abs=5e-4)


def test_package_data_ships_in_the_wheel():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = cfg["tool"]["setuptools"]["package-data"]["objectives"]
    package = ROOT / "objectives"
    shipped = {p.relative_to(package).as_posix() for pat in patterns for p in package.glob(pat)}
    assert {"data/evidence.json", "data/feature_sets.json", "data/metric_costs.json"} <= shipped


def test_dumps_round_trips_one_leaf_per_line():
    doc = {"a": 1, "b": {"x": {"k": "v", "n": None}, "y": [{"key": "k", "weight": 1.0}, {"key": "j", "weight": 2.0}]},
           "c": [1, 2], "d": {f"m{i}": float(i) for i in range(10)}}
    text = data.dumps(doc)
    assert json.loads(text) == doc
    lines = text.splitlines()
    assert '    "x": {"k": "v", "n": null},' in lines and '      {"key": "k", "weight": 1.0},' in lines
    assert '  "c": [1, 2],' in lines and '    "m9": 9.0' in lines  # a leaf dict of more than 8 entries: one a line


def test_metric_costs_keep_what_the_run_does_not_measure():
    previous = {"cost_steps": {"kappa_w": 9.0, "loss_init": 0.3}, "not_measured": {"loss_init": "estimated"}}
    doc = data.metric_costs_document({"snip": 1.234, "kappa_w": 2.971}, "cmd", previous, "today")
    assert doc["cost_steps"] == {"kappa_w": 2.97, "snip": 1.23, "loss_init": 0.3}
    assert list(doc["cost_steps"]) == ["kappa_w", "snip", "loss_init"]
    assert doc["not_measured"] == {"loss_init": "estimated"} and doc["command"] == "cmd"
    assert data.metric_costs_document({"a": 1.0}, "cmd")["cost_steps"] == {"a": 1.0}


def test_cli_refuses_a_folder_without_the_tables(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["regenerate", "--tables", str(tmp_path)])
    assert "no resnet_mnist5k.csv.gz, nb201_lab.csv.gz, mlp_mnist5k.csv.gz, vgg_mnist5k.csv.gz" in capsys.readouterr().err
