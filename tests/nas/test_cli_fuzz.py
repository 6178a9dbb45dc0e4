"""Malformed invocations of every subcommand: exit code 2, one line on stderr, no traceback, no files.

Table-driven: each case is one bad option (or value) on top of otherwise valid, cheap arguments, placed last
(argparse keeps the last occurrence), so an option the CLI wrongly accepts would run a tiny job instead of
failing, and the test says which. Every case fails at parse time or before any file is written.
"""

from __future__ import annotations

import json
import os

import pytest

from nas.cli import main

SEARCH = ["search", "--dataset", "synthetic", "--smoke", "--trials", "1", "--workers", "1", "--early-steps", "0",
          "--study", "fz"]
SCORE = ["score", "--dataset", "synthetic", "--space", "resnet_cifar", "--metrics", "params"]
DASH = ["dashboard", "--study", "fz"]
VALIDATE = ["validate", "--study", "fz"]
REPORT = ["report", "--study", "fz"]
DIAGNOSE = ["diagnose", "--dataset", "synthetic", "--steps", "1", "--history", "3", "--seeds", "2"]

BAD_INT = ["x", "1.5", "", " ", "1e3", "0x10", "--", "nan"]

CASES: list[tuple[list[str], list[str]]] = []


def add(base: list[str], *bad: str) -> None:
    CASES.append((base, list(bad)))


# --- search: every numeric option with non-numbers and out-of-range values
for opt, bad_values in {
    "--trials": ["0", "-1", *BAD_INT],
    "--workers": ["0", "-3", "100000", *BAD_INT[:3]],
    "--trials-per-gpu": ["0", "-1", "65"],
    "--early-steps": ["-1", "x"],
    "--probe-size": ["0", "1", "-5", "5000", "x"],
    "--group-size": ["0", "-2", "65", "x"],
    "--trial-timeout": ["-1", "0", "x", "nan", "inf"],
    "--max-failures": ["0", "-1", "x"],
    "--seed": ["-1", "x", str(2**40)],
    "--epochs": ["0", "-1", "x"],
    "--eta": ["1", "0", "x"],
    "--budget": ["soon", "0", "-5m", "5s", "1h-3m", "m"],
    "--threads": ["0", "-1", "x"],
    "--ray-address": ["", "nohost", "host:", "host:99999", ":6379", "bad host:6379"],
    "--stale-grace": ["0", "-5", "x"],
}.items():
    for v in bad_values:
        add(SEARCH, opt, v)
# --- search: names, URLs, structured values
for v in ["", "../../x", "a/b", "..", ".hidden", "x" * 200, "a b", "-x"]:
    add(SEARCH, f"--study={v}")
for v in ["sqlite://", "sqlite:///:memory:", "some/path.txt", "study.db", "://x", "1sqlite://x",
          "postgresql://nobody@127.0.0.1:1/none", "nosuchdialect://x/y"]:
    add(SEARCH, f"--storage={v}")
for opt, v in [("--space", "nope"), ("--dataset", "imagenet"), ("--objectives", "kappa:min"),
               ("--objectives", "kappa_w:up"), ("--objectives", ",,,"), ("--constraint", "rank_input<0.15"),
               ("--constraint", "x<=1"), ("--metrics", "foo"), ("--sampler", "grid"), ("--bounds", "{width: 8"),
               ("--bounds", "[1, 2]"), ("--bounds", '{"norm": ["batch"]}'), ("--bounds", '{"nope": 1}'),
               ("--objectives", "kappa_w:min,kappa_w:max")]:
    add(SEARCH, opt, v)
add(SEARCH, "--budget", "2m", "--objectives", "train_loss_last:min")
add(SEARCH, "--unknown-flag")
# --- score
for opt, v in [("--index", "99999"), ("--index", "-1"), ("--index", "x"), ("--seed", "-1"), ("--probe-size", "0"),
               ("--probe-size", "1"), ("--probe-size", "5000"), ("--early-steps", "-1"), ("--group-size", "0"),
               ("--metrics", "foo"), ("--space", "nope"), ("--config", "{bad"), ("--config", '{"blocks": 99}'),
               ("--config", "[]")]:
    add(SCORE, opt, v)
# --- dashboard
for opt, v in [("--port", "99999"), ("--port", "-1"), ("--port", "0"), ("--port", "x"), ("--host", "bad host"),
               ("--host", "999.1.1.1"), ("--host", ""), ("--study", "../x"), ("--storage", "sqlite://"),
               ("--storage", "nowhere")]:
    add(DASH, opt, v)
add(["dashboard"])  # neither --study nor --storage
add(DASH)  # no such study database
# --- validate / report
for opt, v in [("--top", "0"), ("--top", "-1"), ("--random", "-1"), ("--epochs", "0"), ("--workers", "0"),
               ("--trials-per-gpu", "0"), ("--seed", "-1"), ("--amp", "fp8"), ("--study", "a/b"),
               ("--ray-address", "nohost")]:
    add(VALIDATE, opt, v)
add(VALIDATE)  # no such study database
for opt, v in [("--epochs", "0"), ("--k", "0"), ("--k", "x"), ("--study", "..")]:
    add(REPORT, opt, v)
add(REPORT)
# --- diagnose
for opt, v in [("--steps", "-1"), ("--history", "2"), ("--seeds", "1"), ("--seed", "-1"), ("--trial", "-1"),
               ("--study", "../x"), ("--storage", "sqlite://"), ("--config", "{bad"), ("--space", "nope")]:
    add(DIAGNOSE, opt, v)
add(DIAGNOSE, "--trial", "3")  # --trial without --study
# --- top level
add(["bogus"])
add(["objectives", "--family", "nope"])
add(["objectives", "kapa_w"])
add(["spaces", "nope"])
for bad in (["--seeds", "0"], ["--seeds", "x"], ["--population", "1"], ["--dataset", "imagenet"], ["nope"],
            ["--out", "/proc/nope/x"]):
    add(["reproduce", "--quick"], *bad)


def _ids():
    return [" ".join(base[:1] + bad)[:60] for base, bad in CASES]


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100


@pytest.mark.parametrize("base, bad", CASES, ids=_ids())
def test_malformed_invocation_is_one_clear_line(base, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = [*base, "--runs-dir", str(tmp_path / "runs")] if base and base[0] in (
        "search", "dashboard", "validate", "report", "diagnose") and "--runs-dir" not in base else list(base)
    code = main([*argv, *bad])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, f"accepted: {bad} -> exit {code}"
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    left = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")]
    assert not left, f"left behind: {left}"


# ------------------------------------------------------------------------------------ broken databases, busy ports
@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 300, b"hello, this is text\n"])
@pytest.mark.parametrize("command", [["dashboard"], ["validate"], ["report"], ["diagnose", "--trial", "0"]])
def test_a_file_that_is_not_a_study_database_is_one_line(tmp_path, capsys, content, command):
    db = tmp_path / "runs" / "g" / "study.db"
    db.parent.mkdir(parents=True)
    db.write_bytes(content)
    code = main([*command, "--study", "g", "--runs-dir", str(tmp_path / "runs")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "not a readable study database" in err[0]
    assert db.read_bytes() == content  # untouched


def test_storage_path_that_does_not_exist_is_not_created(tmp_path, capsys):
    missing = tmp_path / "nothing" / "study.db"
    for command in (["dashboard"], ["validate"], ["report"]):
        assert main([*command, "--storage", f"sqlite:///{missing}"]) == 2
        assert "no study database at" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_dashboard_on_a_busy_port_is_one_line(tmp_path, capsys):
    import socket

    import optuna

    db = tmp_path / "runs" / "s" / "study.db"
    db.parent.mkdir(parents=True)
    optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        code = main(["dashboard", "--study", "s", "--runs-dir", str(tmp_path / "runs"), "--port", str(port)])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and f"cannot serve on 127.0.0.1:{port}" in err[0]


def test_score_without_early_steps_shows_no_early_values(capsys):
    base = ["score", "--dataset", "synthetic", "--config", '{"blocks": 1, "width": 8}', "--metrics", "params",
            "--probe-size", "16"]
    assert main([*base, "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert "loss_init" in values and not {"loss_early", "loss_drop", "train_loss_last"} & set(values)
    assert main([*base, "--json", "--early-steps", "2"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert {"loss_early", "loss_drop", "train_loss_last"} <= set(values)
