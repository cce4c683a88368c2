"""The transactional outbox: events stored with the state change, relayed to Kafka at least once.

A use case adds messages through an OutboxWriter inside its own transaction; the
OutboxRelay publishes them after commit and marks them sent on delivery. Downstream
consumers de-duplicate by (source, id) with shared.inbox. See docs/outbox.md.
"""

from shared.outbox.backoff import Backoff
from shared.outbox.memory import MemoryOutbox
from shared.outbox.message import (
    CLOUDEVENTS_JSON,
    CONTENT_TYPE_HEADER,
    DuplicateEventError,
    InvalidEventError,
    OutboxEntry,
    OutboxMessage,
    message_for_event,
)
from shared.outbox.ports import NoMetrics, OutboxMetrics, OutboxStore, OutboxWriter
from shared.outbox.relay import OutboxRelay
from shared.outbox.sql import OUTBOX_MIGRATIONS, OUTBOX_VERSION_TABLE, SqlOutbox, migrate_outbox

__all__ = [
    "CLOUDEVENTS_JSON",
    "CONTENT_TYPE_HEADER",
    "OUTBOX_MIGRATIONS",
    "OUTBOX_VERSION_TABLE",
    "Backoff",
    "DuplicateEventError",
    "InvalidEventError",
    "MemoryOutbox",
    "NoMetrics",
    "OutboxEntry",
    "OutboxMessage",
    "OutboxMetrics",
    "OutboxRelay",
    "OutboxStore",
    "OutboxWriter",
    "SqlOutbox",
    "message_for_event",
    "migrate_outbox",
]
