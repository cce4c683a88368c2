"""Where time and ids come from in a running service.

Cores and use cases take a clock and id makers as arguments (tests hand in fakes); these are
the real ones that `wiring.py` and the shared adapters hand in, in one place.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime

from shared.envelope import uuid7

__all__ = ["new_event_id", "new_random_id", "utc_now"]


def utc_now() -> datetime:
    """The wall clock, timezone-aware UTC."""
    return datetime.now(UTC)


def new_event_id(now: datetime) -> str:
    """A CloudEvents id: UUIDv7 of `now` (milliseconds) and 80 random bits."""
    return uuid7(int(now.timestamp() * 1000), os.urandom(10))


def new_random_id() -> str:
    """A random UUIDv4: for ids that must not reveal when they were made (records, consents,
    invoices, payments), unlike a UUIDv7."""
    return str(uuid.uuid4())
