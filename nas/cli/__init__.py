"""Command line: ``python -m nas {search,score,spaces,objectives,dashboard,validate,report,diagnose,reproduce,predict}``
(also ``gradnas ...``).

Modelled on ``optuna/cli.py`` and pip's ``commands/``: one module per subcommand, each a
:class:`~nas.cli.args.Command` with ``add_arguments`` and ``take_action``; a dict of commands feeding argparse
subparsers; every shared option, argparse type and parent parser declared once in :mod:`nas.cli.args`; and
``main()`` returning an exit code. Bad input (unknown space, dataset, metric or sampler, a malformed objective
or constraint, an unreachable storage, a non-writable runs directory) prints one line saying what is
wrong and what is valid, and exits with code 2 — no traceback. Heavy imports (Ray, the dashboard,
torch-based modules) happen inside the command that needs them, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import Sequence

from .args import CLIError, Command, Parser, parents
from .dashboard import Dashboard
from .diagnose import Diagnose
from .objectives import Objectives
from .predict import Predict
from .report import Report
from .reproduce import Reproduce
from .score import Score
from .search import Search
from .spaces import Spaces
from .validate import Validate

__all__ = ["main", "build_parser", "CLIError", "COMMANDS"]

COMMANDS: dict[str, type[Command]] = {
    "search": Search,
    "score": Score,
    "spaces": Spaces,
    "objectives": Objectives,
    "dashboard": Dashboard,
    "validate": Validate,
    "report": Report,
    "diagnose": Diagnose,
    "reproduce": Reproduce,
    "predict": Predict,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m nas`` parser: one subparser per entry of :data:`COMMANDS`, its class docstring as help."""
    parser = Parser(
        prog="python -m nas",
        description="gradnas: architecture and hyperparameter search by gradient metrics.",
        epilog="Documentation: `python -m nas objectives METRIC` prints a metric's definition and math, "
               "`python -m nas spaces SPACE` a space's dimensions, building rules and math, "
               "`python -m nas objectives --combined` the combined score; COMMAND --help for each command. "
               "-v logs each trial's failure reason; see README.md, Troubleshooting.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log trial failures and progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = parents()
    for name, cls in COMMANDS.items():
        cmd = cls()
        doc = (cls.__doc__ or "").strip()
        p = sub.add_parser(
            name, help=re.split(r"\.\s", " ".join(doc.split()))[0].rstrip(".").replace("%", "%%"), description=doc,
            parents=[shared[k] for k in cls.parents],
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
