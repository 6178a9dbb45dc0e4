"""Session-wide services the tests start themselves: a PostgreSQL server (tests/_services/postgres.py)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest


def _load_service(name: str):
    path = Path(__file__).parent / "_services" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_gradnas_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server on a free loopback port for the whole session (skips when none can start)."""
    server, why = _load_service("postgres").start()
    if server is None:
        pytest.skip(f"no PostgreSQL server: {why}")
    yield server
    server.stop()


_DATABASES = itertools.count()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.create(f"gradnas_{next(_DATABASES)}")
