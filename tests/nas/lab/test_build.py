"""nas.lab.build: the resumable table: settings checks, the jobs left, results merged into rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nas.lab import build

CONFIGS = [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}]
FIELDS = dict(space="s", dataset="d", bounds={}, data_dir=".", early_steps=3, long_steps=5, long_metrics=False,
              epochs=1, probe_size=16, threads=1)


def _settings(metrics=("a", "b")):
    return build.settings_of("s", "d", {}, 1, 3, 5, False, 7, 16, list(metrics))


def test_settings_are_those_of_the_table_format():
    s = _settings(("b", "a"))
    assert s == {"format": 1, "space": "s", "dataset": "d", "bounds": {}, "epochs": 1, "early_steps": 3,
                 "long_steps": 5, "seed": 7, "probe_size": 16, "metrics": ["a", "b"]}
    assert build.settings_of("s", "d", {}, 1, 3, 5, True, 7, 16, [])["long_metrics"] is True


def test_plan_apply_and_resume(tmp_path):
    text = json.dumps(_settings(), sort_keys=True)
    rows: dict = {}
    jobs = build.plan_jobs(CONFIGS, rows, text, 1, False, 7, ["a", "b"], **FIELDS)
    assert [(j.kind, j.index, j.seed) for j in jobs] == [("main", 0, 7), ("repeat", 0, 7), ("main", 1, 8),
                                                         ("main", 2, 9)]
    ok = {"main_done": True, "eval_status": "ok", "a": 1.0, "val_best_acc": 0.5}
    assert build.apply_result(rows, jobs[0], "ok", dict(ok), text) is False
    assert build.apply_result(rows, jobs[1], "ok", {"rep_done": True, "rep_best_acc": 0.4, "rep_error": None},
                              text) is False
    assert build.apply_result(rows, jobs[2], "fail", "killed", text) is True  # the worker died: retried
    assert rows[1]["train_error"] == "worker: killed"
    out = tmp_path / "t.csv.gz"
    build.save_table(out, rows)
    table = build.load_table(out)
    assert list(table.columns[:4]) == ["index", "seed", "config", "settings"] and len(table) == 2
    again = build.read_rows(table, _settings(), CONFIGS, out)
    left = build.plan_jobs(CONFIGS, again, text, 1, False, 7, ["a", "b"], **FIELDS)
    assert [(j.kind, j.index) for j in left] == [("main", 1), ("main", 2)]  # row 1 never finished
    # a metric added later: a fill job for the finished row, with just that metric
    more = build.plan_jobs(CONFIGS, again, text, 1, False, 7, ["a", "b", "c"], **FIELDS)
    assert [(j.kind, j.index, j.metrics) for j in more][0] == ("fill", 0, ["c"])
    assert [build.finished(table)["index"].tolist()] == [[0]]


def test_a_table_of_other_settings_or_configs_is_refused(tmp_path):
    table = pd.DataFrame({"index": [0], "config": [json.dumps(CONFIGS[0])],
                          "settings": [json.dumps({**_settings(), "early_steps": 4})]})
    with pytest.raises(build.TableError, match=r"other settings \(early_steps\)"):
        build.read_rows(table, _settings(), CONFIGS, "t")
    table["settings"] = json.dumps(_settings(("a",)))  # other metrics: accepted (filled later)
    assert set(build.read_rows(table, _settings(), CONFIGS, "t")) == {0}
    with pytest.raises(build.TableError, match="config 0 in t is not the one sampled now"):
        build.read_rows(table, _settings(), [{"lr": 9.0}], "t")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(build.TableError, match="not a table of this script"):
        build.load_table(tmp_path / "x.csv")
    assert build.load_table(tmp_path / "missing.csv").empty
