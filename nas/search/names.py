"""The checks of a study's name and storage URL, shared by the library (:meth:`SearchConfig.resolve`) and the
command line's argparse types. Plain Python (no torch, no Optuna): ``--help`` stays fast."""

from __future__ import annotations

import re

__all__ = ["check_study_name", "check_storage_url"]

_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_study_name(text: str) -> str:
    """A study name that is also a folder name inside the runs directory; ValueError (one line) otherwise."""
    if not _STUDY_NAME.match(text or "") or ".." in text:
        raise ValueError(f"{text!r} is not a study name (valid: letters, digits, '_', '-', '.', starting with a letter "
                         f"or digit, no '..' or '/': the study lives in RUNS_DIR/STUDY/)")
    return text


def check_storage_url(text: str) -> str:
    """A database URL an Optuna RDB storage can keep (not in memory); ValueError (one line) otherwise."""
    url = (text or "").strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+]*", scheme):
        raise ValueError(f"{text!r} is not a database URL (valid: sqlite:///path/study.db, postgresql://user@host/db, ...)")
    if scheme.startswith("sqlite") and rest in ("", "/", "/:memory:", ":memory:"):
        raise ValueError(f"{text!r} is an in-memory database: the study would be gone when the process ends (valid: "
                         f"sqlite:///path/study.db or a server URL)")
    return url
