"""Command line: ``python -m nas {search,score,spaces,objectives,dashboard,validate,report,diagnose}``
(also ``gradnas ...``).

Modelled on ``optuna/cli.py``: one class per subcommand with ``add_arguments`` and ``take_action``,
a dict of commands feeding argparse subparsers, shared flags on parent parsers, and ``main()``
returning an exit code. Bad input (unknown space, dataset, metric or sampler, a malformed objective
or constraint, an unreachable storage, a non-writable runs directory) prints one line saying what is
wrong and what is valid, and exits with code 2 — no traceback. Heavy imports (Ray, the dashboard,
torch-based modules) happen inside the command that needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "CLIError"]


#: The shortest --budget accepted (the pilot candidates alone take seconds).
MIN_BUDGET_S = 30.0


class CLIError(Exception):
    """Bad input: printed as one line, exit code 2."""



# ------------------------------------------------------------------------------------ parse-time checks
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad option raises :class:`CLIError` ("error: search: argument
    --trials: ...; see --help"), printed by :func:`main` with exit code 2, instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise CLIError(f"{self.prog.replace('python -m nas', '').strip() or 'nas'}: {message} (see --help)")


def _int(lo: int, hi: int | None = None):
    """An argparse ``type``: an integer in ``lo..hi``."""
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            valid = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (valid: {valid})")
        return value

    return parse


def _seconds(text: str) -> float:
    """An argparse ``type``: a positive, finite number of seconds."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value < 1e9):
        raise argparse.ArgumentTypeError(f"{text} is out of range (valid: a positive number of seconds)")
    return value


_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _study_name(text: str) -> str:
    """An argparse ``type``: a study name that is also a folder name inside the runs directory."""
    if not _STUDY_NAME.match(text or "") or ".." in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a study name (valid: letters, digits, '_', '-', '.', starting with a letter or "
            f"digit, no '..' or '/': the study lives in RUNS_DIR/STUDY/)")
    return text


def _storage_url(text: str) -> str:
    """An argparse ``type``: a database URL an Optuna RDB storage can keep (not in memory)."""
    url = (text or "").strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+]*", scheme):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a database URL (valid: sqlite:///path/study.db, postgresql://user@host/db, ...)")
    if scheme.startswith("sqlite") and rest in ("", "/", "/:memory:", ":memory:"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is an in-memory database: the study would be gone when the process ends (valid: "
            f"sqlite:///path/study.db or a server URL)")
    return url


def _ray_address(text: str) -> str:
    """An argparse ``type``: ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT`` of a Ray cluster's head."""
    t = (text or "").strip()
    if t in ("auto", "local"):
        return t
    body = t[len("ray://"):] if t.startswith("ray://") else t
    host, sep, port = body.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535 or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Ray address (valid: auto, HOST:PORT of the head "
                                         f"node, e.g. 10.0.0.1:6379, or ray://HOST:10001)")
    _host(host.strip("[]"))
    return t


def _port(text: str) -> int:
    return _int(1, 65535)(text)


_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def _host(text: str) -> str:
    """An argparse ``type``: an IP address or a host name to bind."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", text or "") or not _HOST.match(text or ""):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or host name (valid: e.g. 127.0.0.1, 0.0.0.0, localhost)")
    return text


#: Upper bound of --workers (a bigger number is a typo, not a machine).
MAX_WORKERS = 1024

# ------------------------------------------------------------------------------------ helpers
def _json_arg(text: str | None, what: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{what} is not valid JSON ({exc.msg} at char {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise CLIError(f"{what} must be a JSON object, got {text!r}")
    return value


def _space(name: str, bounds: dict[str, Any], smoke: bool = False):
    from search_spaces import ConfigError, get_space, list_spaces

    if name not in list_spaces():
        raise CLIError(f"unknown space {name!r}; valid: {', '.join(list_spaces())}")
    try:
        space = get_space(name)
        if smoke:
            space = space.with_bounds(**space.smoke_bounds)
        return space.with_bounds(**bounds) if bounds else space
    except ConfigError as exc:
        raise CLIError(f"bad --bounds: {exc}") from None


def _dataset(name: str, data_dir: str, download: bool = True):
    from ..data import DatasetError, load_dataset, resolve_dataset

    try:
        resolved, warning = resolve_dataset(name, data_dir, download=download)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        data = load_dataset(resolved, data_dir, download=download)
    except DatasetError as exc:
        raise CLIError(str(exc)) from None
    return resolved, data


def _check_probe(probe_size: int, data) -> None:
    n = int(data.train_x.shape[0])
    if probe_size > n:
        raise CLIError(f"--probe-size {probe_size} is larger than the {n} training examples of {data.name} "
                       f"(valid: 2..{n})")


def _metrics(text: str | None, extra: Sequence[str] = ()) -> list[str]:
    import objectives
    from objectives import registry

    if text is None:
        names = list(objectives.DEFAULT_METRICS)
    elif text.strip() == "all":
        names = registry.names()
    else:
        names = [n.strip() for n in text.split(",") if n.strip()]
    for n in [*names, *extra]:
        if n not in registry.names():
            raise CLIError(f"unknown metric {n!r}; valid: {', '.join(registry.names())}")
    return list(dict.fromkeys([*names, *extra]))


def _remove_if_empty(folder: Path) -> None:
    """Remove the study folder ``folder`` when it holds nothing, then the runs directory above it when that is
    empty too (a run that failed to open its storage leaves nothing behind)."""
    try:
        folder = Path(folder).resolve()
        for f in (folder, folder.parent):
            if f.is_dir() and not any(f.iterdir()) and f != Path.cwd().resolve():
                f.rmdir()
            else:
                break
    except OSError:
        pass


def _check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CLIError(f"runs directory {str(folder)!r} is not writable ({exc.strerror}); pass --runs-dir DIR") from None


def _storage_for(args: argparse.Namespace, create: bool) -> str:
    from ..study import default_storage

    if args.storage:
        if not create and args.storage.startswith("sqlite:///"):
            path = Path(args.storage[len("sqlite:///"):])
            if not path.is_file():  # opening it would create an empty database
                raise CLIError(f"no study database at {path}{' (a directory)' if path.is_dir() else ''}; "
                               f"run `python -m nas search` first or give the right --storage")
        return args.storage
    if not args.study:
        raise CLIError("give --study NAME (its storage is runs/NAME/study.db) or --storage URL")
    db = Path(args.runs_dir) / args.study / "study.db"
    if not create and not db.exists():
        raise CLIError(f"no study database at {db}; run `python -m nas search --study {args.study}` first or pass --storage")
    return default_storage(args.runs_dir, args.study)


def _table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ------------------------------------------------------------------------------------ commands
class _Command:
    """Base: ``add_arguments(parser)`` and ``take_action(args) -> exit code``."""

    parents: tuple[str, ...] = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # pragma: no cover
        pass

    def take_action(self, args: argparse.Namespace) -> int:  # pragma: no cover
        raise NotImplementedError


class Search(_Command):
    """Search for a network that trains. By default (or with --budget) a budgeted multi-fidelity search:
    many candidates scored by gradient metrics at initialization, the best promoted to early training
    steps, a short training and a full training (successive halving, planned from the measured cost of
    each rung), ending with the best trained model (runs/STUDY/best_model.pt). With --trials N, a
    proxy-only multi-objective search of N trials scored at init and after --early-steps steps (rerunning
    continues up to N)."""

    parents = ("study", "data")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--space", default="resnet_cifar", help="search space (see `spaces`; default: %(default)s)")
        p.add_argument("--bounds", metavar="JSON", help='narrow the space, e.g. \'{"width": [8, 16], "blocks": [1, 2]}\' (default: full space)')
        p.add_argument("--smoke", action="store_true", help="use the space's tiny smoke-test bounds (CPU demos; default: off)")
        p.add_argument("--budget", default=None, metavar="DURATION",
                       help="wall-clock budget of a multi-fidelity search, e.g. 20m, 1h, 1h30m (default without --trials: 15m on CPU with the space's CPU bounds, 1h on a GPU)")
        p.add_argument("--trials", type=_int(1), default=None, metavar="N", help="without --budget: a proxy-only search to N COMPLETE trials, rerunning continues up to N; with --budget: the most candidates at rung 0 (default: budget search)")
        p.add_argument("--epochs", type=_int(1, 10000), default=10, help="budget search: epochs of the finalists' full training, halved until one fits the budget (default: %(default)s)")
        p.add_argument("--eta", type=_int(2, 100), default=3, help="budget search: reduction factor between rungs (default: %(default)s)")
        p.add_argument("--objectives", default=None, metavar="KEY:DIR,...",
                       help="objectives, e.g. kappa_w:max,train_loss_smooth_min:min; KEY is a metric (at init), METRIC@early, or loss_drop/train_loss_smooth_min/relative_step/params/... (default: the leading inputs of the combined gradnas score in their directions measured on the proxy lab, after the early steps or, with --early-steps 0, at init; `objectives --combined` lists them). Trials are ranked for validation by the combined score")
        p.add_argument("--constraint", action="append", default=None, metavar="KEY<=X",
                       help="feasibility constraint, repeatable, e.g. 'rank_input<=0.15' (default: none)")
        p.add_argument("--metrics", default=None, help="metrics scored on every trial, comma-separated or 'all' (default: the inputs of the combined gradnas score; objectives/constraints are always added)")
        p.add_argument("--sampler", default="nsga2", help="nsga2 | tpe | random (default: %(default)s)")
        p.add_argument("--workers", type=_int(1, MAX_WORKERS), default=None, help="parallel trials; 1 runs in process without Ray (default: GPUs x --trials-per-gpu, else CPU cores)")
        p.add_argument("--trials-per-gpu", type=_int(1, 64), default=1, help="trials sharing one GPU (default: %(default)s)")
        p.add_argument("--threads", type=_int(1, 1024), default=1, help="torch threads of every trial, whatever runs it (in process, a Ray worker, another node), so a trial's values do not depend on --workers; stored with the study (default: %(default)s)")
        p.add_argument("--ray-address", type=_ray_address, default=os.environ.get("RAY_ADDRESS") or None, metavar="ADDRESS",
                       help="run the trials on an existing Ray cluster: 'auto' (a `ray start` cluster on this machine) or HOST:PORT of its head; --workers then defaults to the cluster's GPUs x --trials-per-gpu, else its CPUs (default: $RAY_ADDRESS, else a private Ray instance, or in process with --workers 1)")
        p.add_argument("--stale-grace", type=_seconds, default=None, metavar="SECONDS",
                       help="another driver sharing the study takes a running trial for stale (fails it, retries its config and seed) after this long without its driver's heartbeat (default: 120)")
        p.add_argument("--early-steps", type=_int(0, 1_000_000), default=50, help="training steps between the two scorings; their loss curve is the strongest signal measured (default: %(default)s)")
        p.add_argument("--probe-size", type=_int(2, 100_000), default=64, help="examples in the fixed probe batch (default: %(default)s)")
        p.add_argument("--group-size", type=_int(1, 100_000), default=8, help="examples per group for confusion/diversity (default: %(default)s)")
        p.add_argument("--trial-timeout", type=_seconds, default=None, metavar="SECONDS", help="fail a trial that runs longer (default: no limit)")
        p.add_argument("--max-failures", type=_int(1), default=None, help="stop after this many failed trials in one run (default: max(10, --trials))")
        p.add_argument("--seed", type=_int(0, 2**32 - 1), default=0, help="seed of the sampler, data split and trial initializations (default: %(default)s)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def take_action(self, args: argparse.Namespace) -> int:
        import torch

        # before any work: a process keeps the oneDNN kernels chosen under its first thread count, so the
        # driver (which runs the trials itself with --workers 1) uses the trials' count from the start
        torch.set_num_threads(args.threads)
        from ..study import (
            DEFAULT_CONSTRAINTS, SAMPLERS, StudyError, budget_metrics, budget_objectives, combined_metrics,
            default_objectives, metric_of,
            parse_constraint, parse_objectives,
        )

        from ..schedule import BudgetError, parse_duration

        if args.trials is not None and args.trials < 1:
            raise CLIError(f"--trials must be >= 1, got {args.trials}")
        budget_mode = args.budget is not None or args.trials is None
        if args.budget is not None:
            try:
                args.budget_s = parse_duration(args.budget)
            except BudgetError as exc:
                raise CLIError(f"--budget: {exc}") from None
            if args.budget_s < MIN_BUDGET_S:
                raise CLIError(f"--budget {args.budget} is too short: a budget search needs at least "
                               f"{MIN_BUDGET_S:g}s (measuring the first candidates takes some)")
        if args.epochs < 1 or args.eta < 2:
            raise CLIError(f"need --epochs >= 1 and --eta >= 2, got {args.epochs} and {args.eta}")
        if args.sampler not in SAMPLERS:
            raise CLIError(f"unknown sampler {args.sampler!r}; valid: {', '.join(SAMPLERS)}")
        if args.workers is not None and args.workers < 1:
            raise CLIError(f"--workers must be >= 1, got {args.workers}")
        bounds = _json_arg(args.bounds, "--bounds")
        space = _space(args.space, bounds, args.smoke)
        gpu = _has_cuda()
        if budget_mode and not bounds and not args.smoke and not gpu and space.cpu_bounds:
            space = space.with_bounds(**space.cpu_bounds)  # a default that a CPU trains within the budget
        if budget_mode and args.budget is None:
            args.budget_s = 3600.0 if gpu else 900.0
        try:
            if args.early_steps < 0:
                raise StudyError(f"--early-steps must be >= 0, got {args.early_steps}")
            objectives = parse_objectives(args.objectives or (budget_objectives() if budget_mode
                                                              else default_objectives(args.early_steps)))
            if budget_mode:
                _check_budget_objectives(objectives)
            raw = DEFAULT_CONSTRAINTS if args.constraint is None else [c for c in args.constraint if c != "none"]
            constraints = [parse_constraint(c) for c in raw]
        except StudyError as exc:
            raise CLIError(str(exc)) from None
        referenced = [m for m in (metric_of(k) for k in [o.key for o in objectives] + [c.key for c in constraints]) if m]
        metrics = _metrics(args.metrics, referenced) if args.metrics is not None else \
            list(dict.fromkeys([*(budget_metrics() if budget_mode else combined_metrics()), *referenced]))
        if args.group_size > args.probe_size:
            raise CLIError(f"--group-size {args.group_size} is larger than --probe-size {args.probe_size} (valid: "
                           f"1..{args.probe_size}: the probe batch is split into groups)")
        dataset, data = _dataset(args.dataset, args.data_dir)
        _check_probe(args.probe_size, data)
        study_name = args.study or f"{args.space}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        out_dir = Path(args.runs_dir) / study_name
        _check_writable(out_dir)
        args.study = study_name
        storage = _storage_for(args, create=True)
        settings = {
            "space": args.space, "bounds": space.bounds, "dataset": dataset, "dataset_info": data.describe(),
            "objectives": [str(o) for o in objectives], "constraints": [str(c) for c in constraints],
            "metrics": metrics, "early_steps": args.early_steps, "probe_size": args.probe_size,
            "group_size": args.group_size, "seed": args.seed, "threads": args.threads,
        }
        if budget_mode:
            settings.update(mode="budget", epochs=args.epochs)
            return _run_budget_search(args, space, settings, objectives, constraints, storage, out_dir, study_name, data)
        return _run_search(args, space, settings, objectives, constraints, storage, out_dir, study_name)


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def _check_budget_objectives(objectives) -> None:
    """A budget search tells every candidate its rung-0 (init) values: objectives must be measured there."""
    from objectives.combine import DERIVED

    from ..study import metric_of

    for o in objectives:
        early = o.key.endswith("@early") or o.key in ("loss_early", "loss_drop", "train_loss_first", "train_loss_last",
                                                      "train_kappa_w", "train_loss_smooth_min")
        if early or not (metric_of(o.key) or o.key in DERIVED or o.key in ("params", "flops", "loss_init")):
            raise CLIError(f"objective {o} is not measured at initialization: a budget search ranks its first rung "
                           f"by init values (the early steps' loss ranks the next rung by itself); use init metrics, "
                           f"or --trials N for a proxy-only search")


def _run_budget_search(args, space, settings, objectives, constraints, storage, out_dir, study_name, data) -> int:

    import optuna
    from tqdm.auto import tqdm

    from ..runner import default_workers
    from ..budget import BudgetSettings, run_budget
    from ..schedule import BudgetError, format_duration
    from ..study import export_trials
    from ..training import resolve_device

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_search_study(args, study_name, storage, objectives, constraints, settings, out_dir)
    workers = args.workers or default_workers(args.trials_per_gpu)
    device = resolve_device(None)
    bounds = ", ".join(f"{k} {v}" for k, v in settings["bounds"].items()) or "full space"
    print(f"study {study_name!r} in {storage}")
    print(f"budget search: dataset {settings['dataset']} ({data.train_x.shape[0]} train / {data.test_x.shape[0]} test), "
          f"device {device.type}, workers {workers}, budget {format_duration(args.budget_s)}, bounds: {bounds}")
    run = _search_settings(args, settings, trials=args.trials or 0, workers=workers)
    budget = BudgetSettings(budget=args.budget_s, full_epochs=args.epochs, eta=args.eta, max_candidates=args.trials)
    bar = tqdm(total=round(args.budget_s), unit="s", disable=args.no_progress, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}]{postfix}")
    state = {"rung": "init", "done": 0, "failed": 0, "best": None, "t0": time.monotonic()}

    def elapsed() -> None:  # the bar counts the budget's seconds
        bar.n = min(bar.total, round(time.monotonic() - state["t0"]))

    def on_event(e: dict[str, Any]) -> None:
        kind = e["kind"]
        if kind == "plan":
            bar.write(f"plan: {e['plan'].describe()} (costs per candidate: "
                      + ", ".join(f"{n} {format_duration(c)}" for n, c in zip(("init", "early", "short", "full"),
                                                                             e["plan"].rung_costs)) + ")")
        elif kind == "rung":
            state.update(rung=e["rung"], done=0)
            k = ("init", "early", "short", "full").index(e["rung"])
            bar.write(f"rung {e['rung']}: {e['count']} candidate(s) at {format_duration(e['elapsed'])}; plan now "
                      f"{e['plan'].describe().split(', expected')[0]}, expected to end in "
                      f"{format_duration(e['plan'].expected_from(k))}")
        elif kind == "shorten":
            bar.write(f"no finalist finishes {e['was']} epochs in the time left: trial {e['trial']} trains "
                      f"{e['epochs']} epoch(s) instead (from scratch, a shorter schedule)")
        elif kind == "fail":
            state["failed"] += 1
            bar.write(f"trial {e['trial']} failed at rung {e['rung']}: {e['reason'][:300]}")
        elif kind == "job":
            state["done"] = e["done"]
        bar.set_description_str(f"rung {state['rung']}")
        bar.set_postfix_str(f"done {state['done']}, failed {state['failed']}", refresh=False)

    stop = _tick(bar, elapsed)
    interrupted, stats = False, None
    try:
        stats = run_budget(study, space, run, budget, objectives, constraints, out_dir, data.input_shape,
                           int(data.train_x.shape[0]), on_event=on_event)
    except KeyboardInterrupt:
        interrupted = True
    except BudgetError as exc:
        stop.set()
        bar.close()
        raise CLIError(str(exc)) from None
    finally:
        stop.set()
        elapsed()
        bar.close()
        csv = export_trials(study, out_dir / "trials.csv")
    if interrupted:
        print(f"interrupted: finished trials and checkpoints are saved ({csv}); rerun to start a new budget on the "
              f"same study", file=sys.stderr)
        return 130
    _print_front(study, objectives)
    wall = time.monotonic() - state["t0"]
    rungs = ", ".join(f"{k} {v}" for k, v in stats["rungs"].items())
    print(f"\nstudy database: {storage}\ntrials table:   {csv}")
    print(f"wall time {format_duration(wall)} of {format_duration(args.budget_s)}; candidates per rung: {rungs}; "
          f"{stats['failed']} failed")
    best = stats.get("best")
    if not best:
        print("no candidate finished its full training: give a larger --budget or smaller --bounds", file=sys.stderr)
        return 1
    curve = ", ".join(f"{a:.3f}" if isinstance(a, float) else str(a) for a in best.get("acc_curve") or [])
    diverged = " (its training diverged: no finalist trained cleanly; try a larger --budget)" if best.get("diverged") else ""
    print(f"best trained model: trial {best['trial']}, test accuracy {best['test_acc']:.4f} after {best['epochs']} "
          f"epoch(s){diverged} (per epoch: {curve})\n  config: {json.dumps(best['config'])}\n  weights: {best['model']}\n"
          f"  load: ckpt = torch.load(path, weights_only=True); model = get_space(ckpt['space'], **ckpt['bounds'])"
          f".build(ckpt['config'], ckpt['num_classes'], ckpt['input_shape']); model.load_state_dict(ckpt['state_dict'])")
    return 0


def _run_search(args, space, settings, objectives, constraints, storage, out_dir, study_name) -> int:
    import optuna
    from tqdm.auto import tqdm

    from ..runner import run_trials
    from ..study import complete_trials, export_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_search_study(args, study_name, storage, objectives, constraints, settings, out_dir)
    print(f"study {study_name!r} in {storage}  (resume: rerun with --study {study_name})")
    from ..study import is_feasible

    run = _search_settings(args, settings, trials=args.trials, workers=args.workers)
    already = len(complete_trials(study))
    bar = tqdm(total=args.trials, initial=min(already, args.trials), unit="trial", disable=args.no_progress,
               dynamic_ncols=True)
    best: dict[str, float] = {}

    def on_update(status: dict[str, Any]) -> None:
        if status.get("reason"):  # a failure is said when it happens, not only with -v
            bar.write(f"trial {status['trial']} failed: {status['reason'][:300]}")
        if status["status"] == "ok":
            bar.update(1)
            t = study.trials[status["trial"]]
            # the same "best" as the printed Pareto front and the dashboard: feasible trials only
            for o, v in zip(objectives, (t.values or []) if is_feasible(t) else []):
                cur = best.get(o.key)
                better = cur is None or (v < cur if o.direction == "minimize" else v > cur)
                best[o.key] = v if better else cur
        bar.set_postfix(failed=status["failed"], **{k: f"{v:.3g}" for k, v in best.items()})

    interrupted = False
    stop = _tick(bar)
    try:
        stats = run_trials(study, space, run, objectives, constraints, on_update=on_update)
    except KeyboardInterrupt:
        interrupted = True
        stats = None
    finally:
        stop.set()
        bar.close()
        csv = export_trials(study, out_dir / "trials.csv")
    if interrupted:
        print(f"interrupted: finished trials are saved; rerun the same command to continue ({csv})", file=sys.stderr)
        return 130
    _print_front(study, objectives)
    print(f"\nstudy database: {storage}\ntrials table:   {csv}")
    print(f"completed {stats['completed']} and failed {stats['failed']} trial(s) in this run; "
          f"{stats['total_complete']}/{args.trials} complete in the study")
    return 0 if stats["total_complete"] >= args.trials else 1


def _print_best_validated(study) -> bool:
    """Print the validated trial with the best test accuracy; False when no trial is validated."""
    from ..validate import validation_results

    results = {n: r for n, r in validation_results(study).items() if isinstance(r.get("val_best_acc"), (int, float))}
    if not results:
        return False
    n, r = max(results.items(), key=lambda item: (item[1]["val_best_acc"], -item[0]))
    print(f"best validated trial: {n}, test accuracy {r['val_best_acc']:.4f} (best epoch; final "
          f"{_fmt(r.get('val_final_acc'))}) after {r.get('val_epochs')} epoch(s)")
    return True


def _open_search_study(args, study_name, storage, objectives, constraints, settings, out_dir):
    """Create or resume the search's study; a storage that cannot be opened leaves no empty study folder."""
    from ..study import StudyError, open_study

    try:
        return open_study(study_name, storage, objectives, constraints, args.sampler, args.seed, settings)
    except StudyError as exc:
        _remove_if_empty(out_dir)
        raise CLIError(str(exc)) from None


def _search_settings(args, settings, trials: int, workers: int | None):
    """The runner's :class:`nas.runner.SearchSettings` of a search command (both modes)."""
    from ..runner import SearchSettings

    return SearchSettings(
        space=args.space, bounds=settings["bounds"], dataset=settings["dataset"], data_dir=args.data_dir,
        metrics=settings["metrics"], early_steps=args.early_steps, probe_size=args.probe_size, seed=args.seed,
        metric_options={"group_size": args.group_size}, trials=trials, workers=workers,
        trials_per_gpu=args.trials_per_gpu, trial_timeout=args.trial_timeout, max_failures=args.max_failures,
        threads=args.threads, ray_address=args.ray_address,
        **({"stale_grace": args.stale_grace} if args.stale_grace is not None else {}),
    )


def _tick(bar, update=None):
    """Refresh ``bar`` every second from a daemon thread (its elapsed time moves while a trial runs), after
    ``update()`` when given; returns the event that stops it."""
    import threading

    stop = threading.Event()

    def run() -> None:
        while not stop.wait(1.0):
            if update is not None:
                update()
            bar.refresh()

    if not bar.disable:
        threading.Thread(target=run, daemon=True).start()
    return stop


def _print_front(study, objectives) -> None:
    from ..study import best_trials, complete_trials

    done = complete_trials(study)
    if not done:
        print("no complete trials yet")
        return
    front, feasible = best_trials(done, study.directions)  # the dashboard shows the same trials
    note = "feasible" if feasible else "no trial satisfies the constraints; unconstrained"
    rows = []
    for t in sorted(front, key=lambda t: t.values[0]):
        cfg = t.user_attrs.get("config", {})
        brief = ", ".join(f"{k}={_fmt(v)}" for k, v in cfg.items() if k in t.params)
        rows.append([t.number, *t.values, brief])
    print(f"\nPareto front ({note}, {len(front)} of {len(done)} complete trial(s)):")
    print(_table(rows, ["trial", *[str(o) for o in objectives], "config"]))


class Score(_Command):
    """Score one candidate (a config, an NB201 arch string or index) and print every metric at
    initialization and, with --early-steps, after a few training steps."""

    parents = ("data",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--space", default="resnet_cifar", help="search space (default: %(default)s)")
        p.add_argument("--config", metavar="JSON", help="config (missing fields take defaults; default: the space's default config)")
        p.add_argument("--arch", help="nb201 only: an arch string like '|nor_conv_3x3~0|+|...|'")
        p.add_argument("--index", type=_int(0, 15624), help="nb201 only: a NAS-Bench-201 index 0..15624")
        p.add_argument("--metrics", default="all", help="comma-separated metrics or 'all' (default: %(default)s)")
        p.add_argument("--early-steps", type=_int(0, 1_000_000), default=0, help="training steps before the second scoring (default: %(default)s = init only)")
        p.add_argument("--probe-size", type=_int(2, 100_000), default=64, help="examples in the probe batch (default: %(default)s)")
        p.add_argument("--group-size", type=_int(1, 100_000), default=8, help="examples per group for confusion/diversity (default: %(default)s)")
        p.add_argument("--seed", type=_int(0, 2**32 - 1), default=0, help="initialization seed (default: %(default)s)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def take_action(self, args: argparse.Namespace) -> int:
        from objectives import registry
        from search_spaces import ConfigError

        from ..evaluate import TrialFailed, TrialSpec, evaluate

        space = _space(args.space, {})
        config = _json_arg(args.config, "--config")
        if args.arch is not None or args.index is not None:
            if args.space != "nb201":
                raise CLIError("--arch/--index need --space nb201")
            from search_spaces import nb201

            arch = args.arch if args.arch is not None else nb201.index_to_arch(args.index)
            config["arch"] = arch
        try:
            config = space.validate(config)
        except (ConfigError, ValueError) as exc:
            raise CLIError(f"bad config: {exc}") from None
        metrics = _metrics(args.metrics)
        if args.group_size > args.probe_size:
            raise CLIError(f"--group-size {args.group_size} is larger than --probe-size {args.probe_size} (valid: "
                           f"1..{args.probe_size}: the probe batch is split into groups)")
        dataset, data = _dataset(args.dataset, args.data_dir)
        _check_probe(args.probe_size, data)
        spec = TrialSpec(space=args.space, config=config, dataset=dataset, data_dir=args.data_dir,
                         metrics=metrics, early_steps=args.early_steps, probe_size=args.probe_size,
                         seed=args.seed, metric_options={"group_size": args.group_size})
        try:
            result = evaluate(spec)
        except TrialFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if not args.early_steps:  # nothing was trained: no early values to show as if measured
            for key in ("loss_early", "loss_drop", "train_loss_first", "train_loss_last", "train_kappa_w", "loss_curve",
                        "train_loss_smooth_min", "time_train", "time_score_early"):
                result.pop(key, None)
        if args.json:
            print(json.dumps({"config": config, **result}, indent=1, default=str))
            return 0
        print(f"space {args.space}, dataset {dataset}, config {json.dumps(config)}")
        rows = []
        for m in metrics:
            e = registry.get(m)
            row = [m, e.direction, result.get(m)]
            if args.early_steps:
                row.append(result.get(f"{m}@early"))
            rows.append(row)
        header = ["metric", "direction", "init"] + (["early"] if args.early_steps else [])
        print(_table(rows, header))
        extra = ["loss_init", "loss_early", "loss_drop", "train_kappa_w", "params", "flops", "time_total", "device"]
        print("\n" + "  ".join(f"{k}={_fmt(result.get(k))}" for k in extra if k in result))
        return 0


class Spaces(_Command):
    """List the registered search spaces, or show one space's dimensions."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("name", nargs="?", help="a space to describe: its dimensions, then its documentation "
                                               "(building rules, initialization, math) (default: list them all)")

    def take_action(self, args: argparse.Namespace) -> int:
        from search_spaces import get_space, list_spaces

        if not args.name:
            for n in list_spaces():
                doc = (type(get_space(n)).__doc__ or "").strip().splitlines()
                print(f"{n:18s} {doc[0] if doc else ''}")
            return 0
        space = _space(args.name, {})
        rows = []
        for d in space.dimensions():
            if d["type"] == "categorical":
                domain = d["choices"]
            elif "low" in d:
                domain = f"[{_fmt(d['low'])}, {_fmt(d['high'])}]" + (" log" if d.get("log") else "")
            else:  # e.g. nb201's arch: ops on each edge
                domain = f"{len(d.get('edges', [])) or ''} edges x {d.get('choices')}"
            rows.append([d["name"], d["type"], domain, d.get("default"), "fixed" if d.get("fixed") else "searched",
                         d.get("description", "")])
        print(_table(rows, ["dimension", "type", "domain", "default", "", "description"]))
        print()
        print(_space_doc(space))
        return 0


def _space_doc(space) -> str:
    """A space's class docstring, its model's (initialization rules) and, for spaces with a CReLU choice,
    the CReLU / looks-linear math of :mod:`search_spaces.layers`."""
    import inspect

    import search_spaces.layers as layers

    parts = [inspect.getdoc(type(space)) or ""]
    model_cls = getattr(type(space), "model_class", None)
    if model_cls is not None and inspect.getdoc(model_cls):
        parts.append(f"{model_cls.__name__}: " + inspect.getdoc(model_cls))
    if any(d["name"] == "activation" and "crelu" in d.get("choices", ()) for d in space.dimensions()):
        parts.append(inspect.getdoc(layers))
    return "\n\n".join(p for p in parts if p)


def _metric_name(text: str) -> str:
    from objectives import registry

    if text not in registry.names():
        raise argparse.ArgumentTypeError(f"unknown metric {text!r} (valid: {', '.join(registry.names())})")
    return text


def _short_citation(citation: str) -> str:
    """'Lee & Ham, AZ-NAS: ..., CVPR 2024 (...)' -> 'Lee & Ham 2024': the authors (three or more become
    'First et al.') and the first publication year, when the citation has one."""
    import re

    parts = [p.strip() for p in re.sub(r"^.*baseline of ", "", citation).split(",")]
    authors = [re.sub(r"\s*\(?\d{4}\)?$", "", parts[0])]
    if "et al" not in authors[0] and "&" not in authors[0]:
        for part in parts[1:]:
            if ":" in part or len(part.split()) > 3 or not part[:1].isupper():
                break
            authors.append(part)
            if "&" in part:
                break
    names = sum(len(a.split("&")) for a in authors)
    author = authors[0] if names <= 2 or "et al" in authors[0] else f"{authors[0]} et al."
    if names == 2 and len(authors) == 2:
        author = f"{authors[0]} & {authors[1]}"
    year = re.search(r"(?<![\d.:])(19|20)\d{2}(?![\d.])", citation)
    return f"{author} {year.group(0)}" if year else author


def _width() -> int:
    """The terminal's width, kept between 100 and 200 columns (160 when not a terminal)."""
    import shutil

    return max(100, min(200, shutil.get_terminal_size((160, 24)).columns))


def _table_with_text(rows: list[list[Any]], header: list[str], texts: list[str], title: str, width: int) -> str:
    """A table whose last column is free text, kept within ``width`` columns.

    When the fixed columns leave room for at least 30 characters the text is the last column, cut with '…';
    otherwise each row is followed by its text on an indented line of its own.
    """
    def cut(text: str, room: int) -> str:
        return text if len(text) <= room else text[:room - 1] + "…"

    fixed = _table(rows, header).splitlines()
    room = width - max(len(line) for line in fixed) - 2
    if room >= 30:
        return _table([r + [cut(t, room)] for r, t in zip(rows, texts)], header + [title])
    out = fixed[:2]
    for line, text in zip(fixed[2:], texts):
        out += [line, "    " + cut(text, width - 4)]
    return "\n".join(out)


def _say(text: str) -> None:
    """Print prose wrapped to the terminal's width (leading blank lines kept)."""
    import textwrap

    stripped = text.lstrip("\n")
    print("\n" * (len(text) - len(stripped)) + textwrap.fill(stripped, _width()))


def _print_metric(entry) -> int:
    """`objectives METRIC`: the registry entry and the function's whole docstring (the math)."""
    import inspect

    print(f"{entry.name}  ({entry.family}, {entry.file})")
    print(f"  paper direction: {entry.hypothesis}    cost: {entry.cost}    needs: "
          f"{', '.join(sorted(entry.needs)) or '-'}")
    for phase, m in sorted(entry.measured.items()):
        stable = {True: "", False: " (unstable: the other lab disagrees)", None: ""}[m.stable]
        print(f"  measured ({phase}): {m.direction}, Kendall tau {m.tau:+.2f} over {m.n} configs of {m.lab}{stable}")
    print(f"  citation: {entry.citation}")
    print()
    print(inspect.getdoc(entry.fn) or "(no docstring)")
    return 0


class Objectives(_Command):
    """List every metric with its direction, cost class, needs and source (--verbose: family, file, test)."""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("metric", nargs="?", type=_metric_name, default=None,
                       help="print one metric's full documentation (definition, math, direction, cost, citation, "
                            "measured evidence) instead of the table")
        p.add_argument("--filter", default=None, help="fnmatch pattern on names, e.g. 'rank_*' (default: all)")
        p.add_argument("--family", default=None, choices=("thesis", "zero_cost", "noise"),
                       help="only the metrics of one family (folder of objectives/)")
        p.add_argument("--verbose", action="store_true",
                       help="also show each metric's family, source file and test file")
        p.add_argument("--combined", action="store_true",
                       help="show the combined gradnas score instead: its feature sets (init, after the early "
                            "steps) with directions and weights, and the search's default objectives")

    def take_action(self, args: argparse.Namespace) -> int:
        from objectives import registry

        if args.combined:
            from objectives.combine import BUDGET_EARLY_FEATURES, BUDGET_INIT_FEATURES, EARLY_FEATURES, INIT_FEATURES

            from ..study import budget_objectives, default_objectives

            for title, feats in (("phase 'init' (combined_score(table, 'init'))", INIT_FEATURES),
                                 ("phase 'early' (combined_score(table, 'early'))", EARLY_FEATURES),
                                 ("budget search, rung 0 (BUDGET_INIT_FEATURES; <= 2 training steps)", BUDGET_INIT_FEATURES),
                                 ("budget search, after the early steps (BUDGET_EARLY_FEATURES)", BUDGET_EARLY_FEATURES)):
                rows = [[f.key, f.direction[:3], f"{f.weight:g}"] for f in feats]
                print(f"combined score, {title}:")
                print(_table(rows, ["feature", "direction", "weight"]))
                print()
            print(f"search defaults: budget search --objectives {budget_objectives()}; --trials N: "
                  f"{default_objectives()} (with early steps), {default_objectives(0)} (--early-steps 0)")
            print("score = sum over features of weight * log(rank / n), ranks in each feature's direction among "
                  "the trials ranked together (a missing or non-finite value ranks last); higher = better.")
            return 0

        entries = [registry.get(n) for n in registry.names(args.filter, family=args.family)]
        if args.metric:
            return _print_metric(registry.get(args.metric))
        if args.verbose:
            rows = [[e.name, e.direction, e.cost, ",".join(sorted(e.needs)) or "-", e.family, e.file, e.test]
                    for e in entries]
            print(_table(rows, ["metric", "direction", "cost", "needs", "family", "file", "test"]))
        else:
            def measured(e, phase: str) -> str:
                m = e.measured.get(phase)
                if m is None:
                    return "-"
                flag = {True: "", False: " unstable", None: ""}[m.stable]
                return f"{m.direction[:3]} {m.tau:+.2f}{flag}"

            rows = [[e.name, e.hypothesis[:3], measured(e, "init"), measured(e, "early"), e.cost,
                     _short_citation(e.citation)] for e in entries]
            headers = ["metric", "paper", "at init", "after early", "cost", "source"]
            print(_table_with_text(rows, headers, [e.summary.rstrip(":").strip() for e in entries], "definition",
                                   _width()))
            labs = sorted({m.lab for e in entries for m in e.measured.values()})
            _say("\npaper: the direction the metric's paper argues for (a hypothesis); measured: the direction "
                  "that ranks trained accuracy on the proxy lab (" + (", ".join(labs) or "none yet") +
                  f"), at init and after the early steps, with Kendall tau (n {max((m.n for e in entries for m in e.measured.values()), default=0)} configs; benchmarks/proxy_lab.py); unstable: the other lab measured the opposite sign. "
                  "`objectives METRIC` prints a metric's full definition, math and citation; --verbose its "
                  "needs, files and tests.")
        _say("\nUse a metric as an objective KEY (at init) or KEY@early; derived keys: loss_drop, loss_early, train_kappa_w, "
              "train_loss_smooth_min, relative_step, relative_gradient_change, params, flops. `objectives --combined` "
              "shows the combined gradnas score.")
        return 0


class Dashboard(_Command):
    """Serve a study in optuna-dashboard (bound to 127.0.0.1 by default)."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", type=_host, default="127.0.0.1", help="address to bind (default: %(default)s)")
        p.add_argument("--port", type=_port, default=8080, help="port (default: %(default)s)")

    def take_action(self, args: argparse.Namespace) -> int:
        import socket

        import optuna

        from ..study import StudyError, open_storage

        storage = _storage_for(args, create=False)
        try:
            from optuna_dashboard import run_server
        except ImportError:
            raise CLIError("optuna-dashboard is not installed: pip install optuna-dashboard") from None
        try:  # a file that is not a study database fails here, in one line, not inside the server
            storage_obj = open_storage(storage)
            names = optuna.get_all_study_names(storage=storage_obj)
        except StudyError as exc:
            raise CLIError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/Optuna errors of a broken database
            raise CLIError(f"{storage} is not a readable study database ({str(exc).splitlines()[0][:200]})") from None
        if args.study and not args.storage and args.study not in names:
            raise CLIError(f"no study {args.study!r} in {storage}; stored: {', '.join(names) or 'none'}")
        try:  # the address must be free and bindable before "serving" is printed
            family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((args.host, args.port))
        except OSError as exc:
            raise CLIError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc} (valid: a free port "
                           f"of this machine's address, e.g. --port 8081)") from None
        print(f"serving {storage} on http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
        from ..dashboard import feasible_best

        try:
            with feasible_best(storage_obj):
                run_server(storage_obj, host=args.host, port=args.port)
        except KeyboardInterrupt:
            pass
        return 0


class Validate(_Command):
    """Validate the search by full training: train the Pareto front (or the top K) plus N random
    complete trials with the standard recipe (nas/training/train.py) and store accuracy and loss curves on the
    study (converged: final train loss below 0.5 ln(classes)). Rerunning skips trials already
    validated with the same --epochs; an interrupted trial resumes from its last finished epoch."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--top", type=_int(1), default=None, metavar="K",
                       help="train the top K trials (feasible first, then non-dominated rank, then the first objective) instead of the Pareto front (default: the front)")
        p.add_argument("--random", type=_int(0), default=0, metavar="N", help="also train N randomly chosen other complete trials (default: %(default)s)")
        p.add_argument("--epochs", type=_int(1, 10000), default=10, help="training epochs per trial (default: %(default)s)")
        p.add_argument("--workers", type=_int(1, MAX_WORKERS), default=None, help="parallel trainings; 1 runs in process without Ray (default: GPUs x --trials-per-gpu, else CPU cores)")
        p.add_argument("--trials-per-gpu", type=_int(1, 64), default=1, help="trainings sharing one GPU (default: %(default)s)")
        p.add_argument("--ray-address", type=_ray_address, default=os.environ.get("RAY_ADDRESS") or None, metavar="ADDRESS",
                       help="train on an existing Ray cluster: 'auto' or HOST:PORT of its head (default: $RAY_ADDRESS, else a private Ray instance, or in process with --workers 1)")
        p.add_argument("--seed", type=_int(0, 2**32 - 1), default=None, help="seed of the random choice of trials (default: the study's seed)")
        p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"), help="mixed precision on CUDA (default: %(default)s: bf16 if supported, else fp16; CPU: off)")
        p.add_argument("--data-dir", default="data", help="where torchvision datasets are stored (default: %(default)s)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def take_action(self, args: argparse.Namespace) -> int:
        import optuna
        from tqdm.auto import tqdm

        from ..validate import ValidateOptions, ValidationError, load_study, run_validation

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = _storage_for(args, create=False)
        try:
            study = load_study(storage, args.study)
        except ValidationError as exc:
            raise CLIError(str(exc)) from None
        from ..study import complete_trials

        if not complete_trials(study):
            raise CLIError(f"study {study.study_name!r} has no complete trial to validate: run (or continue) "
                           f"`python -m nas search --study {study.study_name}` first")
        out_dir = Path(args.runs_dir) / study.study_name
        _check_writable(out_dir)
        options = ValidateOptions(epochs=args.epochs, top=args.top, n_random=args.random, workers=args.workers,
                                  seed=args.seed, trials_per_gpu=args.trials_per_gpu, data_dir=args.data_dir,
                                  amp=args.amp, ray_address=args.ray_address)
        bar = None

        def on_plan(plan: dict[str, Any]) -> None:
            nonlocal bar
            why = ", ".join(f"{k} {v}" for k, v in plan["by_reason"].items()) or "none"
            print(f"study {study.study_name!r}: {plan['selected']} trial(s) selected ({why}); "
                  f"{plan['skipped']} already validated with {args.epochs} epoch(s), {plan['to_train']} to train")
            bar = tqdm(total=plan["to_train"], unit="trial", disable=args.no_progress, dynamic_ncols=True)

        def on_update(status: dict[str, Any]) -> None:
            bar.update(1)
            bar.set_postfix(trial=status["trial"], acc=_fmt(status["values"].get("val_best_acc")),
                            diverged=status["diverged"], failed=status["failed"])

        try:
            stats = run_validation(study, out_dir, options, on_update=on_update, on_plan=on_plan)
        except ValidationError as exc:
            raise CLIError(str(exc)) from None
        except KeyboardInterrupt:
            print("interrupted: finished trials are stored; rerun the same command to continue "
                  "(the interrupted trial resumes from its checkpoint)", file=sys.stderr)
            return 130
        finally:
            if bar is not None:
                bar.close()
        _print_best_validated(study)
        print(f"trained {stats['trained']} trial(s) ({stats['diverged']} diverged, {stats['failed']} failed); "
              f"results in {out_dir / 'validation.csv'}; next: python -m nas report --study {study.study_name}"
              + (f" --runs-dir {args.runs_dir}" if args.runs_dir != "runs" else ""))
        return 0 if stats["failed"] == 0 else 1


class Report(_Command):
    """Write the validation report: Kendall tau / Spearman rho of every stored metric against trained
    accuracy and convergence, top-k hit rates, Pareto-front, scatter and convergence-boundary plots
    (RUNS_DIR/STUDY/report.html, plots/*.png, correlations.csv); prints the table."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--epochs", type=_int(1, 10000), default=None, help="use the validations made with this many epochs (default: the most common)")
        p.add_argument("--k", type=_int(1), default=None, help="k of the top-k hit rate (default: max(1, n // 4) for n validated trials)")

    def take_action(self, args: argparse.Namespace) -> int:
        import optuna

        from ..report import ReportError, write_report
        from ..validate import ValidationError, load_study

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = _storage_for(args, create=False)
        try:
            study = load_study(storage, args.study)
            out_dir = Path(args.runs_dir) / study.study_name
            _check_writable(out_dir)
            result = write_report(study, out_dir, epochs=args.epochs, k=args.k)
        except (ValidationError, ReportError) as exc:
            raise CLIError(str(exc)) from None
        print(result.text)
        print(f"\nreport: {result.html}\ncorrelations: {result.csv}\nplots: {result.plots_dir} ({len(result.plots)} PNG)")
        if not _print_best_validated(study):
            print(f"no validated trial in study {study.study_name!r}: every correlation above is undefined; train some "
                  f"with `python -m nas validate --study {study.study_name}` first", file=sys.stderr)
            return 1
        return 0


class Diagnose(_Command):
    """Gradient-noise diagnostics of one candidate (papers 000-003): per-layer norm profile, cross-seed
    alignment, covariance spectrum with its power-law fit, and SGN Gaussianity, at initialization and
    over a few training steps. Writes a table, summary.json and PNG plots."""

    parents = ("data",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--space", default="resnet_cifar", help="search space (default: %(default)s)")
        p.add_argument("--config", metavar="JSON", help="the candidate's config (default: sampled from the space with --seed)")
        p.add_argument("--study", type=_study_name, help="take the config of a trial of this study (with --trial)")
        p.add_argument("--trial", type=_int(0), help="trial number in --study")
        p.add_argument("--runs-dir", default="runs", help="where studies live (default: %(default)s)")
        p.add_argument("--storage", type=_storage_url, default=None, metavar="URL", help="Optuna storage of --study (default: RUNS_DIR/STUDY/study.db)")
        p.add_argument("--steps", type=_int(0, 1_000_000), default=50, help="training steps tracked after init (default: %(default)s)")
        p.add_argument("--history", type=_int(3, 100_000), default=32, help="minibatch gradients at fixed weights for spectrum and Gaussianity (default: %(default)s)")
        p.add_argument("--seeds", type=_int(2, 1000), default=4, help="independently initialized copies for the alignment (default: %(default)s)")
        p.add_argument("--seed", type=_int(0, 2**32 - 1), default=0, help="initialization and sampling seed (default: %(default)s)")
        p.add_argument("--out", default=None, help="output folder (default: RUNS_DIR/diagnose/SPACE-seedSEED or RUNS_DIR/STUDY/diagnose/trial_N)")

    def take_action(self, args: argparse.Namespace) -> int:
        from search_spaces import ConfigError

        from ..diagnose import DiagnoseOptions, diagnose, format_table

        if args.steps < 0 or args.history < 3 or args.seeds < 2:
            raise CLIError("need --steps >= 0, --history >= 3 and --seeds >= 2")
        bounds: dict[str, Any] = {}
        if args.study is not None or args.trial is not None:
            if args.study is None or args.trial is None:
                raise CLIError("--study and --trial go together")
            from ..study import StudyError, load_study

            try:
                study = load_study(_storage_for(args, create=False), args.study)
            except StudyError as exc:
                raise CLIError(str(exc)) from None
            if not 0 <= args.trial < len(study.trials):
                raise CLIError(f"study {args.study!r} has trials 0..{len(study.trials) - 1}, not {args.trial}")
            args.space = study.user_attrs.get("space", args.space)
            bounds = study.user_attrs.get("bounds", {}) or {}
            config = study.trials[args.trial].user_attrs.get("config")
            if config is None:
                raise CLIError(f"trial {args.trial} has no stored config (it failed before sampling)")
            if args.dataset == "auto" and "dataset" in study.user_attrs:
                args.dataset = study.user_attrs["dataset"]
            out = Path(args.out or Path(args.runs_dir) / args.study / "diagnose" / f"trial_{args.trial}")
        else:
            space = _space(args.space, {})
            if args.config:
                config = _json_arg(args.config, "--config")
            else:
                import optuna

                trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed)).ask()
                config = space.sample(trial)
            out = Path(args.out or Path(args.runs_dir) / "diagnose" / f"{args.space}-seed{args.seed}")
        space = _space(args.space, bounds)
        try:
            config = space.validate(config)
        except ConfigError as exc:
            raise CLIError(f"bad config: {exc}") from None
        dataset, _ = _dataset(args.dataset, args.data_dir)
        _check_writable(out)
        summary = diagnose(DiagnoseOptions(space=args.space, config=config, dataset=dataset, out_dir=out,
                                           data_dir=args.data_dir, bounds=bounds, steps=args.steps, seed=args.seed,
                                           seeds=args.seeds, history=args.history))
        print(f"space {args.space}, dataset {dataset}, config {json.dumps(config)}")
        print(format_table(summary))
        print(f"\nplots and summary.json in {out}")
        return 0


class Reproduce(_Command):
    """Re-measure the claims of the five source papers (000-003 and the thesis, 004), one registered
    protocol per claim, several seeds each, and give each a verdict (replicated / not replicated /
    inconclusive) from the 95% confidence interval of its effect. Writes reproduce.csv, reproduce.json and
    reproduce.html (one figure per claim) to --out; a rerun with the same settings skips finished claims."""

    parents = ("data",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("claims", nargs="*", default=["all"], metavar="CLAIM",
                       help="claims to run: all (default), a paper (000, 001, 002, 003, 004) or claim keys; "
                            "--list shows them")
        p.add_argument("--list", action="store_true", help="list the claims with their protocols and exit")
        p.add_argument("--quick", action="store_true",
                       help="small protocol sizes: every claim on a CPU in minutes (default: the full protocol)")
        p.add_argument("--seeds", type=_int(1, 1000), default=None,
                       help="independent seeds per claim (default: 5 with --quick, else 10)")
        p.add_argument("--population", type=_int(4, 100_000), default=None,
                       help="networks of the thesis's population claims (default: 48 with --quick, else 96)")
        p.add_argument("--out", default=None, help="output folder (default: runs/reproduce-DATASET[-quick])")
        p.add_argument("--no-progress", action="store_true", help="no progress lines")

    def take_action(self, args: argparse.Namespace) -> int:
        from ..reproduce import CLAIMS, Context, format_table, run_claims, select_claims

        try:
            keys = select_claims(args.claims)
        except KeyError as exc:
            raise CLIError(str(exc.args[0])) from None
        if args.list:
            for k in keys:
                c = CLAIMS[k]
                print(f"{k}  ({c.paper}, {c.section})\n  claim: {c.statement}\n  protocol: {c.protocol}\n")
            return 0
        dataset, _ = _dataset("mnist5k" if args.dataset == "auto" else args.dataset, args.data_dir)
        out = Path(args.out or Path("runs") / f"reproduce-{dataset}{'-quick' if args.quick else ''}")
        _check_writable(out)
        t0 = time.monotonic()

        def progress(text: str) -> None:
            if not args.no_progress:
                print(f"[{time.monotonic() - t0:6.0f}s] {text}", file=sys.stderr, flush=True)

        ctx = Context.make(dataset, args.seeds, args.quick, args.population, args.data_dir, progress)

        def on_claim(row) -> None:
            progress(f"{row['claim']}: {row['verdict']} ({row['seconds']:.0f} s)")

        rows = run_claims(keys, ctx, out, on_claim=on_claim)
        print(f"dataset {dataset}, {ctx.seeds} seed(s), population {ctx.population}, "
              f"{'quick' if args.quick else 'full'} protocol")
        print(format_table(rows))
        print(f"\n{out / 'reproduce.html'}, reproduce.csv, reproduce.json")
        return 0


COMMANDS: dict[str, type[_Command]] = {
    "search": Search,
    "score": Score,
    "spaces": Spaces,
    "objectives": Objectives,
    "dashboard": Dashboard,
    "validate": Validate,
    "report": Report,
    "diagnose": Diagnose,
    "reproduce": Reproduce,
}


def _parents() -> dict[str, argparse.ArgumentParser]:
    study = _Parser(add_help=False)
    study.add_argument("--study", type=_study_name, default=None, help="study name (search default: SPACE-DATASET-TIME)")
    study.add_argument("--runs-dir", default="runs", help="output folder; the study lives in RUNS_DIR/STUDY/ (default: %(default)s)")
    study.add_argument("--storage", type=_storage_url, default=None, metavar="URL", help="Optuna storage URL, any RDB URL (default: sqlite:///RUNS_DIR/STUDY/study.db)")
    data = _Parser(add_help=False)
    data.add_argument("--dataset", default="auto", help="cifar10 | cifar100 | mnist | fashion_mnist | svhn | mnist5k | synthetic | auto (CIFAR-10 when available, else mnist5k) (default: %(default)s)")
    data.add_argument("--data-dir", default="data", help="where torchvision datasets are stored/downloaded (default: %(default)s)")
    return {"study": study, "data": data}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m nas",
        description="gradnas: architecture and hyperparameter search by gradient metrics.",
        epilog="Documentation: `python -m nas objectives METRIC` prints a metric's definition and math, "
               "`python -m nas spaces SPACE` a space's dimensions, building rules and math, "
               "`python -m nas objectives --combined` the combined score; COMMAND --help for each command. "
               "-v logs each trial's failure reason; see README.md, Troubleshooting.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log trial failures and progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parents = _parents()
    for name, cls in COMMANDS.items():
        cmd = cls()
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(
            name, help=re.split(r"\.\s", " ".join(doc.split()))[0].rstrip(".").replace("%", "%%"), description=doc,
            parents=[parents[k] for k in cls.parents],
        )
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd, subparser=p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, with a one-line message)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler.take_action(args))
    except BrokenPipeError:  # `nas objectives | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
