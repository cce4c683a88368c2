"""XML Schema dateTimeStamp and date parsing: a time zone is required, spellings are strict."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.credentials.timestamp import parse_date, parse_date_time_stamp


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2023-01-01T00:00:00Z", datetime(2023, 1, 1, tzinfo=UTC)),
        ("2023-01-01T02:00:00+02:00", datetime(2023, 1, 1, tzinfo=UTC)),
        ("2022-12-31T23:00:00.123456789-01:00", datetime(2023, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2023-01-01T00:00:00+14:00", datetime(2022, 12, 31, 10, tzinfo=UTC)),
    ],
)
def test_valid_stamps_parse_to_utc(text: str, instant: datetime) -> None:
    assert parse_date_time_stamp(text) == instant


@pytest.mark.parametrize(
    "text",
    [
        "2023-01-01T00:00:00",  # naive
        "2023-01-01 00:00:00Z",
        "2023-01-01t00:00:00z",
        "2023-13-01T00:00:00Z",
        "2023-02-30T00:00:00Z",
        "2023-01-01T00:00:00+14:30",
        "2023-01-01T00:00Z",
        "2023-01-01T00:00:00.1234567890Z",
        "2023-01-01",
        20230101,
    ],
)
def test_anything_else_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"not|beyond"):
        parse_date_time_stamp(text)


def test_dates() -> None:
    assert parse_date("2027-12-31") == date(2027, 12, 31)
    for bad in ("2027-12-31T00:00:00Z", "2027-02-30", "27-12-31", 1, None):
        with pytest.raises(ValueError, match=r"not|beyond"):
            parse_date(bad)
