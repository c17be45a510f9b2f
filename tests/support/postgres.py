"""A real PostgreSQL server for tests: Debian's postgresql package, a throw-away cluster.

The binaries come from `apt-get install postgresql` when they are missing (CI machines start
without them). The cluster lives in a temporary directory, listens on 127.0.0.1 at a free port
and on a socket beside its data, trusts local connections, and is stopped and removed at the
end. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user the package
creates.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from debian import apt_install

from fruxon_pipelines.stack import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_postgres_installed() -> Path:
    """The directory of initdb and pg_ctl, installing Debian's postgresql if need be."""
    bindir = _bindir()
    if bindir is None:
        apt_install("postgresql")
        bindir = _bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL's binaries are not under /usr/lib/postgresql/*/bin")
    return bindir


class PostgresServer:
    """``with PostgresServer() as pg: pg.url("fruxon")`` — a SQLAlchemy URL of a new database."""

    def __init__(self) -> None:
        self.bindir = ensure_postgres_installed()
        self.root = Path(tempfile.mkdtemp(prefix="fruxon-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self.databases: set[str] = set()

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, *args], check=True, capture_output=True, text=True, timeout=timeout
        )

    def __enter__(self) -> PostgresServer:
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=300"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new database and its SQLAlchemy URL (psycopg2, TCP on 127.0.0.1)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                self._run(
                    str(self.bindir / "createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                    name,
                )
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.databases.add(name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
