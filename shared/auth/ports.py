"""The replay port: which (issuer, jti) pairs have been used while their tokens still live."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class SeenTokens(Protocol):
    """Remembers each accepted token until it expires, so a jti is accepted once.

    Entries past their expiry are purged as new ones arrive: the table holds at most the
    tokens of the last max-lifetime seconds.
    """

    def remember(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> None:
        """Record (issuer, jti) until `expires_at`; raise TokenError(REPLAYED) if it is
        already recorded and not expired at `now`."""
        ...
