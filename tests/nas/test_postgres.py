"""PostgreSQL as a first-class storage: search, resume after kill -9, validate, report, diagnose and the
dashboard's /api/studies, all against a server the tests start (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from nas.study import open_storage, sqlalchemy_url

ROOT = Path(__file__).resolve().parents[2]
TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=ENV)


def test_plain_postgresql_urls_use_the_declared_driver():
    assert sqlalchemy_url("postgresql://u@h:5432/db").startswith("postgresql")
    assert sqlalchemy_url("postgres://u@h/db").split("://")[1] == "u@h/db"
    assert sqlalchemy_url("sqlite:///x.db") == "sqlite:///x.db"


@pytest.mark.integration
def test_every_command_against_postgresql(tmp_path, postgres_url):
    runs = str(tmp_path / "runs")
    search = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", "--workers", "1",
              "--study", "pg", "--runs-dir", runs, "--storage", postgres_url, "--trials", "3",
              "--early-steps", "150", "--probe-size", "32", "--group-size", "4", "--metrics", "grad_weight_ratio",
              "--objectives", "grad_weight_ratio:max", "--no-progress"]
    # kill -9 while a trial runs, then resume: the interrupted trial is retried with its config and seed
    proc = subprocess.Popen([sys.executable, "-m", "nas", *search], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = open_storage(postgres_url)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            try:
                trials = optuna.load_study(study_name="pg", storage=storage).get_trials(deepcopy=False)
            except KeyError:
                continue
            if any(t.state.name == "RUNNING" and "seed" in t.user_attrs for t in trials):
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    r = _cli(*search)
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name="pg", storage=open_storage(postgres_url))
    by_state = [t.state.name for t in study.trials]
    assert by_state.count("COMPLETE") == 3 and "RUNNING" not in by_state
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and "interrupted" in failed[0].user_attrs["fail_reason"]
    retry = [t for t in study.trials if t.user_attrs.get("retry_of_trial") == failed[0].number]
    assert retry and retry[0].user_attrs["seed"] == failed[0].user_attrs["seed"]

    common = ["--study", "pg", "--storage", postgres_url, "--runs-dir", runs]
    r = _cli("validate", *common, "--top", "1", "--epochs", "1", "--workers", "1", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "best trained trial" in r.stdout
    r = _cli("report", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "runs" / "pg" / "report.html").exists()
    r = _cli("diagnose", *common, "--trial", str(retry[0].number), "--steps", "2", "--history", "3", "--seeds", "2",
             "--dataset", "synthetic", "--out", str(tmp_path / "diag"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "diag" / "summary.json").exists()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dash = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--storage", postgres_url, "--port", str(port)],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        body = None
        deadline = time.time() + 60
        while time.time() < deadline and body is None:
            time.sleep(0.5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as resp:
                    body = json.loads(resp.read())
            except OSError:
                assert dash.poll() is None, dash.stdout.read().decode()[-2000:]
        assert body is not None, "dashboard did not answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["pg"]
    finally:
        dash.terminate()
        dash.wait(timeout=20)
