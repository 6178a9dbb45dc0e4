"""examples/optuna_pruned.py runs (tiny settings, SQLite storage, both study kinds), and docs/optuna.md shows
its code verbatim: every line of the doc's first Python block is a line of the example."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import optuna
import pytest

from nas.integrations.optuna import decision_key, values_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "optuna_pruned.py"


def _example():
    spec = importlib.util.spec_from_file_location("_example_optuna_pruned", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("multi", [False, True], ids=["single", "multi"])
def test_example_prunes_before_training(tmp_path, multi, capsys):
    storage = f"sqlite:///{tmp_path / 'pruned.db'}"
    args = ["--trials", "9", "--steps", "3", "--storage", storage] + (["--multi"] if multi else [])
    study = _example().main(args)
    assert "9 trials:" in capsys.readouterr().out
    trials = optuna.load_study(study_name="optuna_pruned", storage=storage).trials
    assert len(trials) == 9 and len(study.directions) == (2 if multi else 1)
    # warm-up 5: the first five always train; every trial stored its values and a verdict that matches its state
    assert all(t.state.name == "COMPLETE" for t in trials[:5])
    for t in trials:
        verdict = t.user_attrs[decision_key("init")]
        assert "az_expressivity" in t.user_attrs[values_key("init")]
        assert verdict["prune"] is (t.state.name == "PRUNED")
        assert t.user_attrs[values_key("init")]["batch_size"] == t.params["batch_size"]


def test_example_rejects_bad_arguments():
    with pytest.raises(SystemExit) as exc:
        _example().main(["--trials", "0"])
    assert exc.value.code == 2


def test_doc_block_is_the_example():
    doc = (ROOT / "docs" / "optuna.md").read_text()
    block = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    example = {line.strip() for line in EXAMPLE.read_text().splitlines()}
    missing = [line for line in block.splitlines() if line.strip() and line.strip() != "..."
               and line.strip() not in example]
    assert not missing, f"docs/optuna.md lines not in {EXAMPLE.name}: {missing}"
    assert block.count("# gradnas") == 3  # the import and the two added lines
