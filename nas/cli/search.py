"""``python -m nas search``: a budgeted multi-fidelity search (default, or --budget) or a proxy-only search of
--trials N trials. Parses and checks the options, opens the study, runs it with a progress display
(:mod:`nas.cli.progress`) and prints the result: the Pareto front and, after a budget search, the best trained
model. The search itself is the library's (:class:`nas.search.api.Search`): this module builds its
:class:`~nas.search.SearchConfig` from the options, runs it and prints."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .args import (
    CLIError, Command, add_data_options, add_epochs, add_execution_options, add_metrics, add_no_progress, add_probe_options, add_seed,
    add_space, int_in, seconds,
)
from .common import json_arg, warn
from .output import fmt, table

__all__ = ["Search"]


class Search(Command):
    """Search for a network that trains. By default (or with --budget) a budgeted multi-fidelity search:
    many candidates scored by gradient metrics at initialization, the best promoted to early training
    steps, a short training and a full training (successive halving, planned from the measured cost of
    each rung), ending with the best trained model (runs/STUDY/best_model.pt). With --trials N, a
    proxy-only multi-objective search of N trials scored at init and after --early-steps steps (rerunning
    continues up to N)."""

    parents = ("study", "data")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_space(p, default=None, help="search space: a name (see `spaces`) or your own, package.module:attr or "
                                        "my_space.py:attr (see docs/spaces.md) (default: resnet_cifar; mlp_looks_linear "
                                        "for a table: dataset)")
        p.add_argument("--target", default=None, metavar="COLUMN",
                       help="the label column of a --dataset table:PATH (default: none)")
        add_data_options(p)
        p.add_argument("--bounds", metavar="JSON", help='narrow the space, e.g. \'{"width": [8, 16], "blocks": [1, 2]}\' (default: full space)')
        p.add_argument("--smoke", action="store_true", help="use the space's tiny smoke-test bounds (CPU demos; default: off)")
        p.add_argument("--budget", default=None, metavar="DURATION",
                       help="wall-clock budget of a multi-fidelity search, e.g. 20m, 1h, 1h30m (default without --trials: 15m on CPU with the space's CPU bounds, 1h on a GPU)")
        p.add_argument("--trials", type=int_in(1), default=None, metavar="N", help="without --budget: a proxy-only search to N COMPLETE trials, rerunning continues up to N; with --budget: the most candidates at rung 0 (default: budget search)")
        add_epochs(p, help="budget search: epochs of the finalists' full training, halved until one fits the budget (default: %(default)s)")
        p.add_argument("--eta", type=int_in(2, 100), default=3, help="budget search: reduction factor between rungs (default: %(default)s)")
        p.add_argument("--promotion", choices=("auto", "async", "sync"), default="auto",
                       help="budget search: async climbs a candidate as soon as it is in the top 1/eta of those done at its rung (ASHA; no worker waits for a rung), sync promotes a rung once all its candidates are in; auto: async from 4 workers on, else sync (default: %(default)s)")
        p.add_argument("--brackets", type=int_in(1, 4), default=1, metavar="N",
                       help="budget search: up to N Hyperband brackets when the budget allows; the later ones admit candidates at the training rungs whatever their rung-0 score (default: %(default)s)")
        p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=False,
                       help="budget search, asynchronous climb: rank rung 0 by the combined score refit on the 50-step losses and short-rung accuracies of the candidates trained so far, once there are 10 (no extra training; rung 0 also scores the cheap metrics of the rung-0 pool for the refit to weigh, nas.lab.calibration.POOL_METRICS; docs/budget-search.md) (default: off)")
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
        from ..search.plan import BudgetError
        from ..search.api import Search as Core
        from ..search.config import SearchConfig, SearchError

        config = SearchConfig(
            space=args.space, bounds=json_arg(args.bounds, "--bounds"), smoke=args.smoke, dataset=args.dataset,
            target=args.target, loss_fn=args.loss, data_memory_limit=args.max_memory,
            data_dir=args.data_dir, budget=args.budget, trials=args.trials, epochs=args.epochs, eta=args.eta,
            promotion=args.promotion, brackets=args.brackets, calibrate=args.calibrate,
            objectives=args.objectives, constraints=args.constraint, metrics=args.metrics, sampler=args.sampler,
            study=args.study, storage=args.storage, runs_dir=args.runs_dir, workers=args.workers,
            trials_per_gpu=args.trials_per_gpu, threads=args.threads, ray_address=args.ray_address,
            stale_grace=args.stale_grace, early_steps=args.early_steps, probe_size=args.probe_size,
            group_size=args.group_size, trial_timeout=args.trial_timeout, max_failures=args.max_failures,
            seed=args.seed,
        )
        try:
            core = Core(config, warn=warn)
        except SearchError as exc:
            raise CLIError(str(exc)) from None
        try:
            return (_run_budget_search if core.config.mode == "budget" else _run_search)(core, args.no_progress)
        except BudgetError as exc:
            raise CLIError(str(exc)) from None


def _run_budget_search(core, no_progress: bool) -> int:
    from ..search.plan import format_duration
    from ..search.executor import default_workers
    from ..training import resolve_device
    from .progress import BudgetProgress

    c = core.config
    data = c.resolved["data"]
    workers = c.workers or default_workers(c.trials_per_gpu)
    bounds = ", ".join(f"{k} {v}" for k, v in c.bounds.items()) or "full space"
    print(f"study {c.study!r} in {c.storage}")
    print(f"budget search: dataset {c.dataset} ({data.train_size} train / {data.test_size} test), "
          f"device {resolve_device(None).type}, workers {workers}, budget {format_duration(c.budget_s)}, bounds: {bounds}")
    progress = BudgetProgress(c.budget_s, disable=no_progress)
    try:
        with progress:
            result = core.run(on_event=progress.on_event)
    except KeyboardInterrupt:
        print(f"interrupted: finished candidates, the plan and checkpoints are saved ({c.folder.trials_csv}); rerun "
              f"the same command to continue the climb with the budget left", file=sys.stderr)
        return 130
    stats = result.stats
    _print_trained(core.study, (result.best or {}).get("trial"))
    wall = time.monotonic() - progress.t0
    rungs = ", ".join(f"{k} {v}" for k, v in stats["rungs"].items())
    print(f"\nstudy database: {c.storage}\ntrials table:   {c.folder.trials_csv}")
    print(f"wall time {format_duration(wall)} of {format_duration(c.budget_s)}; candidates per rung: {rungs}; "
          f"{stats['failed']} failed")
    best = stats.get("best")
    if not best:
        print("no candidate finished its full training: give a larger --budget or smaller --bounds", file=sys.stderr)
        return 1
    curve = ", ".join(f"{a:.3f}" if isinstance(a, float) else str(a) for a in best.get("acc_curve") or [])
    diverged = " (its training diverged: no finalist trained cleanly; try a larger --budget)" if best.get("diverged") else ""
    if best.get("task") == "regression":  # no accuracy: the test loss of the dataset's loss
        curve = ", ".join(f"{a:.4g}" if isinstance(a, float) else str(a) for a in best.get("test_loss_curve") or [])
        measure = f"test loss {best['test_loss']:.4g}" if best.get("test_loss") is not None else "no finite test loss"
    else:
        measure = f"test accuracy {best['test_acc']:.4f}"
    print(f"best trained model: trial {best['trial']}, {measure} after {best['epochs']} "
          f"epoch(s){diverged} (per epoch: {curve})\n  config: {json.dumps(best['config'])}\n  weights: {best['model']}")
    _next_steps(c, best)
    return 0


def _print_trained(study, best: int | None) -> None:
    """The candidates the budget search trained (the rung they reached, their accuracy), best marked; the
    rung-0 objective values of every candidate are in the dashboard and trials.csv."""
    from ..search.keys import CONFIG, RUNG

    rows = []
    for t in study.get_trials(deepcopy=False):
        acc = t.user_attrs.get("val_final_acc")
        if t.user_attrs.get(RUNG) not in ("short", "full") or acc is None:
            continue
        cfg = t.user_attrs.get(CONFIG, {})
        brief = ", ".join(f"{k}={fmt(v)}" for k, v in cfg.items() if k in t.params)
        epochs = len(t.user_attrs.get("val_acc_curve") or [])
        rows.append([("* " if t.number == best else "") + str(t.number), t.user_attrs[RUNG], epochs, acc,
                     t.user_attrs.get("params"), brief])
    if not rows:
        return
    rows.sort(key=lambda r: (r[1] != "full", -(r[3] if isinstance(r[3], (int, float)) else -1.0), r[4] or 0))
    print(f"\ntrained candidates ({len(rows)}; * = the result: the finalist with the highest final test accuracy, "
          f"ties by fewer parameters; the others stopped after the short rung):")
    print(table(rows, ["trial", "rung", "epochs", "test acc", "params", "config"]))


def _next_steps(c, best: dict) -> None:
    """What to do next, with this study's name in every command."""
    study = f"--study {c.study}" + (f" --runs-dir {c.runs_dir}" if c.runs_dir != "runs" else "")
    print(f"\nnext:\n  python -m nas report {study}              # how well the rung scores predicted accuracy"
          f"\n  python -m nas dashboard {study}           # every candidate in optuna-dashboard"
          f"\n  python -m nas validate {study} --top 5    # train the 5 best-scored candidates fully"
          f"\n  python -c \"import nas; print(nas.load_model('{best['model']}'))\"   # the trained model")


def _run_search(core, no_progress: bool) -> int:
    from ..search.ranking import complete_trials
    from .progress import TrialsProgress

    c, study = core.config, core.study
    print(f"study {c.study!r} in {c.storage}  (resume: rerun with --study {c.study})")
    progress = TrialsProgress(study, c.resolved["objectives"], total=c.trials, already=len(complete_trials(study)),
                              disable=no_progress)
    try:
        with progress:
            stats = core.run(on_update=progress.on_update).stats
    except KeyboardInterrupt:
        print(f"interrupted: finished trials are saved; rerun the same command to continue ({c.folder.trials_csv})",
              file=sys.stderr)
        return 130
    _print_front(study, c.resolved["objectives"])
    print(f"\nstudy database: {c.storage}\ntrials table:   {c.folder.trials_csv}")
    print(f"completed {stats['completed']} and failed {stats['failed']} trial(s) in this run; "
          f"{stats['total_complete']}/{c.trials} complete in the study")
    return 0 if stats["total_complete"] >= c.trials else 1


def _print_front(study, objectives) -> None:
    from ..search.ranking import best_trials, complete_trials

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
