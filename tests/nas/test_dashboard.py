"""The dashboard's best trials follow the CLI's definition (feasible first), through its real HTTP API."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
from optuna_dashboard import wsgi

from nas.dashboard import feasible_best
from nas.study import open_storage
from nas.search.ranking import best_trials


def _get(app, path: str) -> dict:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
    assert status[0].startswith("200"), (status, body[:300])
    return json.loads(body)


def _study(tmp_path, directions):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(study_name="s", storage=storage, directions=directions)
    # trial 0 dominates every other trial but violates its constraint; trials 1 and 2 are feasible
    for values, violation in (([9.0, 9.0], 1.0), ([5.0, 1.0], -1.0), ([1.0, 5.0], 0.0), ([0.5, 0.5], 0.0)):
        t = study.ask()
        t.set_constraint("rank_input<=0.15", violation if values != [0.5, 0.5] else 2.0)
        study.tell(t, values[: len(directions)])
    return storage, study


@pytest.mark.parametrize("directions", [["maximize", "maximize"], ["maximize"]])
def test_dashboard_best_trials_are_the_clis(tmp_path, directions):
    storage, study = _study(tmp_path, directions)
    expected, feasible = best_trials(study.trials, study.directions)
    assert feasible and 0 not in [t.number for t in expected]
    app = wsgi(storage)
    sid = study._study_id
    plain = sorted(t["number"] for t in _get(app, f"/api/studies/{sid}")["best_trials"])
    assert 0 in plain  # the dashboard alone ranks the infeasible trial best
    with feasible_best(storage):
        served = sorted(t["number"] for t in _get(app, f"/api/studies/{sid}")["best_trials"])
    assert served == sorted(t.number for t in expected)
    assert sorted(t["number"] for t in _get(app, f"/api/studies/{sid}")["best_trials"]) == plain  # restored


def test_best_trials_fall_back_to_all_when_none_is_feasible(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, directions=["minimize", "minimize"])
    for values in ([1.0, 2.0], [2.0, 1.0], [3.0, 3.0]):
        t = study.ask()
        t.set_constraint("c", 1.0)
        study.tell(t, values)
    front, feasible = best_trials(study.trials, study.directions)
    assert not feasible and sorted(t.number for t in front) == [0, 1]
