"""benchmarks/gpu_check.py: one line and exit 0 without a GPU; every check runs (on the CPU) with --cpu."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the skip path needs a machine without CUDA")
def test_without_a_gpu_it_skips_with_one_line_and_exit_0():
    out = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: skipped, no CUDA device"), out.stdout


@pytest.mark.slow
def test_cpu_mode_runs_every_check_and_prints_one_table(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--cpu", "--keep", str(tmp_path)], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    table = [ln for ln in out.stdout.splitlines() if ln.startswith("| ") and "PASS" in ln]
    assert [ln.split("|")[1].strip() for ln in table] == [
        "device", "train_amp", "train_fp32", "metrics", "memory", "ray_trials", "budget"]
    assert (tmp_path / "runs" / "gpu-check-budget" / "best_model.pt").is_file()
