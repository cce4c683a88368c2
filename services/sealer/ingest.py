"""The HTTP ingest use case: check a posted event as admission would, store it in the
outbox, and say where its receipt will be (ADR 0016, docs/client.md).

Order of effects: `core.ingest.check_posted` (nothing stored on any refusal) -> one outbox
row in its own committed transaction -> the relay is woken -> the answer. The 202 therefore
means "durably queued": the relay produces it to Kafka (idempotent producer, acks=all) even
if the broker is down now (BRIEF principle 5). The row's unique `(source, id)` makes a
retried post a no-op answered like the first; a different event under a used key is a 409.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from services.sealer.core.ingest import IngestRefusedError, check_posted
from services.sealer.errors import IngestUnavailableError
from services.sealer.ports import EventQueue
from shared.admission import SeenEvents, SignerRegistry
from shared.envelope import Reason
from shared.outbox import DuplicateEventError, message_for_event
from shared.sources import utc_now

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestReceipt:
    """The 202 answer: the event is queued for `topic`; its proof will be at `location`."""

    source: str
    id: str
    topic: str
    location: str
    replayed: bool  # the same event was posted (and queued) before


class EventIngest:
    """`accept`: one posted event, checked, stored and announced; see the module docstring."""

    def __init__(
        self,
        *,
        queue: EventQueue,
        registry: Callable[[], SignerRegistry | None],
        seen: SeenEvents,
        notify: Callable[[], None],
        receipt_base: str,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._seen = seen
        self._notify = notify
        self._receipt_base = receipt_base.rstrip("/")
        self._clock = clock

    def accept(self, body: bytes, *, content_type: str | None, caller: str) -> IngestReceipt:
        """Raise `IngestRefusedError` (a 4xx) or `IngestUnavailableError` (503); else queue it."""
        registry = self._registry()
        if registry is None:
            raise IngestUnavailableError("this sealer holds no chain state (standby or starting)")
        posted = check_posted(
            body,
            content_type=content_type,
            caller=caller,
            registry=registry,
            seen=self._seen,
            at=self._clock(),
        )
        source, event_id = posted.parsed.dedup_key
        message = message_for_event(posted.parsed.event, topic=posted.topic)
        try:
            stored = self._queue.enqueue(message)
        except DuplicateEventError:
            raise IngestRefusedError(
                Reason.DUPLICATE.value,
                "another event with this (source, id) was posted before",
            ) from None
        if stored:
            self._notify()
        log.info(
            "event queued" if stored else "event posted again",
            extra={"topic": posted.topic, "type": posted.parsed.type},
        )
        query = urlencode({"source": source, "id": event_id})
        return IngestReceipt(
            source=source,
            id=event_id,
            topic=posted.topic,
            location=f"{self._receipt_base}/v1/proofs/inclusion?{query}",
            replayed=not stored,
        )
