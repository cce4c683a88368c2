"""What the HTTP ingest (`POST /v1/events`, ADR 0016) accepts: admission's own rules, checked
before anything is stored, plus who may post.

Pure. Checks, in this order (the first that fails decides the answer):

1. `Content-Type` is `application/cloudevents+json` (the CloudEvents HTTP binding's
   structured mode; parameters such as `charset=utf-8` are allowed): else 415.
2. The body is at most `MAX_EVENT_BYTES` (64 KiB): else 413 `too_large`, before parsing.
3. It parses as a signed CloudEvent of the envelope (`shared.envelope.parse_event`): else
   400 `malformed` (or 413 `too_large` for a canonical form over the limit).
4. The caller (the bearer token's `iss`) is the event's `signer`: else 403 `not_signer`. A
   token proves who calls; the signature proves who speaks; the ingest wants both to be the
   same DID, so a leaked token of one platform cannot inject another's events.
5. The topic follows from the type: ``org.careledger.<domain>.…`` goes to
   ``<domain>.events``, which must be an input topic: else 422 `unknown_topic`.
6. `shared.admission.admit` against the registry of the last sealed block at `at`: the
   signature (400 `bad_signature`), the signer's standing (403 `unknown_signer`,
   `revoked_signer`, `unauthorized_type`), the data schema of service types (400
   `malformed`), and `(source, id)` not sealed yet (409 `duplicate`).

An event that passes here can still be rejected by the sealer (a revocation sealed in the
meantime, or a duplicate posted beside Kafka): then `ledger.rejected` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from shared.admission import SeenEvents, SignatureCheck, SignerRegistry, admit
from shared.envelope import (
    CONTENT_TYPE,
    MAX_EVENT_BYTES,
    EventRejected,
    ParsedEvent,
    Reason,
    parse_event,
    verify_event,
)
from shared.errors import CareLedgerError
from shared.topics import INPUT_TOPICS

__all__ = ["INGEST_STATUS", "IngestRefusedError", "PostedEvent", "check_posted", "topic_of"]

#: The HTTP status of each refusal reason (the brief's codes, and the ingest's own).
INGEST_STATUS: Final = {
    "unsupported_media_type": 415,
    Reason.TOO_LARGE.value: 413,
    Reason.MALFORMED.value: 400,
    Reason.BAD_SIGNATURE.value: 400,
    "not_signer": 403,
    "unknown_topic": 422,
    Reason.UNKNOWN_SIGNER.value: 403,
    Reason.REVOKED_SIGNER.value: 403,
    Reason.UNAUTHORIZED_TYPE.value: 403,
    Reason.DUPLICATE.value: 409,
}


class IngestRefusedError(CareLedgerError):
    """The posted event is refused: `reason` (a code of `INGEST_STATUS`), `status`, `detail`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.status = INGEST_STATUS[reason]
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PostedEvent:
    """An event the ingest accepts, and the logical topic it goes to."""

    parsed: ParsedEvent
    topic: str


def topic_of(event_type: str) -> str:
    """The input topic of a type: ``org.careledger.clinical.x.v1`` -> ``clinical.events``."""
    domain = event_type.split(".")[2]  # the envelope's pattern guarantees three segments
    topic = f"{domain}.events"
    if topic not in INPUT_TOPICS:
        raise IngestRefusedError(
            "unknown_topic",
            f"no input topic for domain {domain!r}: types go to <domain>.events, one of "
            + ", ".join(INPUT_TOPICS),
        )
    return topic


def check_posted(
    body: bytes,
    *,
    content_type: str | None,
    caller: str,
    registry: SignerRegistry,
    seen: SeenEvents,
    at: datetime,
    check_signature: SignatureCheck = verify_event,
) -> PostedEvent:
    """The event in `body` and its topic, if the ingest accepts it; `IngestRefusedError` if not."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != CONTENT_TYPE:
        raise IngestRefusedError(
            "unsupported_media_type",
            f"send one event in structured mode: Content-Type {CONTENT_TYPE}",
        )
    if len(body) > MAX_EVENT_BYTES:
        raise IngestRefusedError(
            Reason.TOO_LARGE.value, f"{len(body)} bytes, over {MAX_EVENT_BYTES}"
        )
    try:
        parsed = parse_event(body)
    except EventRejected as exc:
        raise IngestRefusedError(exc.reason.value, exc.detail) from None
    if parsed.signer != caller:
        raise IngestRefusedError(
            "not_signer", "the bearer token's issuer must be the event's signer"
        )
    topic = topic_of(parsed.type)
    try:
        admit(
            parsed,
            topic=topic,
            registry=registry,
            seen=seen,
            at=at,
            check_signature=check_signature,
        )
    except EventRejected as exc:
        raise IngestRefusedError(exc.reason.value, exc.detail) from None
    return PostedEvent(parsed, topic)
