"""Whether a database error means "the store cannot take writes now" (disk full, read-only,
server gone, locked too long) rather than a bug, and how long ago the last write failed so.

A storage failure is the operator's to fix, not the caller's: the APIs answer it 503 with
Retry-After (`shared.runtime.unavailable`), readiness reports it, and nothing needs a restart
when space or the server returns, because every write tries the store afresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.errors import CareLedgerError

__all__ = ["UNAVAILABLE_KINDS", "WriteHealth", "WriteSlotTimeoutError", "unavailable_kind"]

#: Every kind of storage failure, as named in 503 bodies and readiness.
UNAVAILABLE_KINDS: Final = ("full", "read_only", "io_error", "busy", "unreachable")

#: SQLite's primary result codes (the name before any `_` extension) that are storage failures.
_SQLITE_KINDS: Final = {
    "SQLITE_FULL": "full",
    "SQLITE_READONLY": "read_only",
    "SQLITE_IOERR": "io_error",
    "SQLITE_CANTOPEN": "io_error",
    "SQLITE_BUSY": "busy",
    "SQLITE_LOCKED": "busy",
}
#: PostgreSQL SQLSTATEs (by class or exact code) that are storage failures.
_SQLSTATE_KINDS: Final = {
    "53100": "full",  # disk_full
    "25006": "read_only",  # read_only_sql_transaction (a standby, or default_transaction_read_only)
    "58030": "io_error",  # io_error
    "08": "unreachable",  # connection exception
    "57P": "unreachable",  # operator intervention: admin or crash shutdown, cannot connect now
    "53": "busy",  # insufficient resources: out of memory, too many connections
    "55P03": "busy",  # lock_not_available
}


class WriteSlotTimeoutError(CareLedgerError, TimeoutError):
    """No write slot on the database within the busy timeout (another writer held it)."""


def unavailable_kind(exc: BaseException) -> str | None:
    """The kind of storage failure `exc` is (`UNAVAILABLE_KINDS`), or None if it is not one
    (a constraint violation, a bad statement: a bug, which stays a 500)."""
    if isinstance(exc, WriteSlotTimeoutError | PoolTimeoutError):
        return "busy"
    if not isinstance(exc, DBAPIError):
        return None
    if exc.connection_invalidated:
        return "unreachable"
    original = exc.orig
    name = getattr(original, "sqlite_errorname", None)
    if isinstance(name, str):
        return _SQLITE_KINDS.get("_".join(name.split("_")[:2]))
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _sqlstate_kind(sqlstate)
    # A driver error without a code (psycopg: the server closed the connection mid-query).
    return "unreachable" if isinstance(exc, OperationalError) else None


def _sqlstate_kind(sqlstate: str) -> str | None:
    """The most specific entry of `_SQLSTATE_KINDS` (code, then its class); others are bugs."""
    for prefix in (sqlstate, sqlstate[:3], sqlstate[:2]):
        if prefix in _SQLSTATE_KINDS:
            return _SQLSTATE_KINDS[prefix]
    return None


class WriteHealth:
    """The last storage failure of a write, for readiness: reported until a write succeeds
    or `window` seconds pass without another (so readiness never sticks on a store nobody
    writes to: the next write tries again and reports afresh)."""

    def __init__(self, *, window: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._failed: tuple[str, float] | None = None

    def failed(self, kind: str) -> None:
        with self._lock:
            self._failed = (kind, self._clock())

    def succeeded(self) -> None:
        with self._lock:
            self._failed = None

    def problem(self) -> str | None:
        """ "writes failing (full) 3 s ago", or None when the last write succeeded (or the
        failure is older than the window)."""
        with self._lock:
            if self._failed is None:
                return None
            kind, at = self._failed
            age = self._clock() - at
            if age > self._window:
                self._failed = None
                return None
        return f"writes failing ({kind}) {age:.0f} s ago"
