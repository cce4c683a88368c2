"""The inbox: consumers apply each event once, de-duplicated by (source, id) in their own tx."""

from shared.inbox.memory import MemoryProcessedEvents
from shared.inbox.ports import ProcessedEvents
from shared.inbox.sql import (
    INBOX_MIGRATIONS,
    INBOX_VERSION_TABLE,
    SqlProcessedEvents,
    migrate_inbox,
)

__all__ = [
    "INBOX_MIGRATIONS",
    "INBOX_VERSION_TABLE",
    "MemoryProcessedEvents",
    "ProcessedEvents",
    "SqlProcessedEvents",
    "migrate_inbox",
]
