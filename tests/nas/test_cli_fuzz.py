"""Malformed invocations of every subcommand: exit code 2, one line on stderr, no traceback, no files.

Table-driven: each case is one bad option (or value) on top of otherwise valid, cheap arguments, placed last
(argparse keeps the last occurrence), so an option the CLI wrongly accepts would run a tiny job instead of
failing, and the test says which. Every case fails at parse time or before any file is written.

Each case runs in a fresh working folder holding the user files of :func:`write_inputs` (``inputs/``: image
folders, tables, space and data modules, most of them broken on purpose), which the user-input cases
(``--space FILE.py:attr``, ``--dataset folder:/table:/module:function``) name by relative path; what a case
leaves is what is new in that folder after it ran (Python's ``__pycache__`` of an imported user file aside).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

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


# --- user code and user data (issue 25): files from write_inputs(), named relative to the working folder
for v in ["no_such_mod_fz:space", "no_such_pkg_fz.sub:space", "inputs/nope.py:space", "inputs/fz_spaces.py:nope",
          "os:path", "inputs/fz_spaces.py:NUMBER", "inputs/fz_spaces.py:Net", "inputs/fz_spaces.py:returns_none",
          "inputs/fz_spaces.py:always_raises", "inputs/fz_spaces.py:needs_more", "inputs/fz_spaces.py:no_trial",
          "inputs/fz_spaces.py:wrong_head", "inputs/fz_spaces.py:wrong_input", "inputs/fz_broken.py:space",
          "inputs/fz_syntax.py:space", "inputs/fz_spaces.py", "inputs/t.csv:space"]:
    add(SEARCH, "--space", v)
for v in ["folder:inputs/missing", "folder:inputs/one_class", "folder:inputs/no_images", "folder:inputs/empty",
          "folder:inputs/loose", "folder:inputs/t.csv", "folder:inputs/corrupt", "folder:", "folder:inputs/two?size=0",
          "folder:inputs/two?colour=red",
          "no_such_mod_fz:load", "inputs/nope.py:load", "inputs/fz_data.py:nope", "inputs/fz_data.py:NUMBER",
          "inputs/fz_data.py:wrong", "inputs/fz_data.py:one_pair", "inputs/fz_data.py:three", "inputs/fz_data.py:boom",
          "inputs/fz_data.py:with_nan", "inputs/fz_data.py:with_inf", "inputs/fz_data.py:one_class",
          "inputs/fz_data.py:text_labels", "inputs/fz_data.py:needs_args", "inputs/fz_broken.py:load", "os:getcwd",
          "os:path", "table:inputs/t.csv"]:
    add(SEARCH, "--dataset", v)
for table_, target in [("missing.csv", "label"), ("t.csv", "nope"), ("inf.csv", "label"), ("inf_row.csv", "label"),
                       ("inf_target.csv", "y"), ("frac.csv", "y"), ("one_label.csv", "label"), ("ids.csv", "label"),
                       ("dates.parquet", "label"), ("garbage.csv", "label"), ("t.xlsx", "label"), ("t.csv", "")]:
    add(SEARCH, "--dataset", f"table:inputs/{table_}", "--target", target)
add(SEARCH, "--target", "label")  # --target without a table (the base's synthetic)
add(SEARCH, "--dataset", "folder:inputs/two", "--target", "label")
for opt, v in [("--space", "inputs/fz_spaces.py:returns_none"), ("--space", "inputs/fz_spaces.py:wrong_head"),
               ("--space", "inputs/nope.py:space"), ("--dataset", "folder:inputs/one_class"),
               ("--dataset", "inputs/fz_data.py:wrong"), ("--dataset", "table:inputs/t.csv")]:
    add(SCORE, opt, v)
for opt, v in [("--space", "inputs/fz_spaces.py:wrong_head"), ("--space", "os:path"),
               ("--dataset", "folder:inputs/no_images"), ("--dataset", "inputs/fz_data.py:with_nan")]:
    add(DIAGNOSE, opt, v)
for v in ["inputs/fz_spaces.py:returns_none", "os:path", "no_such_mod_fz:space", "inputs/fz_broken.py:space"]:
    add(["spaces"], v)


# --- streaming, a user loss, promotion and brackets (issues 25, 28), predict (issue 26)
for opt, v in [("--max-memory", "lots"), ("--max-memory", "-1G"), ("--max-memory", "0"), ("--loss", "hinge"),
               ("--loss", "no_such_mod_fz:f"), ("--loss", "inputs/fz_spaces.py:nope"), ("--promotion", "fast"),
               ("--brackets", "0"), ("--brackets", "5"), ("--brackets", "x")]:
    add(SEARCH, opt, v)
add(SEARCH, "--budget", "1m", "--trials", "1000", "--promotion", "sync", "--brackets", "2")
add(SEARCH, "--dataset", "table:inputs/t.csv", "--target", "label", "--max-memory", "1G")  # tables stay in memory
add(SEARCH, "--dataset", "table:inputs/t.csv?target=f1", "--target", "label")  # contradicts the reference
add(SEARCH, "--dataset", "folder:inputs/two?loss=mse", "--loss", "l1")  # contradicts the reference
add(SEARCH, "--loss", "mse")  # a regression loss on the built-in synthetic classes
PREDICT = ["predict"]
for bad in (["--model", "inputs/missing.pt", "inputs/two/red/0.png"], ["--model", "inputs/t.csv", "inputs/two/red/0.png"],
            ["--model", "inputs/fz_spaces.py", "inputs/two/red/0.png"], ["inputs/two/red/0.png"], ["--model"],
            ["--model", "inputs/missing.pt", "inputs/two/red/0.png", "--top", "0"]):
    add(PREDICT, *bad)

_SPACES_PY = """
    from torch import nn

    NUMBER = 3


    class Net(nn.Module):  # a model class, not a space
        def forward(self, x):
            return x


    def returns_none(trial):
        trial.suggest_int("width", 4, 8)


    def always_raises(trial):
        raise RuntimeError("boom")


    def needs_more(trial, depth):
        return nn.Linear(1, 1)


    def no_trial():
        return nn.Linear(1, 1)


    def wrong_head(trial):  # 7 outputs for 10 classes
        width = trial.suggest_int("width", 4, 8)
        return nn.Sequential(nn.Flatten(), nn.LazyLinear(width), nn.ReLU(), nn.LazyLinear(7))


    def wrong_input(trial):  # 5 input features for 3x16x16 images
        return nn.Sequential(nn.Flatten(), nn.Linear(5, 10))
"""
_DATA_PY = """
    import numpy as np

    NUMBER = 3


    def _xy(n, bad=None):
        x = np.random.default_rng(0).standard_normal((n, 4)).astype(np.float32)
        if bad is not None:
            x[0, 0] = bad
        return x, np.arange(n) % 2


    def wrong():
        return 42


    def one_pair():
        return _xy(20)


    def three():
        return _xy(20), _xy(10), _xy(10)


    def boom():
        raise RuntimeError("no data today")


    def with_nan():
        return _xy(20, float("nan")), _xy(10)


    def with_inf():
        return _xy(20), _xy(10, float("inf"))


    def one_class():
        x, y = _xy(20)
        return (x, y * 0), (x, y * 0)


    def text_labels():
        x, _ = _xy(20)
        return (x, np.array(["a", "b"] * 10)), (x, np.array(["a", "b"] * 10))


    def needs_args(path):
        return _xy(20), _xy(10)
"""


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), colour, dtype=np.uint8)).save(path)


def _csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


def write_inputs(folder: str | Path) -> None:
    """Write the user files the cases name into ``folder/inputs/``: image folders (two classes; one class;
    class folders without images; no class folders; loose images; a corrupt image), tables (a good one, and
    ones with infinite features, an infinite target, a fractional target, one label, only an id column, a
    date column, bytes that are not a CSV), a module of broken space functions, one of broken data
    functions, one that fails on import and one that is not Python."""
    root = Path(folder) / "inputs"
    for i in range(3):
        _png(root / "two" / "red" / f"{i}.png", (200, 10, 10))
        _png(root / "two" / "blue" / f"{i}.png", (10, 10, 200))
        _png(root / "one_class" / "cats" / f"{i}.png", (200, 10, 10))
        _png(root / "loose" / f"{i}.png", (10, 10, 200))
    for name in ("cats", "dogs"):
        (root / "no_images" / name).mkdir(parents=True)
    (root / "no_images" / "cats" / "notes.txt").write_text("not an image\n")
    (root / "empty").mkdir()
    _png(root / "corrupt" / "a" / "0.png", (1, 2, 3))
    (root / "corrupt" / "b").mkdir()
    (root / "corrupt" / "b" / "0.png").write_bytes(b"not a png")
    rows = [f"{i % 5}.5,{i % 3},{'ab'[i % 2]}" for i in range(20)]
    _csv(root / "t.csv", "f0,f1,label", rows)
    _csv(root / "inf.csv", "f0,f1,label", [r.replace("1.5,", "inf,") for r in rows])
    _csv(root / "inf_row.csv", "f0,f1,label", [*rows[:-1], "-inf,1,b"])
    _csv(root / "inf_target.csv", "f0,y", [f"{i},{'inf' if i == 3 else i % 2}" for i in range(20)])
    _csv(root / "frac.csv", "f0,y", [f"{i},{i / 7:.3f}" for i in range(20)])
    _csv(root / "one_label.csv", "f0,label", [f"{i},a" for i in range(20)])
    _csv(root / "ids.csv", "id,label", [f"row-{i},{'ab'[i % 2]}" for i in range(80)])
    (root / "garbage.csv").write_bytes(b"\x00\xff\x00garbage\n\x01,\x02\"unterminated\n")
    (root / "t.xlsx").write_text("not a spreadsheet\n")
    try:
        import pandas as pd

        pd.DataFrame({"when": pd.date_range("2024-01-01", periods=20), "label": ["a", "b"] * 10}).to_parquet(
            root / "dates.parquet")
    except ImportError:  # no pyarrow: the case says that instead (one line all the same)
        (root / "dates.parquet").write_bytes(b"PAR1")
    (root / "fz_spaces.py").write_text(textwrap.dedent(_SPACES_PY))
    (root / "fz_data.py").write_text(textwrap.dedent(_DATA_PY))
    (root / "fz_broken.py").write_text("import no_such_module_for_gradnas_fuzz\n\ndef space(trial):\n    pass\n\n\n"
                                       "def load():\n    pass\n")
    (root / "fz_syntax.py").write_text("def space(trial:\n")


def _ids():
    return [" ".join(base[:1] + bad)[:60] for base, bad in CASES]


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100


@pytest.mark.parametrize("base, bad", CASES, ids=_ids())
def test_malformed_invocation_is_one_clear_line(base, bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_inputs(tmp_path)
    given = set(tmp_path.rglob("*"))
    argv = [*base, "--runs-dir", str(tmp_path / "runs")] if base and base[0] in (
        "search", "dashboard", "validate", "report", "diagnose") and "--runs-dir" not in base else list(base)
    code = main([*argv, *bad])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, f"accepted: {bad} -> exit {code}"
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    left = [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
            if p not in given and "__pycache__" not in p.parts]
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
