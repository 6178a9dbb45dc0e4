"""``python -m nas validate``: train the chosen trials of a study in full and store their curves."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .args import CLIError, Command, add_data_dir, add_epochs, add_execution_options, add_no_progress, add_seed, int_in
from .common import check_writable, storage_for
from .output import fmt, print_best_validated

__all__ = ["Validate"]


class Validate(Command):
    """Validate the search by full training: train the Pareto front (or the top K) plus N random
    complete trials with the standard recipe (nas/training/train.py) and store accuracy and loss curves on the
    study (converged: final train loss below 0.5 ln(classes)). Rerunning skips trials already
    validated with the same --epochs; an interrupted trial resumes from its last finished epoch."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--top", type=int_in(1), default=None, metavar="K",
                       help="train the top K trials (feasible first, then non-dominated rank, then the first objective) instead of the Pareto front (default: the front)")
        p.add_argument("--random", type=int_in(0), default=0, metavar="N", help="also train N randomly chosen other complete trials (default: %(default)s)")
        add_epochs(p, help="training epochs per trial (default: %(default)s)")
        add_execution_options(p, what="trainings", ray_help=(
            "train on an existing Ray cluster: 'auto' or HOST:PORT of its head (default: $RAY_ADDRESS, else a private Ray instance, or in process with --workers 1)"))
        add_seed(p, default=None, help="seed of the random choice of trials (default: the study's seed)")
        p.add_argument("--amp", default="auto", choices=("auto", "bf16", "fp16", "off"), help="mixed precision on CUDA (default: %(default)s: bf16 if supported, else fp16; CPU: off)")
        add_data_dir(p, help="where torchvision datasets are stored (default: %(default)s)")
        add_no_progress(p)

    def take_action(self, args: argparse.Namespace) -> int:
        import optuna
        from tqdm.auto import tqdm

        from ..search.ranking import complete_trials
        from ..validate import ValidateOptions, ValidationError, load_study, run_validation

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = storage_for(args, create=False)
        try:
            study = load_study(storage, args.study)
        except ValidationError as exc:
            raise CLIError(str(exc)) from None
        if not complete_trials(study):
            raise CLIError(f"study {study.study_name!r} has no complete trial to validate: run (or continue) "
                           f"`python -m nas search --study {study.study_name}` first")
        from ..search.keys import StudyFolder

        out_dir = StudyFolder.of(args.runs_dir, study.study_name).root
        check_writable(out_dir)
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
            bar.set_postfix(trial=status["trial"], acc=fmt(status["values"].get("val_best_acc")),
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
        print_best_validated(study)
        print(f"trained {stats['trained']} trial(s) ({stats['diverged']} diverged, {stats['failed']} failed); "
              f"results in {StudyFolder(out_dir).validation_csv}; next: python -m nas report --study {study.study_name}"
              + (f" --runs-dir {args.runs_dir}" if args.runs_dir != "runs" else ""))
        return 0 if stats["failed"] == 0 else 1
