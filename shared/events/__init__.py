"""Event data schemas, one module per event family, and the value types they share.

Each family module declares its CloudEvent `type` strings once and a frozen, `extra="forbid"`
pydantic model per `data` payload. The types here keep those payloads to one spelling of each
value, because the payload is hashed and signed as it stands (RFC 8785).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr, StringConstraints

from shared.crypto import InvalidDIDError, public_key_from_did

__all__ = [
    "DidKey",
    "EventData",
    "EventType",
    "HexDigest",
    "Timestamp",
    "TypePattern",
    "parse_timestamp",
    "type_matches",
]

# RFC 3339 §5.6 date-time with upper-case separators. Python's `fromisoformat` alone would also
# take ISO 8601 spellings RFC 3339 lacks (week dates, a space separator, no seconds).
_RFC3339: Final = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)
# Dotted reverse-DNS CloudEvents types, `org.careledger.<domain>.<name>.v<N>` for ours. A grant
# pattern's prefix has the same shape, so `.*` can never hide a character class or a wildcard.
_EVENT_TYPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9][A-Za-z0-9_-]*)*")
_WILDCARD: Final = ".*"


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 date-time with an explicit offset into an aware UTC `datetime`.

    Digits beyond microseconds are dropped (truncated, never rounded up), so a time never
    moves later than what was written.
    """
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"{text[:40]!r} is not an RFC 3339 date-time with an offset")
    fraction = (found["fraction"] or "")[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(f"{found['base']}.{fraction}{found['zone']}")
        # The offset can carry a time at the edge of the calendar out of it (year 0 or 10000).
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # a day, hour or offset out of range
        raise ValueError(f"{text[:40]!r} is not a valid date-time: {exc}") from None


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether a grant pattern (an exact type, or a prefix ending in `.*`) covers a type."""
    if pattern.endswith(_WILDCARD):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def _check_did(value: str) -> str:
    try:
        public_key_from_did(value)
    except InvalidDIDError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_timestamp(value: str) -> str:
    parse_timestamp(value)
    return value


def _check_event_type(value: str) -> str:
    if _EVENT_TYPE.fullmatch(value) is None:
        raise ValueError(f"{value[:80]!r} is not a dotted CloudEvents type")
    return value


def _check_type_pattern(value: str) -> str:
    _check_event_type(value.removesuffix(_WILDCARD))
    return value


#: A did:key naming a valid Ed25519 key (checked by decoding it).
DidKey = Annotated[StrictStr, AfterValidator(_check_did)]
#: An RFC 3339 date-time with an explicit offset, kept as written (it is signed as written).
Timestamp = Annotated[StrictStr, AfterValidator(_check_timestamp)]
#: A CloudEvents `type` such as `org.careledger.clinical.consultation.completed.v1`.
EventType = Annotated[StrictStr, AfterValidator(_check_event_type)]
#: A SHA-256 digest as 64 lower-case hex digits (the one spelling hashes have on the wire).
HexDigest = Annotated[StrictStr, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
#: An exact event type, or a dotted prefix followed by `.*` (`org.careledger.clinical.*`).
TypePattern = Annotated[StrictStr, AfterValidator(_check_type_pattern)]


class EventData(BaseModel):
    """Base of every event `data` schema: immutable, and no member it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid")
