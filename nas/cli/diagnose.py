"""``python -m nas diagnose``: gradient-noise diagnostics of one candidate (a config, or a trial of a study)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .args import (
    CLIError, Command, add_config, add_out, add_runs_dir, add_seed, add_seeds, add_space, add_storage, add_study,
    int_in,
)
from .common import check_space_fits, check_writable, json_arg, open_dataset, open_space, storage_for

__all__ = ["Diagnose"]


class Diagnose(Command):
    """Gradient-noise diagnostics of one candidate (papers 000-003): per-layer norm profile, cross-seed
    alignment, covariance spectrum with its power-law fit, and SGN Gaussianity, at initialization and
    over a few training steps. Writes a table, summary.json and PNG plots."""

    parents = ("data",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_space(p)
        add_config(p, help="the candidate's config (default: sampled from the space with --seed)")
        add_study(p, help="take the config of a trial of this study (with --trial)")
        p.add_argument("--trial", type=int_in(0), help="trial number in --study")
        add_runs_dir(p, help="where studies live (default: %(default)s)")
        add_storage(p, help="Optuna storage of --study (default: RUNS_DIR/STUDY/study.db)")
        p.add_argument("--steps", type=int_in(0, 1_000_000), default=50, help="training steps tracked after init (default: %(default)s)")
        p.add_argument("--history", type=int_in(3, 100_000), default=32, help="minibatch gradients at fixed weights for spectrum and Gaussianity (default: %(default)s)")
        add_seeds(p, lo=2, default=4, help="independently initialized copies for the alignment (default: %(default)s)")
        add_seed(p, help="initialization and sampling seed (default: %(default)s)")
        add_out(p, "RUNS_DIR/diagnose/SPACE-seedSEED or RUNS_DIR/STUDY/diagnose/trial_N")

    def take_action(self, args: argparse.Namespace) -> int:
        from search_spaces import ConfigError

        from ..diagnose import DiagnoseOptions, diagnose, format_table

        bounds: dict[str, Any] = {}
        if args.study is not None or args.trial is not None:
            if args.study is None or args.trial is None:
                raise CLIError("--study and --trial go together")
            from ..study import StudyError, load_study

            try:
                study = load_study(storage_for(args, create=False), args.study)
            except StudyError as exc:
                raise CLIError(str(exc)) from None
            if args.trial >= len(study.trials):
                raise CLIError(f"study {args.study!r} has trials 0..{len(study.trials) - 1}, not {args.trial}")
            args.space = study.user_attrs.get("space", args.space)
            bounds = study.user_attrs.get("bounds", {}) or {}
            config = study.trials[args.trial].user_attrs.get("config")
            if config is None:
                raise CLIError(f"trial {args.trial} has no stored config (it failed before sampling)")
            if args.dataset == "auto" and "dataset" in study.user_attrs:
                args.dataset = study.user_attrs["dataset"]
            from ..search.keys import StudyFolder

            out = Path(args.out or StudyFolder.of(args.runs_dir, args.study).diagnose(args.trial))
        else:
            space = open_space(args.space, {})
            if args.config:
                config = json_arg(args.config, "--config")
            else:
                import optuna

                trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed)).ask()
                config = space.sample(trial)
            out = Path(args.out or Path(args.runs_dir) / "diagnose" / f"{args.space}-seed{args.seed}")
        space = open_space(args.space, bounds)
        try:
            config = space.validate(config)
        except ConfigError as exc:
            raise CLIError(f"bad config: {exc}") from None
        dataset, data = open_dataset(args.dataset, args.data_dir)
        check_space_fits(space, data, config)
        check_writable(out)
        summary = diagnose(DiagnoseOptions(space=args.space, config=config, dataset=dataset, out_dir=out,
                                           data_dir=args.data_dir, bounds=bounds, steps=args.steps, seed=args.seed,
                                           seeds=args.seeds, history=args.history))
        print(f"space {args.space}, dataset {dataset}, config {json.dumps(config)}")
        print(format_table(summary))
        print(f"\nplots and summary.json in {out}")
        return 0
