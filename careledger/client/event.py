"""Building and signing CloudEvents the way admission reads them (BRIEF: event envelope).

Pure: the clock reading and the random bits of the UUIDv7 come in as arguments (the
`Publisher` hands in the real ones). The envelope itself is `shared.envelope`'s: this module
only fills the members a publisher may leave out and turns every refusal into an
`EventBuildError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from careledger.client.errors import EventBuildError
from shared.canonical import CanonicalizationError, canonicalize
from shared.crypto import SigningKey
from shared.envelope import (
    EventRejected,
    ParsedEvent,
    build_event,
    parse_and_verify,
    sign_event,
    uuid7,
)
from shared.topics import INPUT_TOPICS

__all__ = [
    "PARTIAL_MEMBERS",
    "check_signed_event",
    "check_topic",
    "event_from_partial",
    "format_time",
    "signed_event",
]

#: What a caller may give; `specversion`, `datacontenttype`, `signer` and `signature` are ours.
PARTIAL_MEMBERS: Final = frozenset({"type", "data", "subject", "source", "id", "time"})
ENTROPY_BYTES: Final = 10


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a ``Z`` (the envelope's `time`)."""
    if moment.tzinfo is None:
        raise EventBuildError("the clock must give timezone-aware datetimes")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signed_event(
    key: SigningKey,
    *,
    type: str,
    data: Mapping[str, Any],
    source: str,
    now: datetime,
    entropy: bytes,
    subject: str | None = None,
    id: str | None = None,
    time: str | None = None,
) -> dict[str, object]:
    """A signed event: `id` defaults to a UUIDv7 of `now` and `entropy` (10 bytes), `time` to
    `now`. Raises `EventBuildError` with the reason for anything admission would refuse as
    `malformed` or `too_large` (checked by parsing the signed event back)."""
    for name, value in (("type", type), ("source", source)):
        if not isinstance(value, str):
            raise EventBuildError(f"member {name!r} must be a string")
    if not isinstance(data, Mapping):
        raise EventBuildError("member 'data' must be a JSON object")
    if subject is not None and not isinstance(subject, str):
        raise EventBuildError("member 'subject' must be a string")
    if len(entropy) != ENTROPY_BYTES:
        raise EventBuildError(f"entropy must be {ENTROPY_BYTES} bytes")
    try:
        event = build_event(
            source=source,
            type=type,
            id=id if id is not None else uuid7(int(now.timestamp() * 1000), entropy),
            time=time if time is not None else format_time(now),
            data=data,
            subject=subject,
        )
        return sign_event(event, key)
    except (ValueError, CanonicalizationError) as exc:
        raise EventBuildError(str(exc)) from None


def event_from_partial(
    partial: Mapping[str, Any],
    *,
    key: SigningKey,
    default_source: str,
    now: datetime,
    entropy: bytes,
) -> dict[str, object]:
    """`signed_event` from a JSON object such as `careledger publish` reads: `type` and
    `data` are required; `source` defaults to `default_source`; empty `id`/`time` count as
    absent. Unknown members (a `signer` or `signature` in particular) are refused."""
    unknown = set(partial) - PARTIAL_MEMBERS
    if unknown:
        raise EventBuildError(
            f"unexpected members {sorted(unknown)}; signer and signature are ours"
        )
    if "type" not in partial or "data" not in partial:
        raise EventBuildError("the event needs at least `type` and `data`")
    return signed_event(
        key,
        type=partial["type"],
        data=partial["data"],
        source=partial.get("source", default_source),
        subject=partial.get("subject"),
        id=partial.get("id") or None,
        time=partial.get("time") or None,
        now=now,
        entropy=entropy,
    )


def check_signed_event(event: Mapping[str, Any]) -> ParsedEvent:
    """An already signed event, parsed and its signature checked as admission does; raises
    `EventBuildError` (reason in the message: malformed, too_large, bad_signature)."""
    try:
        return parse_and_verify(canonicalize(dict(event)))
    except EventRejected as exc:
        raise EventBuildError(f"{exc.reason.value}: {exc.detail}") from None
    except CanonicalizationError as exc:
        raise EventBuildError(f"malformed: not JSON: {exc}") from None


def check_topic(topic: str) -> str:
    """`topic` if it is an input topic the sealer reads (logical name); else `EventBuildError`."""
    if topic not in INPUT_TOPICS:
        raise EventBuildError(
            f"topic {topic!r} is not an input topic: one of {', '.join(INPUT_TOPICS)}"
        )
    return topic
