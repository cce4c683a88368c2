"""The in-memory replay table, for tests and `dev` runs (one process, lost on restart)."""

from __future__ import annotations

import heapq
import threading
from datetime import datetime

from shared.auth.jws import TokenError, TokenFailure


class MemorySeenTokens:
    """SeenTokens in a dict, with a heap of expiries so purging is cheap."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[tuple[str, str], datetime] = {}
        self._by_expiry: list[tuple[datetime, str, str]] = []

    def remember(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> None:
        require_entry(issuer, jti)
        key = (issuer, jti)
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                raise replayed(issuer, jti)
            self._expiry[key] = expires_at
            heapq.heappush(self._by_expiry, (expires_at, issuer, jti))

    def holds(self, issuer: str, jti: str, now: datetime) -> bool:
        """Whether (issuer, jti) is remembered and not yet expired at `now`."""
        with self._lock:
            self._purge(now)
            return (issuer, jti) in self._expiry

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _purge(self, now: datetime) -> None:
        while self._by_expiry and self._by_expiry[0][0] <= now:
            expires_at, issuer, jti = heapq.heappop(self._by_expiry)
            if self._expiry.get((issuer, jti)) == expires_at:
                del self._expiry[(issuer, jti)]


def require_entry(issuer: str, jti: str) -> None:
    if not issuer or not jti:
        raise ValueError("a seen token is a non-empty (issuer, jti)")


def replayed(issuer: str, jti: str) -> TokenError:
    return TokenError(
        TokenFailure.REPLAYED, "this token id was already used", issuer=issuer, jti=jti[:128]
    )
