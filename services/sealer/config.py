"""Settings of the sealer service (env prefix CARELEDGER_)."""

from __future__ import annotations

import os
from typing import ClassVar

from pydantic import Field

from services.sealer.core.cut import CutPolicy
from shared.envelope import MAX_EVENT_BYTES
from shared.runtime.settings import ServiceSettings

#: More verify workers than this buys nothing a sealer could use (one thread admits).
MAX_VERIFY_WORKERS = 64


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset
    sets), at most `MAX_VERIFY_WORKERS`."""
    return min(MAX_VERIFY_WORKERS, max(1, len(os.sched_getaffinity(0))))


class SealerSettings(ServiceSettings):
    service_name: ClassVar[str] = "sealer"
    default_port: ClassVar[int] = 8104

    #: Cut a block at this many events (CARELEDGER_BLOCK_MAX_EVENTS) ...
    block_max_events: int = Field(default=500, ge=1, le=100_000)
    #: ... or this many bytes of canonical events (CARELEDGER_BLOCK_MAX_BYTES) ...
    block_max_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    #: ... or this long after the block's first event (CARELEDGER_BLOCK_MAX_WAIT_SECONDS).
    block_max_wait_seconds: float = Field(default=0.2, ge=0.0, le=60.0)

    #: A sealer that stops renewing its writer lease for this long is replaced by a standby
    #: (CARELEDGER_SEALER_LEASE_SECONDS); it renews every third of it.
    sealer_lease_seconds: float = Field(default=10.0, ge=1.0, le=600.0)

    #: Processes checking event signatures (CARELEDGER_SEALER_VERIFY_WORKERS; ADR 0010): by
    #: default one per core this process may run on; 1 checks them in process, no pool.
    sealer_verify_workers: int = Field(default_factory=usable_cores, ge=1, le=MAX_VERIFY_WORKERS)

    #: The HTTP ingest's only body is one event: the app-wide body limit is the envelope's
    #: (64 KiB), so a larger request is refused before it is read (CARELEDGER_MAX_REQUEST_BYTES).
    max_request_bytes: int = Field(default=MAX_EVENT_BYTES, ge=4096, le=16 * 1024 * 1024)
    #: Where the ingest's 202 points for the receipt: a validator's base URL
    #: (CARELEDGER_INGEST_RECEIPT_URL; `careledger up` sets validator-1's).
    ingest_receipt_url: str = Field(default="http://127.0.0.1:8111", pattern=r"^https?://\S+$")

    def cut_policy(self) -> CutPolicy:
        """The block-cutting limits these settings name."""
        return CutPolicy(
            max_events=self.block_max_events,
            max_bytes=self.block_max_bytes,
            max_wait=self.block_max_wait_seconds,
        )
