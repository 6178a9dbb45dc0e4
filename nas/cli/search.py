"""``python -m nas search``: a budgeted multi-fidelity search (default, or --budget) or a proxy-only search of
--trials N trials. Parses and checks the options, opens the study, runs it with a progress display
(:mod:`nas.cli.progress`) and prints the result: the Pareto front and, after a budget search, the best trained
model."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .args import (
    CLIError, Command, add_epochs, add_execution_options, add_metrics, add_no_progress, add_probe_options, add_seed,
    add_space, int_in, seconds,
)
from .common import (
    check_group_size, check_probe_size, check_writable, json_arg, metric_list, open_dataset, open_space,
    remove_if_empty, storage_for,
)
from .output import fmt, table

__all__ = ["Search", "MIN_BUDGET_S"]

#: The shortest --budget accepted (the pilot candidates alone take seconds).
MIN_BUDGET_S = 30.0


class Search(Command):
    """Search for a network that trains. By default (or with --budget) a budgeted multi-fidelity search:
    many candidates scored by gradient metrics at initialization, the best promoted to early training
    steps, a short training and a full training (successive halving, planned from the measured cost of
    each rung), ending with the best trained model (runs/STUDY/best_model.pt). With --trials N, a
    proxy-only multi-objective search of N trials scored at init and after --early-steps steps (rerunning
    continues up to N)."""

    parents = ("study", "data")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_space(p, help="search space (see `spaces`; default: %(default)s)")
        p.add_argument("--bounds", metavar="JSON", help='narrow the space, e.g. \'{"width": [8, 16], "blocks": [1, 2]}\' (default: full space)')
        p.add_argument("--smoke", action="store_true", help="use the space's tiny smoke-test bounds (CPU demos; default: off)")
        p.add_argument("--budget", default=None, metavar="DURATION",
                       help="wall-clock budget of a multi-fidelity search, e.g. 20m, 1h, 1h30m (default without --trials: 15m on CPU with the space's CPU bounds, 1h on a GPU)")
        p.add_argument("--trials", type=int_in(1), default=None, metavar="N", help="without --budget: a proxy-only search to N COMPLETE trials, rerunning continues up to N; with --budget: the most candidates at rung 0 (default: budget search)")
        add_epochs(p, help="budget search: epochs of the finalists' full training, halved until one fits the budget (default: %(default)s)")
        p.add_argument("--eta", type=int_in(2, 100), default=3, help="budget search: reduction factor between rungs (default: %(default)s)")
        p.add_argument("--objectives", default=None, metavar="KEY:DIR,...",
                       help="objectives, e.g. kappa_w:max,train_loss_smooth_min:min; KEY is a metric (at init), METRIC@early, or loss_drop/train_loss_smooth_min/relative_step/params/... (default: the leading inputs of the combined gradnas score in their directions measured on the proxy lab, after the early steps or, with --early-steps 0, at init; `objectives --combined` lists them). Trials are ranked for validation by the combined score")
        p.add_argument("--constraint", action="append", default=None, metavar="KEY<=X",
                       help="feasibility constraint, repeatable, e.g. 'rank_input<=0.15' (default: none)")
        add_metrics(p, default=None, help="metrics scored on every trial, comma-separated or 'all' (default: the inputs of the combined gradnas score; objectives/constraints are always added)")
        p.add_argument("--sampler", default="nsga2", help="nsga2 | tpe | random (default: %(default)s)")
        add_execution_options(p, what="trials", threads=True, ray_help=(
            "run the trials on an existing Ray cluster: 'auto' (a `ray start` cluster on this machine) or HOST:PORT of its head; --workers then defaults to the cluster's GPUs x --trials-per-gpu, else its CPUs (default: $RAY_ADDRESS, else a private Ray instance, or in process with --workers 1)"))
        p.add_argument("--stale-grace", type=seconds, default=None, metavar="SECONDS",
                       help="another driver sharing the study takes a running trial for stale (fails it, retries its config and seed) after this long without its driver's heartbeat (default: 120)")
        add_probe_options(p, early_steps=50,
                          early_help="training steps between the two scorings; their loss curve is the strongest signal measured (default: %(default)s)",
                          probe_help="examples in the fixed probe batch (default: %(default)s)")
        p.add_argument("--trial-timeout", type=seconds, default=None, metavar="SECONDS", help="fail a trial that runs longer (default: no limit)")
        p.add_argument("--max-failures", type=int_in(1), default=None, help="stop after this many failed trials in one run (default: max(10, --trials))")
        add_seed(p, help="seed of the sampler, data split and trial initializations (default: %(default)s)")
        add_no_progress(p)

    def take_action(self, args: argparse.Namespace) -> int:
        import torch

        # before any work: a process keeps the oneDNN kernels chosen under its first thread count, so the
        # driver (which runs the trials itself with --workers 1) uses the trials' count from the start
        torch.set_num_threads(args.threads)
        from ..schedule import BudgetError, parse_duration
        from ..study import (
            DEFAULT_CONSTRAINTS, SAMPLERS, StudyError, budget_metrics, budget_objectives, combined_metrics,
            default_objectives, metric_of, parse_constraint, parse_objectives,
        )

        budget_mode = args.budget is not None or args.trials is None
        if args.budget is not None:
            try:
                args.budget_s = parse_duration(args.budget)
            except BudgetError as exc:
                raise CLIError(f"--budget: {exc}") from None
            if args.budget_s < MIN_BUDGET_S:
                raise CLIError(f"--budget {args.budget} is too short: a budget search needs at least "
                               f"{MIN_BUDGET_S:g}s (measuring the first candidates takes some)")
        if args.sampler not in SAMPLERS:
            raise CLIError(f"unknown sampler {args.sampler!r}; valid: {', '.join(SAMPLERS)}")
        bounds = json_arg(args.bounds, "--bounds")
        space = open_space(args.space, bounds, args.smoke)
        gpu = _has_cuda()
        if budget_mode and not bounds and not args.smoke and not gpu and space.cpu_bounds:
            space = space.with_bounds(**space.cpu_bounds)  # a default that a CPU trains within the budget
        if budget_mode and args.budget is None:
            args.budget_s = 3600.0 if gpu else 900.0
        try:
            objectives = parse_objectives(args.objectives or (budget_objectives() if budget_mode
                                                              else default_objectives(args.early_steps)))
            if budget_mode:
                _check_budget_objectives(objectives)
            raw = DEFAULT_CONSTRAINTS if args.constraint is None else [c for c in args.constraint if c != "none"]
            constraints = [parse_constraint(c) for c in raw]
        except StudyError as exc:
            raise CLIError(str(exc)) from None
        referenced = [m for m in (metric_of(k) for k in [o.key for o in objectives] + [c.key for c in constraints]) if m]
        metrics = metric_list(args.metrics, referenced) if args.metrics is not None else \
            list(dict.fromkeys([*(budget_metrics() if budget_mode else combined_metrics()), *referenced]))
        check_group_size(args)
        dataset, data = open_dataset(args.dataset, args.data_dir)
        check_probe_size(args.probe_size, data)
        study_name = args.study or f"{args.space}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
        out_dir = Path(args.runs_dir) / study_name
        check_writable(out_dir)
        args.study = study_name
        storage = storage_for(args, create=True)
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

    from ..budget import BudgetSettings, run_budget
    from ..runner import default_workers
    from ..schedule import BudgetError, format_duration
    from ..study import export_trials
    from ..training import resolve_device
    from .progress import BudgetProgress

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
    interrupted, stats = False, None
    progress = BudgetProgress(args.budget_s, disable=args.no_progress)
    try:
        with progress:
            stats = run_budget(study, space, run, budget, objectives, constraints, out_dir, data.input_shape,
                               int(data.train_x.shape[0]), on_event=progress.on_event)
    except KeyboardInterrupt:
        interrupted = True
    except BudgetError as exc:
        raise CLIError(str(exc)) from None
    finally:
        csv = export_trials(study, out_dir / "trials.csv")
    if interrupted:
        print(f"interrupted: finished trials and checkpoints are saved ({csv}); rerun to start a new budget on the "
              f"same study", file=sys.stderr)
        return 130
    _print_front(study, objectives)
    wall = time.monotonic() - progress.t0
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

    from ..runner import run_trials
    from ..study import complete_trials, export_trials
    from .progress import TrialsProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _open_search_study(args, study_name, storage, objectives, constraints, settings, out_dir)
    print(f"study {study_name!r} in {storage}  (resume: rerun with --study {study_name})")
    run = _search_settings(args, settings, trials=args.trials, workers=args.workers)
    progress = TrialsProgress(study, objectives, total=args.trials, already=len(complete_trials(study)),
                              disable=args.no_progress)
    interrupted = False
    try:
        with progress:
            stats = run_trials(study, space, run, objectives, constraints, on_update=progress.on_update)
    except KeyboardInterrupt:
        interrupted = True
        stats = None
    finally:
        csv = export_trials(study, out_dir / "trials.csv")
    if interrupted:
        print(f"interrupted: finished trials are saved; rerun the same command to continue ({csv})", file=sys.stderr)
        return 130
    _print_front(study, objectives)
    print(f"\nstudy database: {storage}\ntrials table:   {csv}")
    print(f"completed {stats['completed']} and failed {stats['failed']} trial(s) in this run; "
          f"{stats['total_complete']}/{args.trials} complete in the study")
    return 0 if stats["total_complete"] >= args.trials else 1


def _open_search_study(args, study_name, storage, objectives, constraints, settings, out_dir):
    """Create or resume the search's study; a storage that cannot be opened leaves no empty study folder."""
    from ..study import StudyError, open_study

    try:
        return open_study(study_name, storage, objectives, constraints, args.sampler, args.seed, settings)
    except StudyError as exc:
        remove_if_empty(out_dir)
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
        brief = ", ".join(f"{k}={fmt(v)}" for k, v in cfg.items() if k in t.params)
        rows.append([t.number, *t.values, brief])
    print(f"\nPareto front ({note}, {len(front)} of {len(done)} complete trial(s)):")
    print(table(rows, ["trial", *[str(o) for o in objectives], "config"]))
