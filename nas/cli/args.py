"""The CLI's parsing layer: :class:`CLIError`, the one-line-error :class:`Parser`, the argparse types, every
option used by more than one subcommand (declared here once, with its type and range), the shared parent
parsers and the :class:`Command` base class.

An option's range lives in its argparse type: a command never checks it again after parsing.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re

__all__ = [
    "CLIError", "Parser", "Command", "MAX_WORKERS", "int_in", "seconds", "study_name", "storage_url", "ray_address",
    "port", "host", "parents", "add_space", "add_config", "add_metrics", "add_probe_options", "add_execution_options",
    "add_epochs", "add_seed", "add_seeds", "add_out", "add_no_progress", "add_study", "add_runs_dir", "add_storage",
    "add_data_dir", "add_data_options", "memory_size",
]

#: Upper bound of --workers (a bigger number is a typo, not a machine).
MAX_WORKERS = 1024
#: Upper bound of --epochs (search, validate, report).
MAX_EPOCHS = 10000


class CLIError(Exception):
    """Bad input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: a bad option raises :class:`CLIError` ("error: search: argument
    --trials: ...; see --help"), printed by :func:`nas.cli.main` with exit code 2, instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise CLIError(f"{self.prog.replace('python -m nas', '').strip() or 'nas'}: {message} (see --help)")


class Command:
    """Base of a subcommand: ``add_arguments(parser)`` and ``take_action(args) -> exit code``; the class
    docstring is its help text, ``parents`` names the shared parent parsers (:func:`parents`) it takes."""

    parents: tuple[str, ...] = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # pragma: no cover
        pass

    def take_action(self, args: argparse.Namespace) -> int:  # pragma: no cover
        raise NotImplementedError


# ------------------------------------------------------------------------------------ argparse types
def int_in(lo: int, hi: int | None = None):
    """An argparse ``type``: an integer in ``lo..hi``."""
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            valid = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (valid: {valid})")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse ``type``: a positive, finite number of seconds."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (value > 0 and value < 1e9):
        raise argparse.ArgumentTypeError(f"{text} is out of range (valid: a positive number of seconds)")
    return value


def study_name(text: str) -> str:
    """An argparse ``type``: a study name that is also a folder name inside the runs directory."""
    from ..search.names import check_study_name

    try:
        return check_study_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def storage_url(text: str) -> str:
    """An argparse ``type``: a database URL an Optuna RDB storage can keep (not in memory)."""
    from ..search.names import check_storage_url

    try:
        return check_storage_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def ray_address(text: str) -> str:
    """An argparse ``type``: ``auto``, ``local``, ``HOST:PORT`` or ``ray://HOST:PORT`` of a Ray cluster's head."""
    t = (text or "").strip()
    if t in ("auto", "local"):
        return t
    body = t[len("ray://"):] if t.startswith("ray://") else t
    address, sep, number = body.rpartition(":")
    if not sep or not number.isdigit() or not 1 <= int(number) <= 65535 or not address:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Ray address (valid: auto, HOST:PORT of the head "
                                         f"node, e.g. 10.0.0.1:6379, or ray://HOST:10001)")
    host(address.strip("[]"))
    return t


#: An argparse ``type``: a TCP port.
port = int_in(1, 65535)

_HOST = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def host(text: str) -> str:
    """An argparse ``type``: an IP address or a host name to bind."""
    try:
        ipaddress.ip_address(text)
        return text
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+", text or "") or not _HOST.match(text or ""):
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address or host name (valid: e.g. 127.0.0.1, 0.0.0.0, localhost)")
    return text


# ------------------------------------------------------------------------------------ shared options
# Each option used by several subcommands is declared once here; a command passes only the words of its help
# that differ (what the option counts in that command), so its --help reads as before.
def add_study(p: argparse.ArgumentParser, help: str = "study name (search default: SPACE-DATASET-TIME)") -> None:
    p.add_argument("--study", type=study_name, default=None, help=help)


def add_runs_dir(p: argparse.ArgumentParser,
                 help: str = "output folder; the study lives in RUNS_DIR/STUDY/ (default: %(default)s)") -> None:
    p.add_argument("--runs-dir", default="runs", help=help)


def add_storage(p: argparse.ArgumentParser, help: str = "Optuna storage URL, any RDB URL (default: "
                                                        "sqlite:///RUNS_DIR/STUDY/study.db)") -> None:
    p.add_argument("--storage", type=storage_url, default=None, metavar="URL", help=help)


def add_data_dir(p: argparse.ArgumentParser,
                 help: str = "where torchvision datasets are stored/downloaded (default: %(default)s)") -> None:
    p.add_argument("--data-dir", default="data", help=help)


def parents() -> dict[str, argparse.ArgumentParser]:
    """The parent parsers a command names in ``Command.parents``: ``study`` (--study, --runs-dir, --storage)
    and ``data`` (--dataset, --data-dir)."""
    study = Parser(add_help=False)
    add_study(study)
    add_runs_dir(study)
    add_storage(study)
    data = Parser(add_help=False)
    data.add_argument("--dataset", default="auto", help="cifar10 | cifar100 | mnist | fashion_mnist | svhn | mnist5k | synthetic | auto (CIFAR-10 when available, else mnist5k), or your data: folder:PATH (an ImageFolder tree), table:PATH (CSV/Parquet; with --target), module:function or file.py:function, saved:PATH; see docs/data.md (default: %(default)s)")
    add_data_dir(data)
    return {"study": study, "data": data}


def memory_size(text: str) -> str:
    """An argparse ``type``: a positive memory size (``512M``, ``4G``, bytes); kept as written."""
    from ..data import DatasetError, parse_memory

    try:
        parse_memory(text, "size")
    except DatasetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_data_options(p: argparse.ArgumentParser) -> None:
    """--max-memory and --loss: how your data is read and what the candidates are trained to minimize."""
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="data larger than this as float32 tensors (e.g. 512M, 4G) streams from disk through a "
                        "DataLoader with workers instead of being held in memory: image folders (folder:) and torch "
                        "Datasets (module:function); tables and built-in datasets are always in memory (default: a "
                        "quarter of this machine's memory)")
    p.add_argument("--loss", default=None, metavar="LOSS",
                   help="training loss of your data: cross_entropy (default), mse | l1 | smooth_l1 | huber (a numeric "
                        "table target: regression; trained candidates are ranked by test loss) or module:function")


def add_space(p: argparse.ArgumentParser, help: str = "search space (default: %(default)s)",
              default: str | None = "resnet_cifar") -> None:
    p.add_argument("--space", default=default, help=help)


def add_config(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--config", metavar="JSON", help=help)


def add_metrics(p: argparse.ArgumentParser, default: str | None, help: str) -> None:
    p.add_argument("--metrics", default=default, help=help)


def add_probe_options(p: argparse.ArgumentParser, early_steps: int, early_help: str,
                      probe_help: str = "examples in the probe batch (default: %(default)s)") -> None:
    """--early-steps, --probe-size and --group-size: how a candidate is scored (search, score)."""
    p.add_argument("--early-steps", type=int_in(0, 1_000_000), default=early_steps, help=early_help)
    p.add_argument("--probe-size", type=int_in(2, 100_000), default=64, help=probe_help)
    p.add_argument("--group-size", type=int_in(1, 100_000), default=8, help="examples per group for confusion/diversity (default: %(default)s)")


def add_execution_options(p: argparse.ArgumentParser, what: str, ray_help: str, threads: bool = False) -> None:
    """--workers, --trials-per-gpu, (--threads,) --ray-address: where the ``what`` (trials, trainings) run."""
    p.add_argument("--workers", type=int_in(1, MAX_WORKERS), default=None, help=f"parallel {what}; 1 runs in process without Ray (default: GPUs x --trials-per-gpu, else CPU cores)")
    p.add_argument("--trials-per-gpu", type=int_in(1, 64), default=1, help=f"{what} sharing one GPU (default: %(default)s)")
    if threads:
        p.add_argument("--threads", type=int_in(1, 1024), default=1, help="torch threads of every trial, whatever runs it (in process, a Ray worker, another node), so a trial's values do not depend on --workers; stored with the study (default: %(default)s)")
    p.add_argument("--ray-address", type=ray_address, default=os.environ.get("RAY_ADDRESS") or None, metavar="ADDRESS",
                   help=ray_help)


def add_epochs(p: argparse.ArgumentParser, help: str, default: int | None = 10) -> None:
    p.add_argument("--epochs", type=int_in(1, MAX_EPOCHS), default=default, help=help)


def add_seed(p: argparse.ArgumentParser, help: str, default: int | None = 0) -> None:
    p.add_argument("--seed", type=int_in(0, 2**32 - 1), default=default, help=help)


def add_seeds(p: argparse.ArgumentParser, lo: int, default: int | None, help: str) -> None:
    """--seeds: how many independent seeds (at least ``lo``)."""
    p.add_argument("--seeds", type=int_in(lo, 1000), default=default, help=help)


def add_out(p: argparse.ArgumentParser, default_text: str) -> None:
    p.add_argument("--out", default=None, help=f"output folder (default: {default_text})")


def add_no_progress(p: argparse.ArgumentParser, what: str = "bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=f"no progress {what}")
