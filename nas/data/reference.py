"""Data references: the strings that name user data, parsed, checked and made canonical.

A reference is what :func:`nas.data.load_dataset` receives in place of a registry name, in the driver and
in every worker (it travels inside a pickled trial spec), so it must say everything needed to rebuild the
same tensors. Grammar::

    folder:PATH[?OPTIONS]        an image folder (torchvision ImageFolder layout)
    table:PATH?target=COLUMN[&OPTIONS]   a CSV / TSV / Parquet table with a label column
    saved:PATH.pt                a dataset saved by nas.data.register_dataset(..., folder)
    memory:SHA1                  a dataset registered in this process (nas.data.register_dataset)
    package.module:function      a function returning the data (see nas.data.user_function)
    path/to/file.py:function     the same, from a file

``OPTIONS`` are ``key=value`` pairs joined by ``&`` (no spaces needed around them); a value may
percent-encode ``%``, ``&``, ``=``, ``?`` (``%25``, ``%26``, ``%3D``, ``%3F``). A path cannot contain
``?``. Relative paths are resolved against the current directory when the reference is made canonical
(:func:`canonical_reference`), so a worker with another working directory reads the same files.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .augment import AUGMENT_KINDS
from .dataset import DatasetError

__all__ = ["OPTIONS", "Reference", "canonical_reference", "dataset_label", "is_module_file", "is_reference", "parse_reference"]

#: Options each reference kind accepts, with a short description (for messages and docs).
OPTIONS: dict[str, dict[str, str]] = {
    "folder": {
        "size": "H or HxW pixels (default: the images' own size when they all share it, else 32)",
        "test_fraction": "held-out test share when there is no test/ subfolder (default 0.2)",
        "grayscale": "1: one channel, 0: RGB (default: 1 when every image is grayscale)",
        "augment": f"train-time augmentation, one of {'|'.join(AUGMENT_KINDS)} (default none)",
        "max_memory": "stream from disk when the decoded images would take more, e.g. 2G (default: 1/4 of RAM)",
        "loss": "the training loss: cross_entropy (default) or module:function (see nas.data.loss)",
    },
    "table": {
        "target": "the label column (required)",
        "test_fraction": "held-out test share when no test table is given (default 0.2)",
        "test": "a separate test table (same columns)",
        "sep": "CSV field separator (default: ',' for .csv, tab for .tsv)",
        "drop": "comma-separated columns to leave out (ids, free text)",
        "max_categories": "a text column with more distinct values is left out (default 50)",
        "loss": "the training loss: cross_entropy (default), mse|l1|smooth_l1|huber (a numeric target: "
                "regression) or module:function",
    },
    "saved": {},
    "memory": {},
    "function": {
        "max_memory": "stream torch Datasets from disk when their tensors would take more (default: 1/4 of RAM)",
        "loss": "the training loss: cross_entropy (default), mse|l1|smooth_l1|huber or module:function",
    },
}
_PREFIXES = ("folder", "table", "saved", "memory")
_ENCODE = {"%": "%25", "&": "%26", "=": "%3D", "?": "%3F"}


@dataclass(frozen=True)
class Reference:
    """A parsed data reference.

    Attributes:
        kind: ``"folder"``, ``"table"``, ``"saved"``, ``"memory"`` or ``"function"``.
        target: The path (folder, table, saved), the SHA-1 (memory), or ``"module:attr"`` /
            ``"/abs/file.py:attr"`` (function).
        options: The ``key=value`` options, decoded.
    """

    kind: str
    target: str
    options: dict[str, str]

    def text(self) -> str:
        """The reference as a string (options sorted by key, so equal references read the same)."""
        head = self.target if self.kind == "function" else f"{self.kind}:{self.target}"
        if not self.options:
            return head
        encode = lambda v: "".join(_ENCODE.get(ch, ch) for ch in v)  # noqa: E731
        return head + "?" + "&".join(f"{k}={encode(self.options[k])}" for k in sorted(self.options))

    def option(self, key: str, default: str | None = None) -> str | None:
        """The value of option ``key`` or ``default``."""
        return self.options.get(key, default)


def is_reference(name: object) -> bool:
    """True when ``name`` is a data reference (a string with a ``:``) rather than a registry name."""
    return isinstance(name, str) and ":" in name


def parse_reference(text: str) -> Reference:
    """Parses a reference (see the module docstring) and checks its option names and values.

    Raises:
        DatasetError: An unknown option, a bad option value, an empty path, or a function reference
            without ``module:attr``.
    """
    text = text.strip()
    head, _, query = text.partition("?")
    prefix, _, rest = head.partition(":")
    if prefix in _PREFIXES:
        kind, target = prefix, rest.strip()
        if not target:
            raise DatasetError(f"{text!r}: {kind}: needs a path after the colon, e.g. {_example(kind)}")
    else:
        kind, target = "function", head
        module, _, attr = head.rpartition(":")
        if not module.strip() or not attr.strip():
            raise DatasetError(
                f"{text!r} is not a data reference: write package.module:function or path/to/file.py:function"
            )
    options: dict[str, str] = {}
    for pair in filter(None, query.split("&")):
        key, eq, value = pair.partition("=")
        key = key.strip()
        if not eq:
            raise DatasetError(f"{text!r}: option {pair!r} needs a value: write {key}=VALUE")
        if key not in OPTIONS[kind]:
            valid = ", ".join(OPTIONS[kind]) or "none"
            raise DatasetError(f"{text!r}: unknown option {key!r} for {kind} data; valid options: {valid}")
        options[key] = urllib.parse.unquote(value.strip())
    ref = Reference(kind, target, options)
    _check_options(ref, text)
    return ref


def _example(kind: str) -> str:
    return {"folder": "folder:./images", "table": "table:data.csv?target=label",
            "saved": "saved:runs/study/data/<sha1>.pt", "memory": "memory:<sha1>"}[kind]


def _check_options(ref: Reference, text: str) -> None:
    """Checks option values now, so a bad reference fails before any data is read."""
    o = ref.options
    if "size" in o:
        parse_size(o["size"], text)
    if "test_fraction" in o:
        parse_fraction(o["test_fraction"], text)
    if o.get("grayscale", "auto") not in ("0", "1", "auto"):
        raise DatasetError(f"{text!r}: grayscale must be 0, 1 or auto, got {o['grayscale']!r}")
    if o.get("augment", "none") not in AUGMENT_KINDS:
        raise DatasetError(f"{text!r}: augment must be one of {', '.join(AUGMENT_KINDS)}, got {o['augment']!r}")
    if "max_categories" in o and not (o["max_categories"].isdigit() and int(o["max_categories"]) >= 1):
        raise DatasetError(f"{text!r}: max_categories must be a positive integer, got {o['max_categories']!r}")
    if "max_memory" in o:
        from .stream import parse_memory

        parse_memory(o["max_memory"], f"{text!r}: max_memory")
    if "loss" in o:
        from .loss import LOSSES

        if o["loss"] not in LOSSES and ":" not in o["loss"]:
            raise DatasetError(f"{text!r}: unknown loss {o['loss']!r}; valid: {', '.join(LOSSES)} or module:function")
    if ref.kind == "table" and not o.get("target", "").strip():
        raise DatasetError(f"{text!r}: say which column holds the labels: table:PATH?target=COLUMN")


def parse_size(value: str, text: str = "") -> tuple[int, int]:
    """``"32"`` -> ``(32, 32)``; ``"24x32"`` -> ``(24, 32)`` (height x width)."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", value)
    if not match or int(match.group(1)) < 1 or (match.group(2) and int(match.group(2)) < 1):
        raise DatasetError(f"{text!r}: size must be H or HxW in pixels (e.g. size=32 or size=24x32), got {value!r}")
    h = int(match.group(1))
    return h, int(match.group(2) or h)


def parse_fraction(value: str, text: str = "") -> float:
    """A test fraction strictly between 0 and 1."""
    try:
        fraction = float(value)
    except ValueError:
        fraction = float("nan")
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"{text!r}: test_fraction must be a number between 0 and 1 (e.g. 0.2), got {value!r}")
    return fraction


def _absolute(path: str) -> str:
    return str(Path(os.path.expanduser(path)).resolve())


def is_module_file(module: str) -> bool:
    """True when the module part of a function reference is a file path (``x.py`` or with a slash)."""
    return module.endswith(".py") or "/" in module or os.sep in module


def canonical_reference(text: str) -> str:
    """The reference with absolute paths and sorted options: the same string on every machine and cwd.

    Raises:
        DatasetError: As :func:`parse_reference`.
    """
    ref = parse_reference(text)
    options = dict(ref.options)
    if ref.kind in ("folder", "table", "saved"):
        target = _absolute(ref.target)
        if "test" in options:
            options["test"] = _absolute(options["test"])
    elif ref.kind == "function":
        module, _, attr = ref.target.rpartition(":")
        target = f"{_absolute(module) if is_module_file(module) else module.strip()}:{attr.strip()}"
    else:
        target = ref.target
    return Reference(ref.kind, target, options).text()


def dataset_label(name: str) -> str:
    """A short name for a dataset or reference that is safe in a file or study name.

    ``"cifar10"`` stays ``"cifar10"``; ``"folder:/data/flowers?size=64"`` -> ``"flowers"``;
    ``"table:/x/titanic.csv?target=Survived"`` -> ``"titanic"``; ``"my.pkg:load"`` -> ``"load"``;
    ``"saved:/r/s/data/ab12....pt"`` / ``"memory:ab12..."`` -> ``"data-ab12cd34"``.
    """
    if not is_reference(name):
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "data"
    head = name.partition("?")[0]
    prefix, _, rest = head.partition(":")
    if prefix in ("folder", "table"):
        label = Path(rest.rstrip("/\\")).stem or prefix
    elif prefix in ("saved", "memory"):
        label = "data-" + Path(rest).stem[:8]
    else:
        label = head.rpartition(":")[2].rpartition(".")[2]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "data"
