"""Stress: many search drivers on one study for a fixed time, against PostgreSQL and SQLite.

Starts ``--drivers`` concurrent ``python -m nas search`` processes on one study (same ``--storage``), each
with ``--workers`` trials at once on one shared Ray cluster started for the run (``ray start --head``;
the drivers join it with ``--ray-address``), on tiny smoke trials, for ``--minutes``; then stops them
(SIGTERM, as Ctrl-C) and audits the study:

* completed: COMPLETE trials;
* duplicate numbers: trial numbers stored twice (0 expected);
* duplicated evaluations: a trial and its retry both COMPLETE (the same config and seed evaluated twice);
* lost results: trials a driver evaluated but could not store (its log says another driver failed them);
* false interrupted: trials failed as stale while every driver was alive (before the stop);
* storage errors: tracebacks or database errors in the drivers' output.

The PostgreSQL server is started by the benchmark (tests/_services/postgres.py: ``initdb`` in a temporary
folder, as the ``postgres`` user when run as root). Results go to ``--csv`` (one row per storage).

Usage::

    python benchmarks/drivers_stress.py [--drivers 8] [--workers 2] [--minutes 10] [--storage postgresql sqlite]
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nas.study import open_storage  # noqa: E402

TINY = json.dumps({"blocks": 1, "width": 8, "batch_size": [32, 64]})
ERRORS = re.compile(r"Traceback|OperationalError|IntegrityError|StorageInternalError|database is locked|"
                    r"UpdateFinishedTrialError|deadlock", re.I)


def _postgres():
    spec = importlib.util.spec_from_file_location("_pg", ROOT / "tests" / "_services" / "postgres.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["_pg"] = module
    spec.loader.exec_module(module)
    return module


def run(storage: str, kind: str, args, tmp: Path, address: str) -> dict:
    cmd = ["search", "--space", "resnet_cifar", "--bounds", TINY, "--dataset", "synthetic", "--study", "stress",
           "--runs-dir", str(tmp / f"runs-{kind}"), "--storage", storage, "--trials", "1000000",
           "--workers", str(args.workers), "--ray-address", address, "--early-steps", "3", "--probe-size", "32",
           "--group-size", "4", "--metrics", "grad_weight_ratio", "--objectives", "grad_weight_ratio:max",
           "--max-failures", "1000000", "--no-progress"]
    logs = [tmp / f"{kind}-driver{i}.log" for i in range(args.drivers)]
    procs = []
    for log in logs:
        procs.append(subprocess.Popen([sys.executable, "-m", "nas", *cmd], cwd=ROOT, stdout=subprocess.DEVNULL,
                                      stderr=log.open("w"), env={**os.environ, "PYTHONWARNINGS": "ignore"}))
        time.sleep(0.5)
    t0 = time.time()
    while time.time() - t0 < args.minutes * 60:
        time.sleep(5)
        print(f"  {kind}: {time.time() - t0:5.0f} s, drivers alive {sum(p.poll() is None for p in procs)}", flush=True)
    stop_at = time.time()
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    study = optuna.load_study(study_name="stress", storage=open_storage(storage))
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    complete = {t.number for t in trials if t.state.name == "COMPLETE"}
    dup_evals = sum(1 for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("retry_of_trial") in complete)
    false_interrupted = sum(1 for t in trials if t.state.name == "FAIL"
                            and "interrupted" in (t.user_attrs.get("fail_reason") or "")
                            and t.datetime_complete and t.datetime_complete.timestamp() < stop_at)
    text = "".join(log.read_text() for log in logs)
    return {
        "storage": kind, "drivers": args.drivers, "workers": args.workers, "minutes": args.minutes,
        "completed": len(complete), "trials": len(trials),
        "failed": sum(t.state.name == "FAIL" for t in trials), "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "running_at_stop": sum(t.state.name == "RUNNING" for t in trials), "duplicate_numbers": len(numbers) - len(set(numbers)),
        "duplicated_evaluations": dup_evals, "lost_results": text.count("was failed as stale by another driver"),
        "false_interrupted": false_interrupted, "storage_errors": len(ERRORS.findall(text)),
        "exit_codes": " ".join(str(p.returncode) for p in procs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drivers", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="trials at once per driver")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2, help="CPUs of the shared Ray cluster")
    ap.add_argument("--storage", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    ap.add_argument("--keep", default=None, help="keep the drivers' logs and SQLite file in this folder")
    ap.add_argument("--csv", type=Path, default=ROOT / "runs" / "drivers_stress.csv")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(args.keep) if args.keep else Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        port = 6390 + os.getpid() % 500
        ray_cli = str(Path(sys.executable).parent / "ray")
        # loopback only: token authentication (the default of `ray start` since Ray 2.59) is switched off for
        # this private cluster and its drivers
        os.environ["RAY_AUTH_MODE"] = "disabled"
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--num-cpus={args.cpus}",
                        "--include-dashboard=false", "--disable-usage-stats"], check=True, capture_output=True)
        address = f"127.0.0.1:{port}"
        server = None
        try:
            for kind in args.storage:
                if kind == "postgresql":
                    server, why = _postgres().start()
                    if server is None:
                        print(f"postgresql skipped: {why}")
                        continue
                    storage = server.create("stress")
                else:
                    storage = f"sqlite:///{tmp / 'stress.db'}"
                print(f"{kind}: {args.drivers} drivers x {args.workers} workers for {args.minutes:g} min", flush=True)
                rows.append(run(storage, kind, args, tmp, address))
                print(rows[-1], flush=True)
        finally:
            if server is not None:
                server.stop()
            subprocess.run([ray_cli, "stop", "--force"], capture_output=True)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with args.csv.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    keys = [k for k in rows[0] if k not in ("exit_codes",)]
    print("  ".join(f"{k:>12s}" for k in keys))
    for r in rows:
        print("  ".join(f"{str(r[k]):>12s}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
