"""A private PostgreSQL 15 server for one test: its own data directory and port, so a test can
restart it under load without touching the machine's shared server.

initdb refuses to run as root, so as root every server command runs as the `postgres`
system user (runuser). Anything missing (the binaries, that user) fails the test with the
reason: a fault test that silently skipped would claim a safety it never checked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from careledger.broker import free_port

BINARIES = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"


@dataclass
class PrivateServer:
    """One PostgreSQL server in `directory`, listening on 127.0.0.1:`port`."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "pgdata"

    def url(self, database: str = "careledger") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        _require()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, SERVER_USER, SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1"
        (self.data / "careledger.options").write_text(options)
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                  "careledger")  # fmt: skip

    def start(self) -> None:
        options = (self.data / "careledger.options").read_text()
        log = self.directory / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def _run(self, tool: str, *arguments: str, check: bool = True) -> None:
        command: Sequence[str] = [str(BINARIES / tool), *arguments]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
        if check and done.returncode != 0:
            pytest.fail(f"{tool} failed ({done.returncode}): {done.stderr.strip()[-500:]}")


def _require() -> None:
    if not (BINARIES / "initdb").exists():
        pytest.fail(
            f"the PostgreSQL restart fault needs PostgreSQL 15's server binaries in {BINARIES} "
            "(Debian package postgresql-15)",
            pytrace=False,
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.fail("as root, initdb must run as another user and runuser is missing")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(SERVER_USER)
        except KeyError:
            pytest.fail(
                f"as root, initdb must run as the `{SERVER_USER}` user, which does not exist "
                "(the postgresql package creates it)",
                pytrace=False,
            )


def private_server(directory: Path) -> PrivateServer:
    return PrivateServer(directory, free_port())
