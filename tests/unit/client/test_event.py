"""careledger.client.event: events built and signed as admission reads them, or refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from careledger.client import EventBuildError, check_signed_event, event_from_partial, signed_event
from careledger.client.event import check_topic, format_time
from shared.envelope import MAX_EVENT_BYTES, encode_event, is_rfc3339_utc, parse_and_verify
from tests.unit.core.chainfactory import key_for

KEY = key_for("publisher")
NOW = datetime.now(UTC)
TYPE = "org.careledger.clinical.note.signed.v1"


def build(**changes: Any) -> dict[str, object]:
    arguments: dict[str, Any] = {
        "type": TYPE,
        "data": {"encounter": "enc-1"},
        "source": "https://video.example/app",
        "now": NOW,
        "entropy": bytes(range(10)),
    }
    arguments.update(changes)
    return signed_event(KEY, **arguments)


def test_a_signed_event_has_a_uuid7_of_now_utc_time_and_the_keys_signature() -> None:
    event = build(subject="enc-1")
    parsed = parse_and_verify(encode_event(event))
    assert parsed.signer == KEY.did
    assert event["subject"] == "enc-1"
    assert str(event["id"])[14] == "7"  # version nibble
    assert int(str(event["id"]).replace("-", "")[:12], 16) == int(NOW.timestamp() * 1000)
    assert is_rfc3339_utc(str(event["time"]))


def test_given_id_and_time_are_kept() -> None:
    event = build(id="consult-42", time="2026-01-01T00:00:00Z")
    assert (event["id"], event["time"]) == ("consult-42", "2026-01-01T00:00:00Z")
    assert "subject" not in event


def test_time_is_written_in_utc_whatever_the_clocks_zone() -> None:
    moment = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert format_time(moment) == "2026-05-01T10:00:00.000000Z"
    with pytest.raises(EventBuildError, match="timezone-aware"):
        format_time(datetime(2026, 5, 1))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": 7}, "'type' must be a string"),
        ({"source": None}, "'source' must be a string"),
        ({"data": [1]}, "'data' must be a JSON object"),
        ({"subject": 3}, "'subject' must be a string"),
        ({"entropy": b"short"}, "entropy must be 10 bytes"),
        ({"type": "com.example.thing"}, "type"),
        ({"time": "yesterday"}, "time"),
        ({"data": {"x": float("nan")}}, ""),
        ({"data": {"blob": "x" * MAX_EVENT_BYTES}}, "too_large|bytes"),
    ],
)
def test_what_admission_would_refuse_is_never_signed(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(EventBuildError, match=message or None):
        build(**changes)


def test_a_partial_event_gets_the_default_source() -> None:
    event = event_from_partial(
        {"type": TYPE, "data": {}, "id": "", "time": ""},
        key=KEY,
        default_source="urn:example:cli",
        now=NOW,
        entropy=bytes(10),
    )
    assert event["source"] == "urn:example:cli"
    assert event["id"]
    assert event["time"]


@pytest.mark.parametrize(
    ("partial", "message"),
    [
        ({"type": TYPE, "data": {}, "signer": "me"}, "unexpected members"),
        ({"data": {}}, "needs at least `type` and `data`"),
    ],
)
def test_a_partial_event_is_refused_with_the_reason(partial: dict[str, Any], message: str) -> None:
    with pytest.raises(EventBuildError, match=message):
        event_from_partial(partial, key=KEY, default_source="urn:x", now=NOW, entropy=bytes(10))


def test_a_signed_event_is_checked_before_it_is_published() -> None:
    event = build()
    assert check_signed_event(event).dedup_key == (event["source"], event["id"])
    with pytest.raises(EventBuildError, match="bad_signature"):
        check_signed_event({**event, "data": {"encounter": "enc-2"}})
    with pytest.raises(EventBuildError, match="malformed"):
        check_signed_event({**event, "data": {"x": float("inf")}})
    with pytest.raises(EventBuildError, match="malformed"):
        check_signed_event({"specversion": "1.0"})


def test_only_input_topics_are_topics_to_publish_to() -> None:
    assert check_topic("clinical.events") == "clinical.events"
    with pytest.raises(EventBuildError, match="not an input topic"):
        check_topic("ledger.blocks")
