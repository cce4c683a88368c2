"""The sealer's loop on a thread of its own, as a service component (/readyz: `sealer`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from services.sealer.ports import EventSource, LedgerPublisher
from services.sealer.service import Sealer
from shared.runtime.component import NotReadyError
from shared.runtime.signature_pool import SignaturePool

log = logging.getLogger(__name__)


class SealingComponent:
    """The sealer's loop on a thread of its own, as a service component (/readyz: `sealer`).

    The broker clients are used and closed on that thread only (they are not thread-safe), and
    so is the signature pool, if any (a worker that dies fails the loop like any bug).
    Anything but a transient error ends the loop: a bug, or a state the sealer must not seal
    past (a genesis mismatch, a rewound input partition). /readyz then says why and
    `on_failure` is told; wiring makes that stop the process with a non-zero exit code, so
    the supervisor restarts it and a restart that cannot help shows as a crash loop whose
    every start logs the reason (ADR 0006).
    """

    name = "sealer"

    def __init__(
        self,
        *,
        sealer: Sealer,
        source: EventSource,
        publisher: LedgerPublisher,
        signatures: SignaturePool | None = None,
        join_timeout: float = 10.0,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        self._sealer = sealer
        self._source = source
        self._publisher = publisher
        self._signatures = signatures
        self._join_timeout = join_timeout
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._on_failure = on_failure

    @property
    def sealer(self) -> Sealer:
        """The loop this component runs (the HTTP ingest reads its chain state)."""
        return self._sealer

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sealer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._sealer.stop()
        if self._thread is not None:
            self._thread.join(timeout=self._join_timeout)
            if self._thread.is_alive():
                log.warning("sealer thread did not stop in time")
            self._thread = None

    def check(self) -> None:
        if self._failure is not None:
            raise NotReadyError(f"sealer stopped: {self._failure}")
        if self._thread is None or not self._thread.is_alive():
            raise NotReadyError("sealer is not running")
        if self._sealer.trouble is not None:
            raise NotReadyError(self._sealer.trouble)

    def _run(self) -> None:
        try:
            self._sealer.run()
        except Exception as exc:
            self._failure = type(exc).__name__
            log.exception("sealer failed")
        finally:
            try:
                self._source.close()
            finally:
                try:
                    self._publisher.close()
                finally:
                    if self._signatures is not None:
                        self._signatures.close()
        if self._failure is not None and self._on_failure is not None:
            self._on_failure(f"the sealer stopped: {self._failure}")
