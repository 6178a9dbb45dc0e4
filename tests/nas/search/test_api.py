"""The library entry point: nas.search(...) from Python, its result, its errors, load_model."""

from __future__ import annotations

import json
import math

import optuna
import pytest
import torch

import nas
from nas.search.config import SearchConfig, SearchError


def test_a_proxy_search_from_python_returns_its_study_and_trials(tmp_path):
    result = nas.search(space="resnet_cifar", dataset="synthetic", trials=3, smoke=True, workers=1, early_steps=2,
                        probe_size=16, group_size=4, study="lib", runs_dir=str(tmp_path))
    assert result.stats["total_complete"] == 3 and result.best is None and result.best_model is None
    df = result.trials
    assert list(df["number"]) == [0, 1, 2] and set(df["state"]) == {"COMPLETE"}
    assert (tmp_path / "lib" / "study.db").is_file() and (tmp_path / "lib" / "trials.csv").is_file()
    # the same study the CLI would write: its settings are stored, a rerun continues to the target
    assert result.study.user_attrs["space"] == "resnet_cifar" and result.study.user_attrs["dataset"] == "synthetic"
    again = nas.search(space="resnet_cifar", dataset="synthetic", trials=4, smoke=True, workers=1, early_steps=2,
                       probe_size=16, group_size=4, study="lib", runs_dir=str(tmp_path))
    assert again.stats["completed"] == 1 and len(again.study.trials) == 4
    # best = the non-dominated trials of the objectives (the dashboard's and the CLI's definition)
    directions = [d == optuna.study.StudyDirection.MINIMIZE for d in again.study.directions]
    for t in again.pareto:
        assert not any(all((o <= v) if mn else (o >= v) for o, v, mn in zip(u.values, t.values, directions))
                       and u.values != t.values for u in again.study.trials)


def test_a_budget_search_from_python_ends_with_a_model_that_loads(tmp_path):
    result = nas.search(space="resnet_cifar", dataset="synthetic", budget="30s", smoke=True, workers=1, epochs=2,
                        probe_size=16, study="b", runs_dir=str(tmp_path))
    assert result.best is not None and 1 <= len(result.curve) <= 2
    model = result.best_model
    assert isinstance(model, torch.nn.Module) and not model.training
    assert result.config == result.study.trials[result.best["trial"]].user_attrs["config"]
    # the saved model is the trained one: it reproduces the stored final accuracy on the test set
    from nas.data import load_dataset

    data = load_dataset("synthetic", "data", seed=0)
    with torch.no_grad():
        acc = (model(data.test_x).argmax(1) == data.test_y).float().mean().item()
    assert math.isclose(acc, result.test_acc, abs_tol=1e-6)
    assert nas.load_model(result.best["model"]).state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("options,needle", [
    ({"space": "nope"}, "unknown space 'nope'"),
    ({"budget": "10s"}, "too short"),
    ({"trials": 0}, "trials must be >= 1"),
    ({"metrics": "kappa"}, "unknown metric 'kappa'"),
    ({"objectives": "loss_early:min", "budget": "1m"}, "not measured at initialization"),
    ({"group_size": 100, "probe_size": 8, "trials": 1}, "--group-size 100 is larger"),
    ({"study": "../../escaped", "trials": 1}, "is not a study name"),
    ({"storage": "sqlite://", "trials": 1}, "in-memory database"),
    ({"max_failures": 0, "trials": 1}, "max_failures >= 1"),
    ({"seed": -1, "trials": 1}, "0 <= seed"),
])
def test_bad_input_is_one_clear_error(tmp_path, options, needle):
    with pytest.raises(SearchError, match=needle.replace("(", r"\(")):
        SearchConfig(**{"dataset": "synthetic", "runs_dir": str(tmp_path), **options}).resolve()
    with pytest.raises(SearchError, match="unknown option"):
        nas.search(budgett="1m")
    assert not any(tmp_path.iterdir())  # nothing written


def test_resolve_fills_the_defaults_a_user_expects(tmp_path):
    c = SearchConfig(dataset="synthetic", runs_dir=str(tmp_path)).resolve(gpu=False)
    assert c.mode == "budget" and c.budget_s == 900.0 and c.bounds  # 15 minutes, the CPU bounds
    assert c.study.startswith("resnet_cifar-synthetic-") and c.objectives
    g = SearchConfig(dataset="synthetic", runs_dir=str(tmp_path)).resolve(gpu=True)
    assert g.budget_s == 3600.0
    t = SearchConfig(dataset="synthetic", trials=5, runs_dir=str(tmp_path)).resolve(gpu=False)
    assert t.mode == "trials" and t.budget_s is None and "@early" in t.objectives or "train_loss" in t.objectives


def test_a_calibrated_budget_search_scores_the_rung0_pool(tmp_path):
    """The refit can only weigh what rung 0 measured: with calibrate the pool's metrics are scored too."""
    from nas.lab.calibration import POOL_METRICS

    plain = SearchConfig(dataset="synthetic", runs_dir=str(tmp_path)).resolve(gpu=False)
    calibrated = SearchConfig(dataset="synthetic", calibrate=True, runs_dir=str(tmp_path)).resolve(gpu=False)
    assert not set(POOL_METRICS) <= set(plain.metrics)
    assert set(POOL_METRICS) <= set(calibrated.metrics) and set(plain.metrics) <= set(calibrated.metrics)
    chosen = SearchConfig(dataset="synthetic", calibrate=True, metrics=["snip"], runs_dir=str(tmp_path)).resolve(gpu=False)
    assert "meco" not in chosen.metrics  # metrics the user names are what is scored


def test_a_study_says_which_search_made_it(tmp_path):
    c = SearchConfig(dataset="synthetic", trials=2, smoke=True, runs_dir=str(tmp_path), study="s",
                     constraints=["rank_input<=0.15"], group_size=4).resolve(gpu=False)
    from nas.search.api import Search

    study = Search(c).study
    back = SearchConfig.from_study(study)
    for field in ("space", "bounds", "dataset", "objectives", "constraints", "metrics", "early_steps", "probe_size",
                  "group_size", "seed", "threads", "mode", "study"):
        assert json.loads(json.dumps(getattr(back, field))) == json.loads(json.dumps(getattr(c, field))), field
    with pytest.raises(SearchError, match="only studies made by"):
        SearchConfig.from_study(optuna.create_study())
