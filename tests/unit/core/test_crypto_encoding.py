"""Strict unpadded base64url and base58btc multibase: round trips and one text per byte string."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import (
    EncodingError,
    b64url_decode,
    b64url_encode,
    base58btc_multibase_decode,
    base58btc_multibase_encode,
)

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        # RFC 4648 §10 vectors, padding removed (RFC 7515 §2 base64url).
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
        # The URL-safe alphabet: 62 and 63 are '-' and '_'.
        (b"\xfb\xff\xbf", "-_-_"),
    ],
)
def test_rfc4648_vectors(data: bytes, text: str) -> None:
    assert b64url_encode(data) == text
    assert b64url_decode(text) == data


@given(st.binary(max_size=200))
def test_b64url_round_trip(data: bytes) -> None:
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data
    # Agrees with the standard library's padded form.
    assert base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)) == data


@given(st.text(alphabet=B64URL_ALPHABET + "=+/ \n.", max_size=40))
def test_b64url_accepts_only_canonical_text(text: str) -> None:
    try:
        data = b64url_decode(text)
    except EncodingError:
        return
    assert b64url_encode(data) == text


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("Zg==", "padding"),
        ("Zm8=", "padding"),
        ("Zm9v\n", "outside the alphabet"),
        (" Zm9v", "outside the alphabet"),
        ("Zm+v", "outside the alphabet"),
        ("Zm/v", "outside the alphabet"),
        ("Zm9vY", "cannot encode whole bytes"),
        ("Zh", "non-zero trailing bits"),  # 'Zg' is the canonical spelling of b"f"
        ("Zm9", "non-zero trailing bits"),  # 'Zm8' is the canonical spelling of b"fo"
    ],
)
def test_b64url_refusals(text: str, complaint: str) -> None:
    with pytest.raises(EncodingError, match=complaint):
        b64url_decode(text)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        # draft-msporny-base58 §5 examples, with the multibase 'z' prefix.
        (b"Hello World!", "z2NEpo7TZRRrLZSi2U"),
        (
            b"The quick brown fox jumps over the lazy dog.",
            "zUSm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z",
        ),
        (bytes.fromhex("0000287fb4cd"), "z11233QC4"),
    ],
)
def test_base58btc_vectors(data: bytes, text: str) -> None:
    assert base58btc_multibase_encode(data) == text
    assert base58btc_multibase_decode(text) == data


@given(st.binary(min_size=1, max_size=90))
def test_base58btc_round_trip(data: bytes) -> None:
    assert base58btc_multibase_decode(base58btc_multibase_encode(data)) == data


@given(st.text(alphabet=BASE58_ALPHABET, min_size=1, max_size=60))
def test_base58btc_text_has_one_spelling(body: str) -> None:
    assert base58btc_multibase_encode(base58btc_multibase_decode("z" + body)) == "z" + body


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "prefix '' is not 'z'"),
        ("f00", "prefix 'f' is not 'z'"),
        ("z", "empty or holds characters outside"),
        ("z0OIl", "empty or holds characters outside"),
        ("z2NEpo7TZRRrLZSi2U\n", "empty or holds characters outside"),
        ("z" + "2" * 129, "too long"),
    ],
)
def test_base58btc_refusals(text: str, complaint: str) -> None:
    with pytest.raises(EncodingError, match=complaint):
        base58btc_multibase_decode(text)
