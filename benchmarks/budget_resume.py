"""A budget search killed (SIGKILL) during its short rung and rerun, against one uninterrupted run.

Three runs of the same search (``nas.search`` in a child process, the same seed, each job's finish logged
as a JSON line by the search's ``on_event``):

1. ``whole``: the uninterrupted search;
2. ``cut``: the same search in another study, killed with SIGKILL once ``--kill-after`` short-rung jobs
   have finished (what a crashed machine or ``kill -9`` leaves: RUNNING trials, a stale heartbeat);
3. ``cut`` again: the same command; it continues the climb from the state stored on the study.

Printed: the wall time of each run, the rungs, the best model's accuracy, and the jobs (trial, rung) that
finished in the killed run and finished again in the rerun (must be none: nothing finished is scored or
trained twice; a job in flight at the kill is run again, a training from its last epoch's checkpoint).

Usage::

    python benchmarks/budget_resume.py --budget 3m --dataset mnist5k [--workers 1] [--kill-after 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def child(args: argparse.Namespace) -> int:
    import nas

    log = open(args.log, "a", buffering=1)

    def on_event(e: dict) -> None:
        if e["kind"] in ("job", "rung", "resume", "plan", "done", "fail"):
            log.write(json.dumps({"kind": e["kind"], "rung": e["rung"], "trial": e.get("trial"),
                                  "status": e.get("status"), "t": round(e["elapsed"], 2)}) + "\n")

    result = nas.search(space="resnet_cifar", dataset=args.dataset, budget=args.budget, workers=args.workers,
                        study=args.study, runs_dir=args.runs_dir, seed=0, on_event=on_event)
    log.write(json.dumps({"kind": "result", "rungs": result.stats["rungs"], "test_acc": result.test_acc,
                          "trial": (result.best or {}).get("trial")}) + "\n")
    return 0


def _run(args, study: str, log: Path, kill_after: int | None) -> float:
    cmd = [sys.executable, __file__, "--child", "--study", study, "--log", str(log), "--runs-dir", args.runs_dir,
           "--budget", args.budget, "--dataset", args.dataset, "--workers", str(args.workers)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None:
        time.sleep(0.2)
        if kill_after is not None and log.exists():
            short = [r for r in _read(log) if r["kind"] == "job" and r["rung"] == "short" and r["status"] == "ok"]
            if len(short) >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
    return time.monotonic() - t0


def _read(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", default="3m")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--kill-after", type=int, default=2, help="short-rung jobs finished before the kill")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--study", help=argparse.SUPPRESS)
    p.add_argument("--log", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    args.runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="budget_resume_")
    logs = Path(args.runs_dir)
    whole = _run(args, "whole", logs / "whole.jsonl", None)
    cut1 = _run(args, "cut", logs / "cut1.jsonl", args.kill_after)
    cut2 = _run(args, "cut", logs / "cut2.jsonl", None)
    first, second, ref = _read(logs / "cut1.jsonl"), _read(logs / "cut2.jsonl"), _read(logs / "whole.jsonl")
    done1 = {(r["trial"], r["rung"]) for r in first if r["kind"] == "job" and r["status"] == "ok"}
    redone = sorted((r["trial"], r["rung"]) for r in second if r["kind"] == "job" and (r["trial"], r["rung"]) in done1)
    res_ref = next((r for r in ref if r["kind"] == "result"), {})
    res_cut = next((r for r in second if r["kind"] == "result"), {})
    resumed = next((r for r in second if r["kind"] == "resume"), None)
    print(f"budget {args.budget}, dataset {args.dataset}, workers {args.workers}, runs in {args.runs_dir}")
    print(f"{'run':<28} {'wall':>8}  rungs / result")
    print(f"{'uninterrupted':<28} {whole:>7.1f}s  {res_ref.get('rungs')} best trial {res_ref.get('trial')} "
          f"acc {res_ref.get('test_acc')}")
    killed_at = max((r["t"] for r in first), default=0.0)
    print(f"{'killed during the short rung':<28} {cut1:>7.1f}s  {len(done1)} jobs finished, killed at "
          f"{killed_at:.1f}s of the budget")
    print(f"{'rerun (resumed)':<28} {cut2:>7.1f}s  resumed at rung {resumed and resumed['rung']}; {res_cut.get('rungs')} "
          f"best trial {res_cut.get('trial')} acc {res_cut.get('test_acc')}")
    print(f"{'killed + rerun':<28} {cut1 + cut2:>7.1f}s")
    print(f"finished jobs run again after the kill: {len(redone)} {redone if redone else ''}")
    return 0 if not redone and resumed else 1


if __name__ == "__main__":
    sys.exit(main())
