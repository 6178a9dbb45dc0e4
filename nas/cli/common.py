"""Inputs several subcommands resolve the same way: JSON options, a space, a dataset, a metric list, the
probe batch, a study's storage and the runs directory. Each turns bad input into a one-line :class:`CLIError`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .args import CLIError

__all__ = [
    "json_arg", "open_space", "open_dataset", "check_group_size", "check_probe_size", "metric_list", "storage_for",
    "remove_if_empty", "check_writable",
]


def json_arg(text: str | None, what: str) -> dict[str, Any]:
    """The JSON object of option ``what`` (``{}`` when not given)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{what} is not valid JSON ({exc.msg} at char {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise CLIError(f"{what} must be a JSON object, got {text!r}")
    return value


def open_space(name: str, bounds: dict[str, Any], smoke: bool = False):
    """The registered space ``name``, narrowed to its smoke bounds with ``smoke``, then to ``bounds``."""
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


def open_dataset(name: str, data_dir: str, download: bool = True):
    """``(resolved name, data)`` of --dataset ``name`` (``auto`` resolved; its warning printed)."""
    from ..data import DatasetError, load_dataset, resolve_dataset

    try:
        resolved, warning = resolve_dataset(name, data_dir, download=download)
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        data = load_dataset(resolved, data_dir, download=download)
    except DatasetError as exc:
        raise CLIError(str(exc)) from None
    return resolved, data


def check_group_size(args: argparse.Namespace) -> None:
    """The probe batch is split into groups: --group-size must not exceed --probe-size."""
    if args.group_size > args.probe_size:
        raise CLIError(f"--group-size {args.group_size} is larger than --probe-size {args.probe_size} (valid: "
                       f"1..{args.probe_size}: the probe batch is split into groups)")


def check_probe_size(probe_size: int, data) -> None:
    """The probe batch is drawn from the training set: --probe-size must not exceed it."""
    n = int(data.train_x.shape[0])
    if probe_size > n:
        raise CLIError(f"--probe-size {probe_size} is larger than the {n} training examples of {data.name} "
                       f"(valid: 2..{n})")


def metric_list(text: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The metrics of a --metrics value (None: the default metrics, ``all``: every metric) plus ``extra``."""
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


def remove_if_empty(folder: Path) -> None:
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


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it, or say that the runs directory is not writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise CLIError(f"runs directory {str(folder)!r} is not writable ({exc.strerror}); pass --runs-dir DIR") from None


def storage_for(args: argparse.Namespace, create: bool) -> str:
    """The storage URL of --storage, else of --study in --runs-dir; unless ``create``, the database must exist
    (opening a missing SQLite file would create an empty one)."""
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
