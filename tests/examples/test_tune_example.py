"""examples/tune_scheduled.py: the two added lines, and the script run as a user runs it (a real Ray Tune run
with OptunaSearch and the gradnas scheduler)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tune_scheduled.py"


def test_the_example_differs_from_a_plain_trainable_by_two_lines():
    marked = [line for line in EXAMPLE.read_text().splitlines() if line.rstrip().endswith(("# gradnas",))
              or "# gradnas:" in line]
    assert len(marked) == 2
    assert marked[0].startswith("from nas.integrations.tune import") and "report_gradients(" in marked[1]


@pytest.mark.slow
@pytest.mark.integration
def test_the_example_runs_and_the_scheduler_gates_and_halves(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--samples", "7", "--epochs", "3", "--storage",
                           str(tmp_path / "tune")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = re.findall(r"epochs (\d)  best acc ([\d.]+)", proc.stdout)
    assert len(trials) == 7
    gate = re.search(r"gradient gate: (\d) of 7 stopped at iteration 0 \(quantile 0.5, warm-up 5\)", proc.stdout)
    assert gate, proc.stdout
    # warm-up 5: only the 6th and 7th candidates can be stopped at once; a stopped one trained 0 epochs
    assert int(gate.group(1)) <= 2 and sum(e == "0" for e, _ in trials) == int(gate.group(1))
    assert any(e == "3" for e, _ in trials)  # the first candidate passes every rung (nothing earlier)
    assert "best: {" in proc.stdout
