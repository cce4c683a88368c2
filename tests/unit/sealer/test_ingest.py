"""The HTTP ingest's checks (`core.ingest.check_posted`) and its use case (`EventIngest`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.sealer.core.ingest import (
    INGEST_STATUS,
    IngestRefusedError,
    check_posted,
    topic_of,
)
from services.sealer.errors import IngestUnavailableError
from services.sealer.ingest import EventIngest
from shared.admission import InMemorySeenEvents, SignerRegistry
from shared.canonical import canonicalize
from shared.envelope import CONTENT_TYPE, MAX_EVENT_BYTES, encode_event
from shared.outbox import DuplicateEventError, OutboxMessage
from tests.unit.core.chainfactory import ChainFactory

NOW = datetime.now(UTC)


def posted(factory: ChainFactory, event: dict[str, Any], **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "content_type": CONTENT_TYPE,
        "caller": event.get("signer", factory.did("publisher")),
        "registry": factory.state.registry,
        "seen": InMemorySeenEvents(),
        "at": NOW,
    }
    arguments.update(changes)
    body = arguments.pop("body", None)
    return check_posted(body if body is not None else encode_event(event), **arguments)


def refusal(factory: ChainFactory, event: dict[str, Any], **changes: Any) -> IngestRefusedError:
    with pytest.raises(IngestRefusedError) as raised:
        posted(factory, event, **changes)
    assert raised.value.status == INGEST_STATUS[raised.value.reason]
    return raised.value


def test_a_publishers_own_clinical_event_goes_to_clinical_events() -> None:
    factory = ChainFactory()
    event = factory.event()
    accepted = posted(factory, event, content_type="Application/CloudEvents+JSON; charset=utf-8")
    assert accepted.topic == "clinical.events"
    assert accepted.parsed.dedup_key == (event["source"], event["id"])


def test_a_non_canonical_body_is_accepted_and_stored_canonical() -> None:
    factory = ChainFactory()
    event = factory.event()
    pretty = canonicalize(event).decode().replace(",", ", ").encode()
    accepted = posted(factory, event, body=pretty)
    assert accepted.parsed.leaf_bytes == encode_event(event)


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [(None, "unsupported_media_type"), ("application/json", "unsupported_media_type")],
)
def test_only_structured_mode_is_accepted(content_type: str | None, reason: str) -> None:
    factory = ChainFactory()
    assert refusal(factory, factory.event(), content_type=content_type).reason == reason


def test_an_oversized_body_is_refused_before_parsing() -> None:
    factory = ChainFactory()
    found = refusal(factory, factory.event(), body=b"{" * (MAX_EVENT_BYTES + 1))
    assert (found.reason, found.status) == ("too_large", 413)


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"specversion": "1.0"}'])
def test_what_is_not_a_signed_cloudevent_is_malformed(body: bytes) -> None:
    factory = ChainFactory()
    found = refusal(factory, factory.event(), body=body)
    assert (found.reason, found.status) == ("malformed", 400)


def test_the_caller_must_be_the_signer() -> None:
    factory = ChainFactory()
    found = refusal(factory, factory.event(), caller=factory.did("publisher-2"))
    assert (found.reason, found.status) == ("not_signer", 403)


def test_a_type_without_an_input_topic_is_refused() -> None:
    with pytest.raises(IngestRefusedError, match="unknown_topic"):
        topic_of("org.careledger.consultation.completed.v1")
    assert topic_of("org.careledger.billing.invoice.issued.v1") == "billing.events"


def test_a_bad_signature_is_refused() -> None:
    factory = ChainFactory()
    event = factory.event()
    event["data"] = {"n": -1}
    found = refusal(factory, event)
    assert (found.reason, found.status) == ("bad_signature", 400)


@pytest.mark.parametrize(
    ("signer", "event_type", "reason"),
    [
        ("stranger", "org.careledger.clinical.note.signed.v1", "unknown_signer"),
        ("publisher", "org.careledger.records.unknown.v1", "unauthorized_type"),
    ],
)
def test_the_signer_needs_standing_on_the_chain(signer: str, event_type: str, reason: str) -> None:
    factory = ChainFactory()
    found = refusal(factory, factory.event(signer, event_type))
    assert (found.reason, found.status) == (reason, 403)


def test_an_event_sealed_already_is_a_duplicate() -> None:
    factory = ChainFactory()
    event = factory.event()
    seen = InMemorySeenEvents([(event["source"], event["id"])])
    found = refusal(factory, event, seen=seen)
    assert (found.reason, found.status) == ("duplicate", 409)


class FakeQueue:
    """`EventQueue` in memory, with the outbox's (source, id) uniqueness."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], OutboxMessage] = {}

    def enqueue(self, message: OutboxMessage) -> bool:
        known = self.stored.get(message.dedup_key)
        if known is None:
            self.stored[message.dedup_key] = message
            return True
        if known.value == message.value:
            return False
        raise DuplicateEventError(message.dedup_key)


def ingest(
    factory: ChainFactory, queue: FakeQueue, notified: list[int], *, registry: bool = True
) -> EventIngest:
    chain_registry: SignerRegistry | None = factory.state.registry if registry else None
    return EventIngest(
        queue=queue,
        registry=lambda: chain_registry,
        seen=InMemorySeenEvents(),
        notify=lambda: notified.append(1),
        receipt_base="http://validator:8111/",
        clock=lambda: NOW,
    )


def test_an_accepted_event_is_queued_once_and_answers_where_its_proof_will_be() -> None:
    factory = ChainFactory()
    queue, notified = FakeQueue(), []
    use_case = ingest(factory, queue, notified)
    event = factory.event(source="https://video.example/app?x=1")
    first = use_case.accept(encode_event(event), content_type=CONTENT_TYPE, caller=event["signer"])
    again = use_case.accept(encode_event(event), content_type=CONTENT_TYPE, caller=event["signer"])
    assert (first.replayed, again.replayed) == (False, True)
    assert (
        first.location
        == again.location
        == (
            "http://validator:8111/v1/proofs/inclusion?source=https%3A%2F%2Fvideo.example%2Fapp"
            f"%3Fx%3D1&id={event['id']}"
        )
    )
    assert first.topic == "clinical.events"
    assert len(queue.stored) == 1
    stored = queue.stored[(event["source"], event["id"])]
    assert stored.value == encode_event(event)
    assert stored.key == event["id"].encode()
    assert notified == [1]  # a post that stored nothing wakes no relay


def test_another_event_under_a_used_key_is_a_duplicate() -> None:
    factory = ChainFactory()
    queue, notified = FakeQueue(), []
    use_case = ingest(factory, queue, notified)
    event = factory.event(event_id="0190a0a0-0000-7000-8000-000000000001")
    use_case.accept(encode_event(event), content_type=CONTENT_TYPE, caller=event["signer"])
    other = factory.event(event_id=event["id"])
    with pytest.raises(IngestRefusedError, match="duplicate"):
        use_case.accept(encode_event(other), content_type=CONTENT_TYPE, caller=other["signer"])
    assert queue.stored[(event["source"], event["id"])].value == encode_event(event)


def test_without_chain_state_the_ingest_is_unavailable() -> None:
    factory = ChainFactory()
    queue, notified = FakeQueue(), []
    event = factory.event()
    with pytest.raises(IngestUnavailableError):
        ingest(factory, queue, notified, registry=False).accept(
            encode_event(event), content_type=CONTENT_TYPE, caller=event["signer"]
        )
    assert queue.stored == {}


@pytest.mark.parametrize("number", [2**53, -(2**53), 2**63, 2**64, 10**29])
def test_an_integer_without_an_rfc8785_form_is_malformed(number: int) -> None:
    factory = ChainFactory()
    event = factory.event()
    body = encode_event(event).replace(b'"data":{', b'"data":{"big":%d,' % number)
    found = refusal(factory, event, body=body)
    assert (found.reason, found.status) == ("malformed", 400)
