"""``python -m nas.lab regenerate [--check]``: rewrite the package data ``objectives`` reads from the
committed lab tables (:func:`nas.lab.data.regenerate`). Run it from the repository root."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .data import COMMAND, LABS, PACKAGE_DATA, TABLES, regenerate


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m nas.lab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("regenerate", help="write objectives/data/evidence.json and feature_sets.json from the "
                                          "lab tables (metric_costs.json: benchmarks/metric_cost.py --write-costs)")
    r.add_argument("--tables", default=str(TABLES), help="folder of the lab tables (default: %(default)s)")
    r.add_argument("--out", default=str(PACKAGE_DATA), help="folder of the package data (default: objectives/data)")
    r.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a file differs from what the tables give")
    args = p.parse_args(argv)
    missing = [t for t in LABS if not (Path(args.tables) / t).is_file()]
    if missing:
        p.error(f"no {', '.join(missing)} under {args.tables} (run from the repository root or pass --tables)")
    changed = regenerate(args.tables, args.out, COMMAND, check=args.check)
    for name, differs in changed.items():
        state = ("differs" if args.check else "written") if differs else "unchanged"
        print(f"{Path(args.out) / name}: {state}")
    return 1 if args.check and any(changed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
