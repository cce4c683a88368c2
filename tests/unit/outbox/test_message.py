"""message_for_event follows the brief's Kafka conventions; OutboxMessage refuses nonsense."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.canonical import canonicalize
from shared.outbox import (
    CLOUDEVENTS_JSON,
    InvalidEventError,
    OutboxMessage,
    message_for_event,
)

EVENT = {
    "specversion": "1.0",
    "id": "018f3a1c-7b2e-7c4d-9a8b-0c1d2e3f4a5b",
    "source": "https://records.example/",
    "type": "org.careledger.records.record_created.v1",
    "time": "2025-11-24T10:00:00Z",
    "subject": "pseudo-42",
    "datacontenttype": "application/json",
    "data": {"commitment": "ab" * 32, "label": "Zürich ✓"},
    "signer": "did:key:z6MkExample",
    "signature": "c2ln",
}


def test_the_value_is_the_event_as_rfc8785_utf8_json() -> None:
    message = message_for_event(EVENT, topic="records.events")
    assert message.value == canonicalize(EVENT)  # the Merkle leaf input, byte for byte
    assert b" " not in message.value.replace(b"Z\xc3\xbcrich \xe2\x9c\x93", b"")
    assert "Zürich ✓".encode() in message.value  # UTF-8, not \\u escapes
    assert json.loads(message.value) == EVENT


def test_key_header_topic_and_dedup_key() -> None:
    message = message_for_event(EVENT, topic="records.events")
    assert message.topic == "records.events"
    assert message.key == b"pseudo-42"
    assert message.headers == (("content-type", CLOUDEVENTS_JSON),)
    assert CLOUDEVENTS_JSON == b"application/cloudevents+json"
    assert message.dedup_key == ("https://records.example/", EVENT["id"])


@pytest.mark.parametrize("subject", [None, ""])
def test_the_key_falls_back_to_the_id(subject: str | None) -> None:
    event = {k: v for k, v in EVENT.items() if k != "subject"}
    if subject is not None:
        event["subject"] = subject
    assert message_for_event(event, topic="t").key == str(EVENT["id"]).encode()


@pytest.mark.parametrize(
    "broken",
    [
        {"id": "1"},
        {"source": "s"},
        {"source": "", "id": "1"},
        {"source": "s", "id": 7},
        {"source": "s", "id": "1", "subject": 3},
        {"source": "s", "id": "1", "data": float("nan")},
        {"source": "s", "id": "1", "data": {1, 2}},
        {"source": "s", "id": "1", "data": "\ud800"},
    ],
)
def test_events_that_cannot_be_messages_are_refused(broken: dict[str, object]) -> None:
    with pytest.raises(InvalidEventError):
        message_for_event(broken, topic="t")


def test_outbox_message_checks_its_fields() -> None:
    ok = {"topic": "t", "key": None, "value": b"v", "dedup_key": ("s", "1")}
    OutboxMessage(**ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="topic"):
        OutboxMessage(**{**ok, "topic": ""})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OutboxMessage(**{**ok, "value": "text"})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        OutboxMessage(**{**ok, "headers": (("h", "text"),)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dedup_key"):
        OutboxMessage(**{**ok, "dedup_key": ("s", "")})  # type: ignore[arg-type]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _has_unsafe_integer(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) > 2**53 - 1
    if isinstance(value, dict):
        return any(_has_unsafe_integer(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_unsafe_integer(item) for item in value)
    return False


@given(data=json_values, subject=st.none() | st.text(min_size=1), event_id=st.text(min_size=1))
def test_any_json_event_survives_the_trip(data: object, subject: str | None, event_id: str) -> None:
    event: dict[str, object] = {"source": "urn:s", "id": event_id, "data": data}
    if subject is not None:
        event["subject"] = subject
    try:
        message = message_for_event(event, topic="t")
    except InvalidEventError:
        # Only what RFC 8785 cannot encode exactly may be refused: strings that are not
        # Unicode (lone surrogates) and integers beyond ±(2**53 - 1).
        assert "\\ud" in json.dumps(event) or _has_unsafe_integer(event)
        return
    assert json.loads(message.value.decode("utf-8")) == event
    assert message.key == (subject or event_id).encode()
