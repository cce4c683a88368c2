"""XML Schema 1.1 ``dateTimeStamp`` and ``date`` values as VC Data Model 2.0 uses them.

``validFrom``, ``validUntil`` and a proof's ``created``/``expires`` must carry a time zone
(a naive time would mean a different instant on every verifier's machine), so only the
explicit ``Z`` or ``±hh:mm`` forms are accepted; years are four digits and fractions at most
nine digits, as every real credential writes them (and as the RFC 3339 timestamps of the
identity events, which copy ``validFrom``/``validUntil``, require).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final

__all__ = ["parse_date", "parse_date_time_stamp"]

_DATE_TIME_STAMP: Final = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})"
)
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
# XML Schema bounds a time-zone offset to ±14:00.
_MAX_OFFSET_MINUTES: Final = 14 * 60


def parse_date_time_stamp(text: object) -> datetime:
    """Parse a ``dateTimeStamp`` into an aware UTC `datetime`; raise `ValueError` for a naive
    or malformed value. Digits beyond microseconds are truncated, never rounded up."""
    if not isinstance(text, str):
        raise ValueError(f"a dateTimeStamp is a string, not {type(text).__name__}")
    found = _DATE_TIME_STAMP.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text[:40]!r} is not an XML dateTimeStamp (YYYY-MM-DDThh:mm:ss[.s] with Z or ±hh:mm)"
        )
    zone = found["zone"]
    if zone != "Z" and int(zone[1:3]) * 60 + int(zone[4:6]) > _MAX_OFFSET_MINUTES:
        raise ValueError(f"{text[:40]!r} has a time-zone offset beyond ±14:00")
    fraction = (found["fraction"] or "")[:6].ljust(6, "0")
    try:
        moment = datetime.fromisoformat(f"{found['base']}.{fraction}{zone}")
    except ValueError as exc:  # a month, day, hour or minute out of range
        raise ValueError(f"{text[:40]!r} is not a valid date-time: {exc}") from None
    return moment.astimezone(UTC)


def parse_date(text: object) -> date:
    """Parse an XML Schema ``date`` without a time zone (``YYYY-MM-DD``)."""
    if not isinstance(text, str) or _DATE.fullmatch(text) is None:
        raise ValueError(f"{str(text)[:40]!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None
