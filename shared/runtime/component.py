"""Lifecycle parts of a service (store, broker probe, relay, consumers) and their readiness."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from shared.errors import CareLedgerError
from shared.kafka import BrokerUnavailableError, KafkaSettings, probe_broker
from shared.outbox import OutboxRelay

log = logging.getLogger(__name__)


class NotReadyError(CareLedgerError):
    """A component cannot serve yet; the message says why (shown by /readyz)."""


class Component(Protocol):
    """Something a service starts at boot, stops at shutdown and reports on in /readyz."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None:
        """Finish in-flight work, then release resources. Must be safe to call twice."""

    def check(self) -> None:
        """Return if ready; raise NotReadyError with the reason otherwise. Must be cheap."""


class CheckedResource:
    """A component around an already-open resource (a store): its ping and its close, and
    optionally what is wrong with it although it answers (a store whose writes fail)."""

    def __init__(
        self,
        *,
        name: str,
        ping: Callable[[], bool],
        close: Callable[[], None],
        problem: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.name = name
        self._ping = ping
        self._close = close
        self._problem = problem
        self._open = False

    def start(self) -> None:
        self._open = True

    def stop(self) -> None:
        if self._open:
            self._open = False
            self._close()

    def check(self) -> None:
        if not self._open:
            raise NotReadyError(f"{self.name} is closed")
        if not self._ping():
            raise NotReadyError(f"{self.name} does not answer")
        problem = self._problem()
        if problem is not None:
            raise NotReadyError(f"{self.name}: {problem}")


class BrokerProbe:
    """Watches broker reachability in the background so /readyz never blocks on Kafka."""

    name = "broker"

    def __init__(self, *, kafka: KafkaSettings, interval: float = 2.0) -> None:
        self._kafka = kafka
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: str | None = "not probed yet"

    def start(self) -> None:
        self._probe()
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval + 3)
            self._thread = None

    def check(self) -> None:
        if self._state is not None:
            raise NotReadyError(f"broker: {self._state}")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._probe()

    def _probe(self) -> None:
        try:
            probe_broker(self._kafka, timeout=min(self._interval, 2.0))
        except BrokerUnavailableError:
            if self._state is None:
                log.warning(
                    "broker unreachable", extra={"bootstrap": self._kafka.bootstrap_servers}
                )
            self._state = f"unreachable at {self._kafka.bootstrap_servers}"
        else:
            if self._state is not None and self._state != "not probed yet":
                log.info("broker reachable again")
            self._state = None


class RelayComponent:
    """The outbox relay as a component: started after the store, drained at shutdown."""

    name = "outbox"

    def __init__(self, relay: OutboxRelay, *, drain_timeout: float = 5.0) -> None:
        self._relay = relay
        self._drain_timeout = drain_timeout

    def start(self) -> None:
        self._relay.start()

    def stop(self) -> None:
        if not self._relay.stop(drain_timeout=self._drain_timeout):
            log.warning("outbox not drained at shutdown; the rest is sent at the next start")

    def check(self) -> None:
        if not self._relay.running:
            raise NotReadyError("outbox relay is not running")
