"""``python -m nas report``: the validation report of a study (correlations, hit rates, plots)."""

from __future__ import annotations

import argparse
import sys

from .args import CLIError, Command, add_epochs, int_in
from .common import check_writable, storage_for
from .output import print_best_validated

__all__ = ["Report"]


class Report(Command):
    """Write the validation report: Kendall tau / Spearman rho of every stored metric against trained
    accuracy and convergence, top-k hit rates, Pareto-front, scatter and convergence-boundary plots
    (RUNS_DIR/STUDY/report.html, plots/*.png, correlations.csv); prints the table."""

    parents = ("study",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_epochs(p, default=None, help="use the validations made with this many epochs (default: the most common)")
        p.add_argument("--k", type=int_in(1), default=None, help="k of the top-k hit rate (default: max(1, n // 4) for n validated trials)")

    def take_action(self, args: argparse.Namespace) -> int:
        import optuna

        from ..report import ReportError, write_report
        from ..validate import ValidationError, load_study

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = storage_for(args, create=False)
        try:
            study = load_study(storage, args.study)
            from ..search.keys import StudyFolder

            out_dir = StudyFolder.of(args.runs_dir, study.study_name).root
            check_writable(out_dir)
            result = write_report(study, out_dir, epochs=args.epochs, k=args.k)
        except (ValidationError, ReportError) as exc:
            raise CLIError(str(exc)) from None
        print(result.text)
        print(f"\nreport: {result.html}\ncorrelations: {result.csv}\nplots: {result.plots_dir} ({len(result.plots)} PNG)")
        if not print_best_validated(study):
            print(f"no validated trial in study {study.study_name!r}: every correlation above is undefined; train some "
                  f"with `python -m nas validate --study {study.study_name}` first", file=sys.stderr)
            return 1
        return 0
