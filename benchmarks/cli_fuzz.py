"""The CLI fuzz table run against any checkout: how each malformed invocation ends.

Runs every case of ``tests/nas/test_cli_fuzz.py`` (this checkout's table) as ``python -m nas ...`` in a
fresh temporary folder holding the table's user files (its ``write_inputs``: ``inputs/`` with image folders,
tables and broken user modules that the user-input cases name), with the ``nas`` package of ``--repo`` (default: this checkout; pass an older
worktree, e.g. ``git worktree add /tmp/before a4baf17``, to measure the code before a change), and
classifies the outcome:

* ``clear``: exit 2, an ``error:`` line on stderr, no traceback, no new file left behind (``stderr_lines`` > 1
  is argparse's usage line above it; the test asks for exactly one line);
* ``traceback``: a Python traceback on stderr;
* ``accepted``: exit 0, or still running after ``--timeout`` seconds (it started the job; killed);
* ``unclear``: any other ending (another exit code, several lines without a traceback, files left).

Rows are appended to ``--csv`` as they finish; a rerun skips the cases already there (resumable).

Usage::

    python benchmarks/cli_fuzz.py [--repo PATH] [--csv runs/cli_fuzz.csv] [--timeout 60] [--jobs 2]
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ["case", "outcome", "exit", "stderr_lines", "left", "last_line"]


def load_table():
    """The test module: its ``CASES`` and ``write_inputs(folder)`` (absent in older tables: no files)."""
    spec = importlib.util.spec_from_file_location("_fuzz", ROOT / "tests" / "nas" / "test_cli_fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_cases() -> list[tuple[list[str], list[str]]]:
    return load_table().CASES


def _no_inputs(folder: str) -> None:
    pass


def case_id(base: list[str], bad: list[str]) -> str:
    return " ".join([base[0] if base else "", *bad]) if base else " ".join(bad)


def run_case(repo: Path, base: list[str], bad: list[str], timeout: float, write_inputs=_no_inputs) -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        write_inputs(tmp)
        given = set(Path(tmp).rglob("*"))
        argv = list(base)
        if base and base[0] in ("search", "dashboard", "validate", "report", "diagnose") and "--runs-dir" not in base:
            argv += ["--runs-dir", os.path.join(tmp, "runs")]
        env = dict(os.environ, PYTHONPATH=str(repo), RAY_DEDUP_LOGS="0")
        proc = subprocess.Popen([sys.executable, "-m", "nas", *argv, *bad], cwd=tmp, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            code = None
        left = [str(p.relative_to(tmp)) for p in Path(tmp).rglob("*") if p not in given and "__pycache__" not in p.parts]
    lines = [line for line in err.splitlines() if line.strip()]
    if "Traceback" in err:
        outcome = "traceback"
    elif code is None or code == 0:
        outcome = "accepted"
    elif code == 2 and lines and "error:" in lines[-1] and not left:
        outcome = "clear"
    else:
        outcome = "unclear"
    return {"case": case_id(base, bad), "outcome": outcome, "exit": "timeout" if code is None else str(code),
            "stderr_lines": str(len(lines)), "left": str(len(left)),
            "last_line": (lines[-1] if lines else "")[:200]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", type=Path, default=ROOT, help="checkout whose nas package runs (default: this one)")
    p.add_argument("--csv", type=Path, default=ROOT / "runs" / "cli_fuzz.csv", help="results (appended, resumable)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds before a running case counts as accepted")
    p.add_argument("--jobs", type=int, default=2, help="cases run at once")
    args = p.parse_args()
    table = load_table()
    cases, write_inputs = table.CASES, getattr(table, "write_inputs", _no_inputs)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if args.csv.exists():
        with args.csv.open() as f:
            done = {r["case"]: r for r in csv.DictReader(f)}
    todo = [(b, x) for b, x in cases if case_id(b, x) not in done]
    new = not args.csv.exists()
    with args.csv.open("a", newline="") as f, ThreadPoolExecutor(args.jobs) as pool:
        writer = csv.DictWriter(f, FIELDS)
        if new:
            writer.writeheader()
        for i, row in enumerate(pool.map(lambda c: run_case(args.repo, *c, args.timeout, write_inputs), todo), 1):
            writer.writerow(row)
            f.flush()
            done[row["case"]] = row
            print(f"[{i}/{len(todo)}] {row['outcome']:9s} {row['case'][:80]}", flush=True)
    rows = [done[case_id(b, x)] for b, x in cases if case_id(b, x) in done]
    counts = collections.Counter(r["outcome"] for r in rows)
    print(f"\n{args.repo}: tried {len(rows)}, clear {counts['clear']}, traceback {counts['traceback']}, "
          f"accepted {counts['accepted']}, unclear {counts['unclear']}")
    for outcome in ("traceback", "accepted", "unclear"):
        for r in rows:
            if r["outcome"] == outcome:
                print(f"  {outcome:9s} exit {r['exit']:>7s}  {r['case'][:70]}  | {r['last_line'][:90]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
