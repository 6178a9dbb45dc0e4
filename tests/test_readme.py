"""README.md's snippets run as written after the quick start.

The Python blocks are extracted from README.md and executed in a fresh folder. In the default run the
"From Python" search gets a 30-second budget (the shortest a budget search takes) and the study name the quick start uses (``demo``) — the only
two substitutions, both checked to apply — so the load snippet that follows it finds ``runs/demo/best_model.pt``
as it would after ``python -m nas search ... --study demo``. The slow test runs the blocks and the one-minute
smoke command exactly as written.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, flags=re.S)]


def readme_blocks() -> dict[str, str]:
    """The README's Python blocks by role: ``load`` (reads runs/demo/best_model.pt) and ``search``."""
    blocks = python_blocks((ROOT / "README.md").read_text())
    load = [b for b in blocks if "runs/demo/best_model.pt" in b]
    search = [b for b in blocks if "nas.search(" in b]
    assert len(load) == 1 and len(search) == 1, f"README's Python blocks changed: {blocks}"
    return {"load": load[0], "search": search[0]}


def test_python_blocks_are_found_in_markdown():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


@pytest.mark.integration
def test_readme_python_snippets_run_in_order(tmp_path, monkeypatch):
    blocks = readme_blocks()
    search = blocks["search"]
    assert 'budget="2m"' in search
    search = search.replace('budget="2m"', 'budget="30s", study="demo"')
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(search, "README.md (From Python)", "exec"), ns)  # noqa: S102 - the README's own code
    result = ns["result"]
    assert isinstance(ns["model"], torch.nn.Module) and 0.0 <= result.test_acc <= 1.0
    assert (tmp_path / "runs" / "demo" / "best_model.pt").is_file()
    loaded: dict = {}
    exec(compile(blocks["load"], "README.md (load)", "exec"), loaded)  # noqa: S102
    model = loaded["model"]
    assert isinstance(model, torch.nn.Module) and not model.training
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ns["model"].parameters())


@pytest.mark.slow
def test_readme_as_written(tmp_path, monkeypatch):
    """The one-minute smoke command, then the From Python block (2 minutes) exactly as written."""
    text = (ROOT / "README.md").read_text()
    smoke = re.search(r"^python -m nas search --budget 1m --smoke --dataset synthetic --study smoke$", text, flags=re.M)
    assert smoke, "README's smoke command changed"
    out = subprocess.run([sys.executable, "-m", "nas", *smoke.group(0).split()[3:], "--no-progress"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=None)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "runs" / "smoke" / "best_model.pt").is_file()
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(readme_blocks()["search"], "README.md (From Python)", "exec"), ns)  # noqa: S102
    assert isinstance(ns["model"], torch.nn.Module)


@pytest.mark.slow
def test_library_ranking_example_repeats_its_ranking_with_the_same_seed(capsys):
    """docs/library.md's rank-models example, run twice as written: the same seed gives the same table."""
    text = (ROOT / "docs" / "library.md").read_text()
    block = [b for b in python_blocks(text) if "combined_score(table" in b]
    assert len(block) == 1, "docs/library.md's ranking example changed"
    tables = []
    for _ in range(2):
        ns: dict = {}
        exec(compile(block[0], "docs/library.md (rank models)", "exec"), ns)  # noqa: S102
        tables.append(ns["table"])
    assert tables[0].equals(tables[1])
