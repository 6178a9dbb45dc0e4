"""Validation by full training: ``python -m nas validate`` (selection, stored results, kill -9 and rerun,
bad input); the training itself is tested in tests/nas/training/test_train.py."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution

import objectives
from nas.cli import main
from nas.study import (
    default_storage, open_study, parse_constraint, parse_objectives,
)
from nas.validate import ValidateOptions, run_validation, select_trials, validation_results
from nas.search.ranking import nondominated_ranks
from nas.training import summarize
from search_spaces import get_space

#: The pre-lab search defaults: these studies are made with custom objectives and constraints.
THESIS_OBJECTIVES = "confusion:min,diversity:min,kappa_w:min"
THESIS_CONSTRAINTS = ("rank_input<=0.15", "loss_drop>=0")

ROOT = Path(__file__).resolve().parents[2]
BOUNDS = {"blocks": 1, "width": 8, "batch_size": [32, 64], "norm": "bn", "lr": [0.01, 0.05]}
CFG = {"blocks": 1, "width": 8, "batch_size": 64, "lr": 0.05}
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def make_study(runs: Path, name: str, n: int = 4, bounds: dict | None = None, values=None) -> optuna.Study:
    """A study as the search leaves it (settings, configs, seeds, every metric as user attributes,
    constraint values), with made-up metric values instead of scoring, one transaction per trial."""
    space = get_space("resnet_cifar", **(bounds or BOUNDS))
    objs = parse_objectives(THESIS_OBJECTIVES)  # the pre-lab defaults: a study with custom objectives
    cons = [parse_constraint(c) for c in THESIS_CONSTRAINTS]
    settings = {"space": "resnet_cifar", "bounds": space.bounds, "dataset": "synthetic",
                "objectives": [str(o) for o in objs], "constraints": [str(c) for c in cons], "seed": 0}
    study = open_study(name, default_storage(runs, name), objs, cons, "random", 0, settings)
    rng = random.Random(1)
    lr_dist = FloatDistribution(0.01, 0.05, log=True)
    for i in range(n):
        lr = rng.uniform(0.01, 0.05)
        config = space.validate({"lr": lr} if "batch_size" not in space.bounds or isinstance(
            space.bounds["batch_size"], int) else {"lr": lr, "batch_size": rng.choice([32, 64])})
        result = {m: rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS}
        result.update({f"{m}@early": rng.uniform(0.1, 2.0) for m in objectives.DEFAULT_METRICS})
        result.update(loss_drop=rng.uniform(-0.1, 0.3), params=1000.0, rank_input=rng.uniform(0.2, 0.4))
        if values is not None:
            result.update(zip(("confusion", "diversity", "kappa_w"), values[i]))
        violations = {f"constraints:{c}": c.violation(result) for c in cons}
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": lr_dist}, values=[result[o.key] for o in objs],
            user_attrs={**result, "config": config, "seed": i,
                        "feasible": all(v <= 0 for v in violations.values())},
            system_attrs=violations))
    return study


# ------------------------------------------------------------------------------------ summary
def test_summarize_convergence_rule_and_epochs_to_90():
    h = {"epochs": 4, "train_loss": [2.2, 1.5, 1.0, 0.9], "test_loss": [2.0, 1.4, 1.1, 1.0],
         "test_acc": [0.3, 0.6, 0.7, 0.65], "epoch_time": [1.0] * 4, "num_classes": 10, "diverged": False,
         "first_batch_loss": 2.4, "wall_time": 4.0}
    v = summarize(h, "pareto")
    assert v["val_best_acc"] == 0.7 and v["val_final_acc"] == 0.65 and v["val_epochs_to_90"] == 3
    assert v["val_converged_threshold"] == pytest.approx(0.5 * math.log(10))
    assert v["val_converged"]  # 0.9 < 1.151
    assert not summarize({**h, "train_loss": [2.2, 1.5, 1.3, 1.2]}, "pareto")["val_converged"]
    assert v["val_loss_curve"] == h["train_loss"] and v["val_acc_curve"] == h["test_acc"]


# ------------------------------------------------------------------------------------ selection
def test_selection_front_top_and_random(tmp_path):
    vals = [(1, 5, 1), (2, 4, 1), (3, 3, 1), (4, 6, 1), (5, 7, 1), (0.5, 9, 1)]  # 3rd objective tied
    study = make_study(tmp_path, "sel", n=6, values=vals)
    trials = study.trials
    ranks = nondominated_ranks(trials, study.directions)
    assert ranks == [1, 1, 1, 2, 3, 1]
    # no trial is feasible (rank_input > 0.15): the unconstrained front
    assert not study.best_trials
    picked = select_trials(study)
    assert [(t.number, why) for t, why in picked] == [(0, "pareto"), (1, "pareto"), (2, "pareto"), (5, "pareto")]
    top = select_trials(study, top=2)
    assert [t.number for t, _ in top] == [0, 5]  # rank 1, then the first objective (min); trial order
    a = select_trials(study, top=1, n_random=3, seed=7)
    b = select_trials(study, top=1, n_random=3, seed=7)
    assert [(t.number, w) for t, w in a] == [(t.number, w) for t, w in b]
    assert [w for _, w in a] == ["top", "random", "random", "random"]
    assert len({t.number for t, _ in a}) == 4
    assert len(select_trials(study, top=0, n_random=100)) == 6


# ------------------------------------------------------------------------------------ the command
def _validate_args(runs: Path, name: str, *extra: str) -> list[str]:
    return ["validate", "--study", name, "--runs-dir", str(runs), "--epochs", "1", "--random", "4",
            "--workers", "1", "--no-progress", *extra]


@pytest.fixture
def one_thread():
    """In-process training with one intra-op thread (the CPU cores are shared with other tests)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.integration
def test_validate_kill_and_rerun_finishes_without_retraining(tmp_path, capsys, one_thread):
    make_study(tmp_path, "val4", n=4, bounds={**BOUNDS, "batch_size": 32})
    log = tmp_path / "val4" / "validate.log"
    proc = subprocess.Popen([sys.executable, "-m", "nas", *_validate_args(tmp_path, "val4")], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            if log.exists() and log.read_text().count("\n") >= 1:
                break
            if proc.poll() is not None:
                pytest.fail(f"validate ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.02)
        else:
            pytest.fail("no trial was validated in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    study = optuna.load_study(study_name="val4", storage=default_storage(tmp_path, "val4"))
    before = validation_results(study)
    assert 1 <= len(before) < 4, "all trials finished before the kill"

    assert main(_validate_args(tmp_path, "val4")) == 0  # the rerun, in process
    assert f"{len(before)} already validated" in capsys.readouterr().out
    study = optuna.load_study(study_name="val4", storage=default_storage(tmp_path, "val4"))
    after = validation_results(study)
    assert sorted(after) == [0, 1, 2, 3]
    for number, values in before.items():
        assert after[number] == values  # not retrained
    trained = [line.split()[3] for line in log.read_text().splitlines()]
    assert sorted(trained) == ["0", "1", "2", "3"]  # each trial trained exactly once
    for v in after.values():
        assert v["val_epochs"] == 1 and v["val_selected_by"] in ("pareto", "random")
        assert len(v["val_acc_curve"]) == 1 and len(v["val_loss_curve"]) == 1
        assert 0.0 <= v["val_final_acc"] <= 1.0 and v["val_best_acc"] == v["val_final_acc"]
        assert isinstance(v["val_final_train_loss"], float) and isinstance(v["val_converged"], bool)
        assert v["val_epochs_to_90"] == 1
    assert (tmp_path / "val4" / "validation.csv").exists()
    assert sorted(p.name for p in (tmp_path / "val4" / "checkpoints").iterdir()) == [
        f"trial_{n}.pt" for n in range(4)]

    # a third run has nothing to do
    assert main(_validate_args(tmp_path, "val4")) == 0
    assert len(log.read_text().splitlines()) == 4


def test_run_validation_in_process_api(tmp_path):
    study = make_study(tmp_path, "api", n=3)
    seen = []
    stats = run_validation(study, tmp_path / "api", ValidateOptions(epochs=1, top=1, n_random=1, workers=1,
                                                                    threads=1),
                           on_update=lambda s: seen.append(s["trial"]))
    assert stats["selected"] == 2 and stats["trained"] == 2 and stats["failed"] == 0
    results = validation_results(study)
    assert sorted(results) == sorted(seen)
    assert sorted(v["val_selected_by"] for v in results.values()) == ["random", "top"]
    again = run_validation(study, tmp_path / "api", ValidateOptions(epochs=1, top=1, n_random=1, workers=1))
    assert again["skipped"] == 2 and again["trained"] == 0


@pytest.mark.slow
@pytest.mark.integration
def test_validate_with_two_ray_workers(tmp_path):
    make_study(tmp_path, "ray", n=3)
    r = subprocess.run([sys.executable, "-m", "nas", "validate", "--study", "ray", "--runs-dir", str(tmp_path),
                        "--epochs", "1", "--top", "3", "--workers", "2", "--no-progress"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name="ray", storage=default_storage(tmp_path, "ray"))
    results = validation_results(study)
    assert sorted(results) == [0, 1, 2] and all("val_error" not in v for v in results.values())


@pytest.mark.parametrize("command", ["validate", "report"])
def test_unknown_study_exits_2_with_one_line(tmp_path, capsys, command):
    code = main([command, "--study", "nope", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "nope" in err[0]


def test_unknown_study_in_storage_and_bad_epochs_exit_2(tmp_path, capsys):
    make_study(tmp_path, "real", n=1)
    storage = default_storage(tmp_path, "real")
    assert main(["validate", "--study", "other", "--storage", storage, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no study 'other'" in err[0] and "real" in err[0]
    assert main(["validate", "--study", "real", "--runs-dir", str(tmp_path), "--epochs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--epochs" in err[0]


@pytest.mark.integration
def test_validate_help_lists_options():
    r = subprocess.run([sys.executable, "-m", "nas", "validate", "--help"], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0
    for opt in ("--study", "--runs-dir", "--storage", "--top", "--random", "--epochs", "--workers", "--seed"):
        assert opt in r.stdout


def test_top_follows_the_combined_score_when_the_trials_have_its_inputs(tmp_path):
    """Trials whose stored values rank them q = 0..5 on every feature of the shipped early set (objective
    values that disagree): validate --top takes the best by the combined score, not by the front."""
    from objectives.combine import CONFIG_COLUMNS, DERIVED, DERIVED_INPUTS, EARLY_FEATURES

    study = optuna.create_study(directions=["minimize"], storage=f"sqlite:///{tmp_path / 'c.db'}")
    quality = [3, 0, 5, 1, 4, 2]
    for i, q in enumerate(quality):
        attrs, config = {"loss_curve": [2.3] * 3}, {"lr": 0.1, "batch_size": 64}
        for f in EARLY_FEATURES:
            sign = 1.0 if f.direction == "maximize" else -1.0
            if f.key in DERIVED:
                for inp in DERIVED_INPUTS[f.key]:
                    if inp not in CONFIG_COLUMNS:
                        attrs[inp] = math.exp(sign * q)
            elif f.key in CONFIG_COLUMNS:
                config[f.key] = 64 + sign * 8 * q
            else:
                attrs[f.key] = sign * q
        study.add_trial(optuna.trial.create_trial(
            values=[float(q)], user_attrs={**attrs, "config": config, "feasible": True}))  # front: q = 0
    assert [t.number for t, _ in select_trials(study, top=2)] == [2, 4]  # q = 5 and 4
