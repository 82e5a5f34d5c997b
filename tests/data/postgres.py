"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary directory.

``make test`` installs the ``postgresql`` package (``make system-deps``); where it is absent the
tests that need a server are skipped, saying so. The server listens only on a unix socket in
its own directory (no TCP port to collide with another run) and runs as an unprivileged user,
since PostgreSQL refuses to run as root and the tests may.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

DEBIAN_BINARIES = Path("/usr/lib/postgresql")  # /usr/lib/postgresql/<version>/bin, off PATH
SERVER_USER = "postgres"  # the OS user the Debian package creates, for runs as root
SUPERUSER = "postgres"  # the server's first role (initdb --username)
# Throwaway data: nothing is fsynced (a crash loses the server with its data, which the tests
# never keep), so initdb and CREATE DATABASE take a fraction of their durable time.
SETTINGS = {
    "listen_addresses": "''",  # the unix socket only
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "50",
}


def binaries() -> Path | None:
    """The newest installed server's ``bin`` directory (Debian's layout, or ``pg_ctl`` on PATH)."""
    versions = sorted(
        (d for d in DEBIAN_BINARIES.glob("*/bin") if (d / "initdb").is_file()),
        key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _as_server_user() -> list[str]:
    """The prefix that runs a command as the server's OS user (none unless we are root)."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", SERVER_USER, "--"]


def skip_reason() -> str | None:
    """Why no server can be started here, else None."""
    if binaries() is None:
        return (
            f"PostgreSQL is not installed (no {DEBIAN_BINARIES}/*/bin/initdb, no pg_ctl on "
            "PATH): `make system-deps` installs Debian's postgresql package"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no {SERVER_USER!r} user to run PostgreSQL as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing"
    return None


@dataclass
class PostgresServer:
    """A running server: its directory (data, log, socket) and how to reach it."""

    directory: Path
    bin_dir: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    @property
    def log_file(self) -> Path:
        """The server's log (shown when it fails to start)."""
        return self.directory / "server.log"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server, over its unix socket."""
        return f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.directory}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(
            host=str(self.directory), user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """One of the server's programs, as its OS user, from its directory."""
        return subprocess.run(
            [*_as_server_user(), str(self.bin_dir / args[0]), *args[1:]],
            cwd=self.directory,
            capture_output=True,
            text=True,
            check=False,
        )


def _checked(result: subprocess.CompletedProcess[str], what: str, log: Path | None = None) -> None:
    if result.returncode != 0:
        shown = log.read_text(errors="replace") if log and log.is_file() else ""
        raise RuntimeError(f"{what} failed ({result.returncode}): {result.stderr}\n{shown}")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh server in a new temporary directory; stop it and remove it afterwards.

    Skips the calling test where no server can be started (see `skip_reason`).
    """
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    bin_dir = binaries()
    assert bin_dir is not None
    # Not under pytest's tmp_path: its parents are root's and closed to the server's user. The
    # directory holds the socket too, and a socket's path may be at most ~100 characters.
    directory = Path(tempfile.mkdtemp(prefix="tf-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, SERVER_USER, SERVER_USER)
    server = PostgresServer(directory, bin_dir)
    try:
        _checked(
            server.run(
                "initdb",
                "--pgdata",
                str(server.data_dir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",  # only this directory's owner and root can reach the socket
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            ),
            "initdb",
        )
        settings = "".join(f"{key} = {value}\n" for key, value in SETTINGS.items())
        with (server.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(settings + f"unix_socket_directories = '{directory}'\n")
        try:
            _checked(
                server.run(
                    "pg_ctl",
                    "start",
                    "--pgdata",
                    str(server.data_dir),
                    "--log",
                    str(server.log_file),
                    "--wait",
                    "--timeout",
                    "60",
                ),
                "pg_ctl start",
                server.log_file,
            )
            yield server
        finally:
            # Immediate: nothing of the data is kept, so there is nothing to shut down cleanly.
            # Also after a failed start, which may leave a server starting up.
            server.run("pg_ctl", "stop", "--pgdata", str(server.data_dir), "--mode", "immediate")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
