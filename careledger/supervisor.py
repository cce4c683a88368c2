"""Runs every service as its own process: prefixed logs, readiness, restarts, clean stop."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from careledger.topology import ServiceSpec, loopback_tls

#: Restart back-off: 1 s, doubling up to 30 s; reset after a minute of healthy uptime.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
HEALTHY_UPTIME = 60.0

LineSink = Callable[[str, str], None]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the supervisor dies, so nothing is left behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ManagedProcess:
    """One service process and its restart state."""

    spec: ServiceSpec
    env: Mapping[str, str]
    sink: LineSink
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.spec.module],
            env={**self.env, **dict(self.spec.extra_env)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us in order
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only async-signal-safe work inside
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        self._pump = threading.Thread(
            target=self._pump_output, args=(self.process,), name=f"log-{self.spec.name}"
        )
        self._pump.daemon = True
        self._pump.start()

    def _pump_output(self, process: subprocess.Popen[bytes]) -> None:
        if process.stdout is None:
            return
        for raw in iter(process.stdout.readline, b""):
            self.sink(self.spec.name, raw.decode("utf-8", "replace").rstrip("\n"))
        process.stdout.close()

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()

    def wait(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        if self._pump is not None:
            self._pump.join(timeout=1)
        return True


class Supervisor:
    """Starts the services, restarts the ones that die (with back-off), stops them all."""

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        *,
        env: Mapping[str, str],
        sink: LineSink,
        announce: Callable[[str], None],
    ) -> None:
        self._announce = announce
        self.processes = [ManagedProcess(spec, {**env, **_port_env(spec)}, sink) for spec in specs]
        #: The services serve HTTPS when the environment gives them a certificate.
        self.tls = loopback_tls(env)

    def start_all(self) -> None:
        for managed in self.processes:
            managed.start()

    def wait_ready(self, *, timeout: float) -> dict[str, str]:
        """Poll every /readyz until all answer 200 or the time is up; return the states."""
        deadline = time.monotonic() + timeout
        states = {m.spec.name: "starting" for m in self.processes}
        with httpx.Client(timeout=1.0, verify=self.tls or True) as client:
            while time.monotonic() < deadline:
                for managed in self.processes:
                    states[managed.spec.name] = readiness(
                        client, managed.spec, tls=self.tls is not None
                    )
                if all(state == "ready" for state in states.values()):
                    break
                self.tend()
                time.sleep(0.25)
        return states

    def tend(self, now: float | None = None) -> None:
        """Notice deaths loudly and restart with exponential back-off."""
        now = time.monotonic() if now is None else now
        for managed in self.processes:
            code = managed.exit_code()
            if code is None:
                if now - managed.started_at > HEALTHY_UPTIME:
                    managed.backoff = BACKOFF_FIRST
                continue
            if managed.restart_at is None:
                managed.restart_at = now + managed.backoff
                self._announce(
                    f"!! {managed.spec.name} exited with code {code}; "
                    f"restarting in {managed.backoff:.0f} s"
                )
                managed.backoff = min(managed.backoff * 2, BACKOFF_MAX)
            elif now >= managed.restart_at:
                managed.restarts += 1
                self._announce(f"!! restarting {managed.spec.name} (restart #{managed.restarts})")
                managed.start()

    def stop_all(self, *, timeout: float) -> list[str]:
        """SIGTERM everyone at once, wait, then SIGKILL stragglers; return their names."""
        deadline = time.monotonic() + timeout
        for managed in self.processes:
            managed.terminate()
        stragglers = [m for m in self.processes if not m.wait(deadline - time.monotonic())]
        for managed in stragglers:
            managed.kill()
            managed.wait(2)
        return [m.spec.name for m in stragglers]


def readiness(client: httpx.Client, spec: ServiceSpec, *, tls: bool = False) -> str:
    """`ready`, `not ready: <reasons>` or `down`."""
    try:
        response = client.get(f"{spec.url(tls=tls)}/readyz")
    except httpx.HTTPError:
        return "down"
    if response.status_code == 200:
        return "ready"
    try:
        checks = response.json().get("checks", {})
    except ValueError:
        return f"not ready: HTTP {response.status_code}"
    failing = [f"{name}: {state}" for name, state in checks.items() if state != "ok"]
    return "not ready: " + "; ".join(failing or [f"HTTP {response.status_code}"])


def _port_env(spec: ServiceSpec) -> dict[str, str]:
    return {"CARELEDGER_PORT": str(spec.port)}


def install_stop_signals(stop: threading.Event) -> None:
    """Ctrl-C and SIGTERM both mean: stop everything cleanly."""

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The supervisor's environment plus ours; PYTHONUNBUFFERED so logs stream live."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
