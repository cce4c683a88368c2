"""End-to-end fixtures: the real `careledger up` on ports nobody else uses."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from careledger.broker import port_open
from careledger.client import complete_event
from careledger.topology import BROKER_PORT, default_services
from shared.crypto import SigningKey

CARELEDGER = [sys.executable, "-m", "careledger"]

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Poll `probe` until it returns something other than None; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what} not within {timeout} s")


def free_offset() -> int:
    """A port offset at which the broker and every service port are free.

    All ports stay below 32768, where Linux starts handing out ephemeral ports: a client's
    outgoing socket could otherwise take a service port just freed by a restart.
    """
    for _ in range(50):
        offset = random.randrange(10000, 23000, 100)
        ports = [BROKER_PORT + offset] + [s.port for s in default_services(port_offset=offset)]
        if not any(port_open("127.0.0.1", port) for port in ports):
            return offset
    raise RuntimeError("no free port range found")


def clinical_note(key: SigningKey, n: int, encounter: str) -> dict[str, Any]:
    """The `n`th signed clinical note of a demo video-consultation platform. Sealed like any
    event, and not a consultation: billing answers consultations with events of its own,
    and the tests count exactly the events they published."""
    return complete_event(
        {
            "type": "org.careledger.clinical.note.signed.v1",
            "subject": encounter,
            "data": {"encounter": encounter, "n": n},
        },
        key=key,
        default_source="https://videoconsult.example/app",
    )


def wait_until_final(url: str, tree_size: int, *, timeout: float) -> dict[str, object]:
    """The validator's head once its final block covers `tree_size` leaves."""
    deadline = time.monotonic() + timeout
    head: dict[str, object] = {}
    while time.monotonic() < deadline:
        head = httpx.get(f"{url}/v1/head").json()
        final = head.get("final_height")
        if isinstance(final, int):
            block = httpx.get(f"{url}/v1/blocks/{final}").json()
            if block["header"]["tree_size"] >= tree_size:
                return head
        time.sleep(0.3)
    raise AssertionError(f"{url} not final at tree size {tree_size}: {head}")


@dataclass
class RunningSystem:
    process: subprocess.Popen[bytes]
    log: Path
    data_dir: Path
    offset: int

    @property
    def ports(self) -> list[int]:
        return [BROKER_PORT + self.offset] + [
            spec.port for spec in default_services(port_offset=self.offset)
        ]

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, text: str, *, timeout: float, after: int = 0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output()[after:]:
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not seen within {timeout} s; output:\n{self.output()}")

    def interrupt(self, *, timeout: float) -> float:
        """Ctrl-C; returns how long `up` took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started


def start_system(
    data_dir: Path,
    log: Path,
    offset: int,
    *options: str,
    bootstrap: str | None = None,
    settings: dict[str, str] | None = None,
) -> RunningSystem:
    """`careledger up` (with `options`, e.g. ``--only``) as a child process: on an embedded
    broker of its own, or on the running broker at `bootstrap` (several chains on one);
    `settings` are extra environment variables for every service."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= settings or {}
    if bootstrap is not None:
        env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                *CARELEDGER,
                "up",
                "--data-dir",
                str(data_dir),
                "--port-offset",
                str(offset),
                *options,
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**env, "COLUMNS": "200"},
        )
    return RunningSystem(process, log, data_dir, offset)


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """One running system shared by a module's tests (starting one takes seconds)."""
    yield from run_system(tmp_path_factory.mktemp("careledger"))


@pytest.fixture
def own_system(tmp_path: Path) -> Iterator[RunningSystem]:
    """A system of the test's own, for tests that stop it."""
    yield from run_system(tmp_path)


def run_system(directory: Path) -> Iterator[RunningSystem]:
    running = start_system(directory / "data", directory / "up.log", free_offset())
    try:
        running.wait_for_output("all services ready", timeout=120)
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGINT)
            try:
                running.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                running.process.kill()
