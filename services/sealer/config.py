"""Settings of the sealer service (env prefix CARELEDGER_)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from services.sealer.core.cut import CutPolicy
from shared.runtime.settings import ServiceSettings


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

    def cut_policy(self) -> CutPolicy:
        """The block-cutting limits these settings name."""
        return CutPolicy(
            max_events=self.block_max_events,
            max_bytes=self.block_max_bytes,
            max_wait=self.block_max_wait_seconds,
        )
