"""``python -m nas reproduce``: re-measure the source papers' claims and give each a verdict."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .args import CLIError, Command, add_no_progress, add_out, add_seeds, int_in
from .common import check_writable, open_dataset

__all__ = ["Reproduce"]


class Reproduce(Command):
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
        add_seeds(p, lo=1, default=None, help="independent seeds per claim (default: 5 with --quick, else 10)")
        p.add_argument("--population", type=int_in(4, 100_000), default=None,
                       help="networks of the thesis's population claims (default: 48 with --quick, else 96)")
        add_out(p, "runs/reproduce-DATASET[-quick]")
        add_no_progress(p, what="lines")

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
        dataset, _ = open_dataset("mnist5k" if args.dataset == "auto" else args.dataset, args.data_dir)
        out = Path(args.out or Path("runs") / f"reproduce-{dataset}{'-quick' if args.quick else ''}")
        check_writable(out)
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
