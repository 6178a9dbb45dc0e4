"""End-to-end search: Ray and in-process trials, SQLite study, trials.csv, resume, failures, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pandas as pd
import pytest

import objectives
from nas.cli import main
from nas.study import combined_metrics, default_objectives, parse_objectives

TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})
FAST = ["--early-steps", "3", "--probe-size", "32", "--group-size", "4", "--no-progress"]
ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=timeout,
        cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def load(runs: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{runs / name / 'study.db'}")


def states(study: optuna.Study) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def check_complete_trials(study: optuna.Study, runs: Path, name: str, n: int) -> None:
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == n
    for t in complete:
        errors = t.user_attrs["metric_errors"]
        for m in combined_metrics():  # the default metrics: the combined score's inputs
            for key in (m, f"{m}@early"):  # a value, or undefined for this net (None: NaN/inf, or failed)
                v = t.user_attrs[key]
                assert isinstance(v, float) or v is None, (key, v, errors)
                assert key not in errors or v is None, (key, v, errors)  # a failed metric has no value
        for key in ("loss_drop", "params", "time_total", "config", "device", "loss_curve"):
            assert key in t.user_attrs, key
        assert len(t.values) == len(parse_objectives(default_objectives(3)))
        assert math.isfinite(t.user_attrs["train_loss_smooth_min"])
    df = pd.read_csv(runs / name / "trials.csv")
    assert len(df) == len(study.trials)
    assert sorted(df["number"]) == sorted(t.number for t in study.trials)
    assert (df["state"] == "COMPLETE").sum() == n
    first = combined_metrics()[0]
    assert f"user_attrs_{first}" in df.columns and f"user_attrs_{first}@early" in df.columns


@pytest.mark.integration
def test_search_with_two_ray_workers_on_synthetic(tmp_path):
    r = run_cli("search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic",
                "--trials", "6", "--workers", "2", "--study", "ray6", "--runs-dir", str(tmp_path), *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Pareto front" in r.stdout and "trials.csv" in r.stdout
    check_complete_trials(load(tmp_path, "ray6"), tmp_path, "ray6", 6)


@pytest.mark.integration
def test_search_in_process_on_mnist5k_and_rerun_continues_to_target(tmp_path):
    args = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "mnist5k",
            "--workers", "1", "--study", "m5k", "--runs-dir", str(tmp_path), *FAST]
    r = run_cli(*args, "--trials", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(tmp_path, "m5k")
    check_complete_trials(study, tmp_path, "m5k", 2)
    assert study.user_attrs["dataset"] == "mnist5k"
    first = {t.number: t.values for t in study.trials}
    r = run_cli(*args, "--trials", "3")  # continues up to 3, not 3 more
    assert r.returncode == 0, r.stderr[-3000:]
    study = load(tmp_path, "m5k")
    check_complete_trials(study, tmp_path, "m5k", 3)
    assert all(study.trials[n].values == v for n, v in first.items())
    r = run_cli(*[a if a != "mnist5k" else "synthetic" for a in args], "--trials", "3")
    assert r.returncode == 2 and "dataset" in r.stderr  # datasets are fixed per study


@pytest.mark.integration
def test_kill_minus_nine_then_resume(tmp_path):
    args = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", "--workers", "1",
            "--study", "kill", "--runs-dir", str(tmp_path), "--trials", "4", *FAST, "--early-steps", "60"]
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    db = tmp_path / "kill" / "study.db"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, "the search finished before it could be killed"
            if db.exists():
                try:
                    s = load(tmp_path, "kill")
                except Exception:  # noqa: BLE001 - study not created yet
                    continue
                st = states(s)
                if st.get("COMPLETE", 0) >= 1 and st.get("RUNNING", 0) >= 1:
                    break
        else:
            pytest.fail("search never had a complete and a running trial")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = load(tmp_path, "kill")
    done_before = {t.number: t.values for t in before.trials if t.state.name == "COMPLETE"}
    assert states(before).get("RUNNING", 0) == 1
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    after = load(tmp_path, "kill")
    numbers = [t.number for t in after.trials]
    assert len(numbers) == len(set(numbers))
    assert states(after).get("COMPLETE") == 4 and states(after).get("RUNNING", 0) == 0
    assert all(after.trials[n].values == v for n, v in done_before.items())
    stale = [t for t in after.trials if t.user_attrs.get("fail_reason", "").startswith("interrupted")]
    assert len(stale) == 1
    retried = [t for t in after.trials if t.user_attrs.get("retry_of_trial") == stale[0].number]
    # the retry fixes every param the interrupted trial had sampled (all of them unless the kill came
    # while it was still sampling its config); killed before it sampled any, there is nothing to repeat
    if stale[0].params:
        assert len(retried) == 1 and stale[0].params.items() <= retried[0].params.items()
    else:
        assert not retried


def test_nan_trial_is_failed_with_reason_and_study_completes(tmp_path):
    from search_spaces import register_space
    from search_spaces._base import real
    from search_spaces.resnet_cifar import ResNetCifarSpace

    from nas.search.config import SearchConfig
    from nas.search.proxy import run_trials
    from nas.study import DEFAULT_CONSTRAINTS, open_study, parse_constraint, parse_objectives

    if "lr_bomb" not in __import__("search_spaces").list_spaces():
        @register_space("lr_bomb")
        class LrBomb(ResNetCifarSpace):
            """resnet_cifar whose learning rate can be absurd (1e6): its early steps produce NaN."""

            @classmethod
            def _default_dimensions(cls):
                dims = [d for d in super()._default_dimensions() if d.name != "lr"]
                return dims + [real("lr", 1e-2, 1e6, default=1e6, log=True)]

    from search_spaces import get_space

    space = get_space("lr_bomb", blocks=1, width=8, batch_size=(32, 64), norm="none", skip=False)
    objs = parse_objectives("confusion:min,diversity:min,kappa_w:min")
    cons = [parse_constraint(c) for c in DEFAULT_CONSTRAINTS]
    study = open_study("bomb", f"sqlite:///{tmp_path / 'bomb.db'}", objs, cons, "random", 0, {})
    study.enqueue_trial({"lr": 1e6})
    study.enqueue_trial({"lr": 1e-2})
    settings = SearchConfig(space="lr_bomb", bounds=space.bounds, dataset="synthetic", data_dir="data",
                            metrics=list(objectives.DEFAULT_METRICS), early_steps=5, probe_size=32,
                            group_size=4, trials=1, workers=1)
    stats = run_trials(study, space, settings, objs, cons)
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert stats["total_complete"] == 1 and len(failed) == 1
    assert failed[0].params["lr"] == 1e6
    assert "non-finite" in failed[0].user_attrs["fail_reason"] or "not finite" in failed[0].user_attrs["fail_reason"]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--space", "nope"], "unknown space 'nope'; valid: "),
        (["--dataset", "imagenet"], "imagenet"),
        (["--objectives", "kappa:min"], "unknown objective key 'kappa'"),
        (["--objectives", "kappa_w:up"], "direction must be min or max"),
        (["--constraint", "rank_input<0.15"], "malformed constraint"),
        (["--metrics", "foo"], "unknown metric 'foo'"),
        (["--sampler", "grid"], "unknown sampler 'grid'; valid: nsga2, tpe, random"),
        (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open storage"),
        (["--bounds", '{"norm": ["batch"]}'], "norm"),
        (["--bounds", "{width: 8"], "not valid JSON"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, extra, needle):
    code = main(["search", "--dataset", "synthetic", "--runs-dir", str(tmp_path), "--study", "bad",
                 "--trials", "1", "--workers", "1", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len([line for line in err if line.startswith("error:")]) == 1
    assert needle in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_non_writable_runs_dir_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["search", "--dataset", "synthetic", "--runs-dir", str(blocker / "runs"), "--study", "x",
                 "--trials", "1"])
    assert code == 2
    assert "not writable" in capsys.readouterr().err


@pytest.mark.integration
def test_bad_input_subprocess_has_no_traceback():
    r = run_cli("search", "--space", "nope")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.integration
def test_dashboard_serves_the_study(tmp_path):
    (tmp_path / "dash").mkdir()
    study = optuna.create_study(study_name="dash", storage=f"sqlite:///{tmp_path / 'dash' / 'study.db'}")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--study", "dash", "--runs-dir",
                             str(tmp_path), "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.time() + 60
        while time.time() < deadline and body is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert body is not None, "dashboard did not answer"
        names = [s["study_name"] for s in body["study_summaries"]]
        assert names == ["dash"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.mark.integration
def test_help_explains_every_option():
    r = run_cli("search", "--help")
    assert r.returncode == 0
    for opt in ("--space", "--dataset", "--data-dir", "--study", "--runs-dir", "--storage", "--trials",
                "--objectives", "--constraint", "--sampler", "--workers", "--trials-per-gpu", "--early-steps",
                "--trial-timeout", "--seed"):
        assert opt in r.stdout
    assert r.stdout.count("default") >= 15


@pytest.mark.parametrize("error", ["operational", "integrity"])
def test_storage_opening_survives_a_concurrent_schema_race(tmp_path, monkeypatch, error):
    # two processes opening a new SQLite file race to create the schema; the loser's error is transient:
    # "table ... already exists" / "database is locked", or (seen in CI) the schema version row written twice
    import sqlalchemy.exc

    import nas.study as study_mod

    real = optuna.storages.RDBStorage
    calls = []

    class Flaky(real):
        def __init__(self, url, *a, **k):
            calls.append(url)
            if url.startswith("sqlite") and len(calls) == 1:
                if error == "operational":
                    raise sqlalchemy.exc.OperationalError("CREATE TABLE studies", {},
                                                          Exception("table studies already exists"))
                raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version", {},
                                                    Exception("UNIQUE constraint failed: alembic_version.version_num"))
            super().__init__(url, *a, **k)

    monkeypatch.setattr(optuna.storages, "RDBStorage", Flaky)
    monkeypatch.setattr(study_mod, "STORAGE_BACKOFF_S", 0.01)
    objs = study_mod.parse_objectives("kappa_w:min")
    s = study_mod.open_study("race", f"sqlite:///{tmp_path / 'race.db'}", objs, [], "random", 0, {})
    assert len(calls) == 2 and s.study_name == "race"
    # a URL that can never work is not retried: one line, at once
    calls.clear()
    with pytest.raises(study_mod.StudyError, match="cannot open storage"):
        study_mod.open_study("x", "nosuchdialect://db", objs, [], "random", 0, {})
    assert len(calls) == 1


def test_load_study_is_the_one_opener_and_retries_too(tmp_path, monkeypatch):
    # validate, report and diagnose load studies through nas.study.load_study: same retry, one-line errors
    import sqlalchemy.exc

    import nas.study as study_mod
    import nas.validate as validate_mod

    url = f"sqlite:///{tmp_path / 'one.db'}"
    objs = study_mod.parse_objectives("kappa_w:min")
    study_mod.open_study("only", url, objs, [], "random", 0, {"space": "resnet_cifar"})
    real = optuna.storages.RDBStorage
    calls = []

    class Flaky(real):
        def __init__(self, url, *a, **k):
            calls.append(url)
            if len(calls) == 1:
                raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked"))
            super().__init__(url, *a, **k)

    monkeypatch.setattr(optuna.storages, "RDBStorage", Flaky)
    monkeypatch.setattr(study_mod, "STORAGE_BACKOFF_S", 0.01)
    s = study_mod.load_study(url)  # no name: the storage's only study
    assert len(calls) == 2 and s.study_name == "only" and s.user_attrs["space"] == "resnet_cifar"
    with pytest.raises(study_mod.StudyError, match="no study 'other' in .*stored: only"):
        study_mod.load_study(url, "other")
    with pytest.raises(validate_mod.ValidationError, match="no study 'other'"):
        validate_mod.load_study(url, "other")
    study_mod.open_study("second", url, objs, [], "random", 0, {})
    with pytest.raises(study_mod.StudyError, match="give --study NAME; the storage holds only, second"):
        study_mod.load_study(url)
    with pytest.raises(study_mod.StudyError, match="cannot open storage"):
        study_mod.load_study("nosuchdialect://db", "x")


def test_sigterm_interrupts_raises_keyboard_interrupt_and_restores_the_handler():
    # the search and validation drivers stop on SIGTERM as on Ctrl-C (their finally blocks run)
    from nas.search.executor import sigterm_interrupts, terminate

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGTERM)}"):
        with sigterm_interrupts():
            assert signal.getsignal(signal.SIGTERM) is terminate
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
    assert signal.getsignal(signal.SIGTERM) is before
