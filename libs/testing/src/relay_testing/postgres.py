"""A real PostgreSQL server on a free loopback port, run as the ``postgres`` user (it refuses to run as root)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay_devservers.processes import ServerProcess, free_port

INSTALL_HINT = "PostgreSQL is not installed: run `apt-get update && apt-get install -y postgresql` (or `make test`)"


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``postgres``."""
    candidates = [
        path.parent
        for path in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if (path.parent / "initdb").exists() and re.fullmatch(r"\d+", path.parent.parent.name)
    ]
    if not candidates:
        raise RuntimeError(INSTALL_HINT)
    return max(candidates, key=lambda path: int(path.parent.name))


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the ``postgres`` OS user when we are root; PostgreSQL refuses to run as root."""
    if os.geteuid() != 0:
        return argv
    try:
        pwd.getpwnam("postgres")
    except KeyError as error:
        raise RuntimeError(f"user 'postgres' does not exist; {INSTALL_HINT}") from error
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv]


@dataclass
class PostgresServer:
    """One throw-away cluster: ``initdb`` into a fresh directory, ``postgres`` on 127.0.0.1, stop by PID."""

    workdir: Path
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    server: ServerProcess | None = None
    _root: Path | None = None

    def url(self, database: str, *, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        bin_dir = postgres_bin_dir()
        # Not under pytest's tmp dir: that is 0700 root, which the postgres user cannot traverse.
        self._root = Path(tempfile.mkdtemp(prefix="relay-pg-"))
        data, sockets = self._root / "data", self._root / "sock"
        data.mkdir()
        sockets.mkdir()
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            for path in (self._root, data, sockets):
                os.chown(path, account.pw_uid, account.pw_gid)
        log_path = self.workdir / f"postgres-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            initdb = subprocess.run(
                _as_postgres(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        self.user,
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-locale",
                        "--no-sync",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=120,
            )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed with {initdb.returncode}; see {log_path}")
        self.server = ServerProcess(
            "postgres",
            _as_postgres(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(self.port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ]
            ),
            log_path=log_path,
        )
        self.server.wait_for_port(self.port)
        return self

    def create_database(self, name: str) -> str:
        """Create ``name`` (retrying while the server finishes start-up) and return its asyncpg URL."""
        createdb = postgres_bin_dir() / "createdb"
        result = subprocess.run(
            [str(createdb), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {result.stderr.strip()}")
        return self.url(name)

    def stop(self) -> None:
        if self.server is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect.
            self.server.stop(sig=signal.SIGINT)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A real PostgreSQL started once per session; fails (never skips) when PostgreSQL is missing."""
    try:
        server = PostgresServer(tmp_path_factory.mktemp("postgres")).start()
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """``postgresql+asyncpg://`` URL of a fresh database on the session's PostgreSQL."""
    return postgres_server.create_database("relay_test")
