"""nas.lab.population: the seeded population, one config's scoring with failing metrics set apart, and a
failed config kept as a row."""

from __future__ import annotations

import json

import optuna
import pandas as pd
import pytest

from nas.evaluate import TrialFailed, TrialSpec
from nas.lab import build, correlations, population
from search_spaces import ConfigError, get_space

BOUNDS = {"blocks": [1, 1], "width": [8, 8], "batch_size": [32, 64]}


def test_sample_configs_prefix_and_bounds():
    space = get_space("resnet_cifar", **BOUNDS)
    five = population.sample_configs(space, 5, seed=3)
    assert population.sample_configs(space, 2, seed=3) == five[:2]
    assert population.sample_configs(space, 5, seed=4) != five
    for c in five:
        assert c["blocks"] == 1 and c["width"] == 8 and 32 <= c["batch_size"] <= 64
    assert population.default_bounds("resnet_cifar") == {"blocks": [1, 2], "width": [8, 16], "batch_size": [32, 128]}


def test_sample_configs_are_those_of_a_seeded_random_sampler_study():
    """The reference loop (as reproduce's population claims drew their configs before nas.lab)."""
    space = get_space("resnet_cifar", **get_space("resnet_cifar").cpu_bounds)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    reference = []
    while len(reference) < 6:
        try:
            reference.append(space.sample(study.ask()))
        except ConfigError:
            continue
    assert population.sample_configs(space, 6, seed=0) == reference


def test_a_space_that_rejects_everything_is_an_error():
    class Never:
        def sample(self, trial):
            raise ConfigError("width", "8", 9)

    with pytest.raises(population.PopulationError, match="rejected 4 sampled configs"):
        population.sample_configs(Never(), 1, seed=0, max_rejected=3)


def _fake_evaluate(spec: TrialSpec) -> dict:
    """evaluate's contract: an undefined metric is NaN with a reason in metric_errors; a value may be -inf."""
    out = {"params": 10.0, "flops": 20.0, "loss_init": 2.3, "loss_early": 2.0, "loss_drop": 0.13,
           "train_loss_first": 2.3, "train_loss_last": float(spec.early_steps), "train_kappa_w": 1.0,
           "loss_curve": [2.3] * spec.early_steps, "device": "cpu", "seed": spec.seed, "time_total": 0.1,
           "metric_errors": {}}
    for m in spec.metrics:
        out[m] = out.get(m, 1.0)
        out[f"{m}@early"] = out.get(f"{m}@early", 2.0)
    if "naswot" in spec.metrics:
        out["naswot"] = float("-inf")
    if "kappa_x" in spec.metrics:
        out["kappa_x@early"] = float("nan")
        out["metric_errors"]["kappa_x@early"] = "an example has a zero weight gradient"
    return out


def _spec(metrics):
    return TrialSpec(space="resnet_cifar", config={}, dataset="synthetic", metrics=list(metrics), early_steps=3)


def test_score_config_sets_failing_metrics_apart(monkeypatch):
    calls = []

    def fake(spec):
        calls.append(list(spec.metrics))
        return _fake_evaluate(spec)

    monkeypatch.setattr(population, "evaluate", fake)
    values, errors, failure = population.score_config(_spec(["confusion", "kappa_x", "naswot", "synflow", "snip"]))
    assert failure is None
    assert set(errors) == {"kappa_x", "naswot"}
    assert errors["naswot"] == "metric naswot at init is not finite (-inf)"
    assert errors["kappa_x"] == "scoring at early steps failed: an example has a zero weight gradient"
    for m in ("confusion", "synflow", "snip"):
        assert values[m] == 1.0 and values[f"{m}@early"] == 2.0
    for m in ("kappa_x", "naswot"):  # a failing metric loses its init and its early value
        assert m not in values and f"{m}@early" not in values
    assert values["train_loss_last"] == 3.0 and "loss_curve" not in values and "seed" not in values
    assert len(calls) == 1  # one evaluation: the failures come with it


def test_score_config_config_failures(monkeypatch):
    def diverges(spec):
        raise TrialFailed("non-finite training loss at early step 2 (lr=1.0, batch_size=32)")

    monkeypatch.setattr(population, "evaluate", diverges)
    assert population.score_config(_spec(["confusion", "synflow"])) == (
        None, {}, "non-finite training loss at early step 2 (lr=1.0, batch_size=32)")

    def broken(spec):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(population, "evaluate", broken)
    values, errors, failure = population.score_config(_spec(["confusion", "synflow"]))
    assert values is None and errors == {} and failure.startswith("RuntimeError: shape mismatch")


def test_failed_config_is_a_row(monkeypatch, tmp_path):
    def diverges(spec):
        raise TrialFailed("non-finite training loss at early step 2 (lr=1.0, batch_size=32)")

    monkeypatch.setattr(population, "evaluate", diverges)
    space = get_space("resnet_cifar", **BOUNDS)
    config = population.sample_configs(space, 1, seed=0)[0]
    job = population.Job(kind="main", index=0, space="resnet_cifar", config=config, dataset="synthetic",
                         bounds=BOUNDS, data_dir=str(tmp_path), metrics=["confusion", "synflow"], early_steps=3,
                         long_steps=5, epochs=1, probe_size=16, seed=0, data_seed=0, threads=1)
    row = population.run_job(job)
    assert row["main_done"] and row["eval_status"] == "failed"
    assert row["eval_error"].startswith("non-finite training loss")
    assert row["long_error"].startswith("non-finite training loss")
    assert 0.0 <= row["val_best_acc"] <= 1.0  # trained anyway: the ground truth exists
    row.update(config=json.dumps(config), settings="{}", seed=0)
    path = tmp_path / "t.csv"
    build.save_table(path, {0: row})
    df = build.load_table(path)
    assert len(df) == 1 and df["eval_status"][0] == "failed"
    text = correlations.counts_text(df, 1, 0)
    assert "1 failed" in text and "non-finite training loss" in text
    assert "synflow" not in df.columns or pd.isna(df["synflow"][0])
