"""``python -m nas score``: every metric of one candidate at initialization (and after --early-steps)."""

from __future__ import annotations

import argparse
import json
import sys

from .args import CLIError, Command, add_config, add_metrics, add_probe_options, add_seed, add_space, int_in
from .common import (
    check_group_size, check_probe_size, check_space_fits, json_arg, metric_list, open_dataset, open_space,
)
from .output import fmt, table

__all__ = ["Score"]

class Score(Command):
    """Score one candidate (a config, an NB201 arch string or index) and print every metric at
    initialization and, with --early-steps, after a few training steps."""

    parents = ("data",)

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        add_space(p)
        add_config(p, help="config (missing fields take defaults; default: the space's default config)")
        p.add_argument("--arch", help="nb201 only: an arch string like '|nor_conv_3x3~0|+|...|'")
        p.add_argument("--index", type=int_in(0, 15624), help="nb201 only: a NAS-Bench-201 index 0..15624")
        add_metrics(p, default="all", help="comma-separated metrics or 'all' (default: %(default)s)")
        add_probe_options(p, early_steps=0,
                          early_help="training steps before the second scoring (default: %(default)s = init only)")
        add_seed(p, help="initialization seed (default: %(default)s)")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def take_action(self, args: argparse.Namespace) -> int:
        from objectives import registry
        from search_spaces import ConfigError

        from ..evaluate import TrialFailed, TrialSpec, evaluate

        space = open_space(args.space, {})
        config = json_arg(args.config, "--config")
        if args.arch is not None or args.index is not None:
            if args.space != "nb201":
                raise CLIError("--arch/--index need --space nb201")
            from search_spaces import nb201

            config["arch"] = args.arch if args.arch is not None else nb201.index_to_arch(args.index)
        try:
            config = space.validate(config)
        except (ConfigError, ValueError) as exc:
            raise CLIError(f"bad config: {exc}") from None
        metrics = metric_list(args.metrics)
        check_group_size(args)
        dataset, data = open_dataset(args.dataset, args.data_dir)
        check_probe_size(args.probe_size, data)
        check_space_fits(space, data, config)
        spec = TrialSpec(space=args.space, config=config, dataset=dataset, data_dir=args.data_dir,
                         metrics=metrics, early_steps=args.early_steps, probe_size=args.probe_size,
                         seed=args.seed, metric_options={"group_size": args.group_size})
        try:
            result = evaluate(spec)
        except TrialFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if not args.early_steps:  # nothing was trained: no early values to show as if measured
            from ..search.keys import TRAINING_ONLY_KEYS

            for key in TRAINING_ONLY_KEYS:
                result.pop(key, None)
        if args.json:
            print(json.dumps({"config": config, **result}, indent=1, default=str))
            return 0
        print(f"space {args.space}, dataset {dataset}, config {json.dumps(config)}")
        rows = []
        for m in metrics:
            row = [m, registry.get(m).direction, result.get(m)]
            if args.early_steps:
                row.append(result.get(f"{m}@early"))
            rows.append(row)
        print(table(rows, ["metric", "direction", "init"] + (["early"] if args.early_steps else [])))
        extra = ["loss_init", "loss_early", "loss_drop", "train_kappa_w", "params", "flops", "time_total", "device"]
        print("\n" + "  ".join(f"{k}={fmt(result.get(k))}" for k in extra if k in result))
        return 0
