"""A real PostgreSQL for the shared-store tests: Debian's server, run from a temp folder.

The server binaries come from Debian's ``postgresql`` package, installed with apt-get when
missing (CI runs as root on a fresh machine), as the browser test installs Chromium.
PostgreSQL refuses to run as root, so as root the server runs as the package's ``postgres``
user from a folder that user owns. Authentication is ``trust`` on 127.0.0.1 only.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.tracking.conftest import free_port

SUPERUSER = "ferops"


def server_binaries() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; installs Debian's package if needed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                  env={"DEBIAN_FRONTEND": "noninteractive",
                                       "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
            if done.returncode != 0:
                pytest.fail(f"{' '.join(command)} failed ({done.returncode}): "
                            f"{done.stderr[-2000:]}")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("apt-get install postgresql left no /usr/lib/postgresql/*/bin/initdb")
    return Path(found[-1]).parent


@dataclass
class Postgres:
    """A running server: ``url(db)`` gives the SQLAlchemy URL of a database on it."""

    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database ``name``; returns its URL."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                             dbname="postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres() -> Iterator[Postgres]:
    """initdb + pg_ctl start in a fresh folder; stop and remove it afterwards."""
    binaries = server_binaries()
    # Not under pytest's tmp root: that is private to the test user (0700), and the server
    # user must reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="ferops-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    run = _as_server_user
    subprocess.run(run([str(binaries / "initdb"), "-D", str(data), "-U", SUPERUSER,
                        "--auth=trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True, text=True, timeout=120)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = subprocess.run(run([str(binaries / "pg_ctl"), "-D", str(data), "-o", options,
                                  "-l", str(log), "-w", "-t", "60", "start"]),
                             capture_output=True, text=True, timeout=120)
    if started.returncode != 0:
        text = log.read_text() if log.exists() else started.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start:\n{text[-3000:]}")
    try:
        yield Postgres(port)
    finally:
        subprocess.run(run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
