"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, ``pg_ctl start`` on a
free loopback port, stopped at the end.

The server programs come from ``pg_config --bindir`` (Debian's PostgreSQL 15 packages), or ``initdb`` /
``pg_ctl`` on the PATH. ``initdb`` refuses to run as root: as root the server runs as the ``postgres``
system user (``runuser``). :func:`start` returns None, with the reason, when no server can be started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgresServer", "start"]


def _bindir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        d = Path(out.stdout.strip())
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` for a database on it, ``create(db)``, ``stop()``."""

    root: Path
    port: int
    bindir: Path
    prefix: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start() -> tuple[PostgresServer | None, str]:
    """Start a server; returns ``(server, "")`` or ``(None, why not)``."""
    bindir = _bindir()
    if bindir is None:
        return None, "PostgreSQL server programs (initdb, pg_ctl) not found"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, "psycopg is not installed"
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="gradnas-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            return None, "running as root without runuser: cannot start PostgreSQL as the postgres user"
        prefix = [runuser, "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
    data, log, sock = root / "data", root / "server.log", root / "sock"
    sock.mkdir()
    if prefix:
        shutil.chown(sock, "postgres")
    init = subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                           "--no-sync", "-E", "UTF8"], capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        return None, f"initdb failed: {init.stderr.strip()[-300:]}"
    for _ in range(5):  # a port taken between the probe and the start: try another
        port = _free_port()
        options = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        up = subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                             "-t", "60", "start"], capture_output=True, text=True)
        if up.returncode == 0:
            server = PostgresServer(root, port, bindir, prefix)
            deadline = time.time() + 30
            while True:
                try:
                    import psycopg

                    psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres").close()
                    return server, ""
                except Exception:  # noqa: BLE001
                    if time.time() > deadline:
                        server.stop()
                        return None, "PostgreSQL started but accepts no connection"
                    time.sleep(0.2)
    tail = log.read_text()[-300:] if log.exists() else ""
    shutil.rmtree(root, ignore_errors=True)
    return None, f"pg_ctl start failed: {tail}"
