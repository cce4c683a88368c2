"""Patient pseudonyms: HMAC-SHA-256 checked against a naive reference, and the key's text."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.keystore import KeyStoreError, read_pseudonym_key_file, write_pseudonym_key_file
from shared.pseudonym import (
    PseudonymKeyError,
    dump_pseudonym_key,
    parse_pseudonym_key,
    patient_pseudonym,
)


def naive_hmac_sha256(key: bytes, message: bytes) -> str:
    """RFC 2104 written out: H((K ^ opad) || H((K ^ ipad) || m)), for a key <= 64 bytes."""
    block = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).hexdigest()


@given(key=st.binary(min_size=32, max_size=32), did=st.text(min_size=1, max_size=80))
def test_the_pseudonym_is_hmac_sha256_of_the_did(key: bytes, did: str) -> None:
    assert patient_pseudonym(key, did) == naive_hmac_sha256(key, did.encode("utf-8"))


def test_different_keys_and_dids_give_different_pseudonyms() -> None:
    did = "did:key:z6MkpTHR8VNsBxYAAWHut2Geadd9jSwuBV8xRoAnwWsdvktH"
    one, two = bytes(32), bytes([1]) * 32
    assert patient_pseudonym(one, did) != patient_pseudonym(two, did)
    assert patient_pseudonym(one, did) != patient_pseudonym(one, did + "x")
    assert len(patient_pseudonym(one, did)) == 64


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_a_key_of_the_wrong_size_is_refused(size: int) -> None:
    with pytest.raises(PseudonymKeyError):
        patient_pseudonym(bytes(size), "did:key:x")


def test_the_key_text_round_trips_and_bad_text_is_refused() -> None:
    key = os.urandom(32)
    text = dump_pseudonym_key(key)
    assert text.endswith("\n")
    assert "=" not in text
    assert parse_pseudonym_key(text) == key
    with pytest.raises(PseudonymKeyError):
        parse_pseudonym_key("not base64url!")
    with pytest.raises(PseudonymKeyError):
        parse_pseudonym_key(dump_pseudonym_key(key)[:20])


def test_the_key_file_is_owner_only_and_never_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "pseudonym.key"
    key = os.urandom(32)
    write_pseudonym_key_file(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_pseudonym_key_file(path) == key
    with pytest.raises(KeyStoreError, match="already exists"):
        write_pseudonym_key_file(path, os.urandom(32))
    assert read_pseudonym_key_file(path) == key
    path.write_text("short\n")
    with pytest.raises(KeyStoreError, match="invalid pseudonym key"):
        read_pseudonym_key_file(path)
    with pytest.raises(KeyStoreError, match="cannot read"):
        read_pseudonym_key_file(tmp_path / "missing.key")
