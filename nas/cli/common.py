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
    "json_arg", "open_space", "open_dataset", "check_group_size", "check_probe_size", "check_space_fits", "metric_list",
    "storage_for", "remove_if_empty", "check_writable", "warn",
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


def _cli(fn, *args, **kwargs):
    """Call a library check; its :class:`~nas.search.SearchError` becomes a :class:`CLIError`."""
    from ..search.inputs import SearchError

    try:
        return fn(*args, **kwargs)
    except SearchError as exc:
        raise CLIError(str(exc)) from None


def open_space(name: str, bounds: dict[str, Any], smoke: bool = False):
    """The registered space ``name``, narrowed to its smoke bounds with ``smoke``, then to ``bounds``."""
    from ..search import inputs

    return _cli(inputs.open_space, name, bounds, smoke)


def warn(text: str) -> None:
    print(f"warning: {text}", file=sys.stderr)


def open_dataset(name: str, data_dir: str, download: bool = True):
    """``(resolved name, data)`` of --dataset ``name`` (``auto`` resolved; its warning printed)."""
    from ..search import inputs

    return _cli(inputs.open_dataset, name, data_dir, warn, download)


def check_group_size(args: argparse.Namespace) -> None:
    """The probe batch is split into groups: --group-size must not exceed --probe-size."""
    from ..search import inputs

    _cli(inputs.check_group_size, args.group_size, args.probe_size)


def check_probe_size(probe_size: int, data) -> None:
    """The probe batch is drawn from the training set: --probe-size must not exceed it."""
    from ..search import inputs

    _cli(inputs.check_probe_size, probe_size, data)


def check_space_fits(space, data, config=None) -> None:
    """A define-by-run function's model must fit the data (inputs, one output per class): one line if not."""
    from ..search import inputs as search_inputs

    _cli(search_inputs.check_space_fits, space, data, config)


def metric_list(text: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The metrics of a --metrics value (None: the default metrics, ``all``: every metric) plus ``extra``."""
    from ..search import inputs

    return _cli(inputs.metric_names, text, extra)


def remove_if_empty(folder: Path) -> None:
    from ..search import inputs

    inputs.remove_if_empty(folder)


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write a file in it, or say that the runs directory is not writable."""
    from ..search import inputs

    _cli(inputs.check_writable, folder)


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
    from ..search.keys import StudyFolder

    db = StudyFolder.of(args.runs_dir, args.study).database
    if not create and not db.exists():
        raise CLIError(f"no study database at {db}; run `python -m nas search --study {args.study}` first or pass --storage")
    return default_storage(args.runs_dir, args.study)
