"""The canary scan can fail: a canary planted in any encoding, at any offset, is found, and a
clean place is not reported."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path

import pytest

from tests.security.privacy.canary import Canary, find_leaks
from tests.security.privacy.places import sqlite_columns

NAME = Canary.text("name", f"Zoë Canary{os.urandom(4).hex()} Hågensen")
NOTE = Canary.text("note", f"reports canary-{os.urandom(8).hex()} chest pain")
KEY = Canary("wrapped_key", os.urandom(80))


def planted(encoding: str, canary: Canary) -> bytes:
    """`canary` inside other bytes, as that encoding would write it."""
    secret = canary.secret
    text = secret.decode("utf-8", "replace")
    forms = {
        "raw": secret,
        "upper": secret.upper(),
        "json": json.dumps({"note": text}).encode(),
        "json-all": ("".join(f"\\u{ord(c):04X}" for c in text)).encode(),
        "base64": base64.b64encode(b"x" + secret + b"y"),
        "base64-2": base64.b64encode(b"xy" + secret),
        "base64url": base64.urlsafe_b64encode(b"xyz" + secret).rstrip(b"="),
        "hex": b"0x" + secret.hex().upper().encode(),
    }
    return b"\x00 noise " + forms[encoding] + b" noise\xff"


ENCODINGS = ["raw", "upper", "json", "json-all", "base64", "base64-2", "base64url", "hex"]
TEXT_ONLY = {"upper", "json", "json-all"}  # key material is bytes, not text
CASES = [
    pytest.param(encoding, canary, id=f"{canary.kind}-{encoding}")
    for canary in (NAME, NOTE, KEY)
    for encoding in ENCODINGS
    if canary is not KEY or encoding not in TEXT_ONLY
]


@pytest.mark.parametrize(("encoding", "canary"), CASES)
def test_a_planted_canary_is_found(encoding: str, canary: Canary) -> None:
    leaks = find_leaks({"clean": b"nothing here", "planted": planted(encoding, canary)}, [canary])
    assert leaks, f"{canary.kind} written as {encoding} was not found"
    assert {leak.where for leak in leaks} == {"planted"}


def test_clean_places_report_nothing() -> None:
    places = {"random": os.urandom(1 << 16), "text": b"Zoe Hagensen reports chest pain " * 50}
    assert find_leaks(places, [NAME, NOTE, KEY]) == []


def test_every_needle_is_long_enough_to_be_unique() -> None:
    date = Canary.text("birth_date", "1937-05-12")
    assert all(len(needle) >= 8 for needle in date.needles().values())
    assert "hex" in date.needles()


def test_a_canary_in_a_sqlite_column_is_found(tmp_path: Path) -> None:
    """The column dump reads every table of a database: a canary in a row is seen there."""
    database = tmp_path / "store.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table notes (id integer primary key, body blob, text text)")
        connection.execute(
            "insert into notes (body, text) values (?, ?)",
            (b"\x00" + KEY.secret, NOTE.secret.decode()),
        )
    dumped = sqlite_columns(database)
    assert {leak.kind for leak in find_leaks({"db": dumped}, [KEY, NOTE, NAME])} == {
        "wrapped_key",
        "note",
    }
