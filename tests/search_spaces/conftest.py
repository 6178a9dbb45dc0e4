"""Fixtures shared by the search-space tests.

NAS-Bench-201 reference files are read from ``$GRADNAS_NB201_DIR`` or, by default, ``../shared/nb201/``
relative to the repository root; tests that need them are skipped when they are absent.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import optuna
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def nb201_file() -> Callable[[str], Path]:
    """``get(name)``: path of a NAS-Bench-201 reference file; skips the test if it is missing."""

    def get(name: str) -> Path:
        path = Path(os.environ.get("GRADNAS_NB201_DIR", REPO_ROOT.parent / "shared" / "nb201")) / name
        if not path.is_file():
            pytest.skip(f"NAS-Bench-201 reference file {path} not found (set GRADNAS_NB201_DIR)")
        return path

    return get


@pytest.fixture(scope="session")
def random_trials() -> Callable[[int, int], list[optuna.trial.Trial]]:
    """``random_trials(n, seed)``: ``n`` trials of a fresh in-memory study with a seeded RandomSampler."""

    def make(n: int, seed: int) -> list[optuna.trial.Trial]:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        return [study.ask() for _ in range(n)]

    return make


@pytest.fixture(scope="session")
def linearity_error() -> Callable[..., float]:
    """``linearity_error(f, x, y, a=0.7, b=-1.3)`` =
    ``||f(a x + b y) - (a f(x) + b f(y))|| / ||a f(x) + b f(y)||``, 0 for a linear map."""

    def error(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, a: float = 0.7,
              b: float = -1.3) -> float:
        with torch.no_grad():
            lhs = f(a * x + b * y)
            rhs = a * f(x) + b * f(y)
        return float((lhs - rhs).norm() / rhs.norm())

    return error


@pytest.fixture(scope="session")
def n_params() -> Callable[..., int]:
    """``n_params(module, kind=None)``: parameter count, optionally only of submodules of type ``kind``."""

    def count(module: torch.nn.Module, kind: type | tuple[type, ...] | None = None) -> int:
        if kind is None:
            return sum(p.numel() for p in module.parameters())
        return sum(p.numel() for m in module.modules() if isinstance(m, kind) for p in m.parameters(recurse=False))

    return count


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Run these tiny-tensor tests on one intra-op thread, restoring the setting afterwards.

    On a loaded 2-core machine, OpenMP threads of small convolutions spin against other processes:
    measured here, a forward + backward of a narrow VGG-19 took 1.9 s with 2 threads and 0.04 s with 1.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
