"""Encrypting, checking and decrypting record versions; wrapping data keys; sealed notes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.records.cipher import RecordCipher, SealedVersion
from services.records.core.envelope import (
    associated_data,
    ciphertext_hash,
    record_commitment,
    verify_envelope,
)
from services.records.core.model import RecordHead
from services.records.errors import IntegrityError
from shared.canonical import canonicalize
from shared.crypto import DecryptionError, aead_decrypt, b64url_decode, open_sealed
from tests.unit.core.chainfactory import key_for
from tests.unit.records.conftest import CANARY, counting_random, observation

KEY = key_for("records")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
RECORD = "00000000-0000-4000-8000-000000000001"
AUTHOR = key_for("practitioner").did


@pytest.fixture
def cipher() -> RecordCipher:
    return RecordCipher(key=KEY, random_bytes=counting_random())


def new_record(cipher: RecordCipher) -> tuple[RecordHead, bytes, SealedVersion]:
    data_key, custody, salt = cipher.new_keys()
    head = RecordHead(RECORD, "a1" * 32, AUTHOR, "Observation", 1, NOW, custody, salt)
    sealed = cipher.encrypt(
        observation(),
        data_key=data_key,
        salt=salt,
        head=head,
        version=1,
        author=AUTHOR,
        created_at=NOW,
        event_id="ev-1",
    )
    return head, data_key, sealed


def test_new_keys_are_a_data_key_its_custody_seal_and_a_salt(cipher: RecordCipher) -> None:
    data_key, custody, salt = cipher.new_keys()
    assert len(data_key) == 32
    assert len(salt) == 32
    assert data_key != salt
    assert open_sealed(KEY, custody) == data_key
    assert cipher.custodian == KEY.did


def test_a_version_round_trips_and_its_envelope_is_signed(cipher: RecordCipher) -> None:
    head, data_key, sealed = new_record(cipher)
    stored, envelope = sealed.version, sealed.envelope
    content = canonicalize(observation())
    assert CANARY.encode() not in (stored.ciphertext or b"")
    assert stored.ciphertext_hash == ciphertext_hash(stored.ciphertext or b"")
    assert stored.commitment == record_commitment(head.salt or b"", content)
    assert (stored.version, stored.author, stored.event_id) == (1, AUTHOR, "ev-1")
    assert envelope.ciphertext_hash == stored.ciphertext_hash
    assert envelope.commitment == stored.commitment
    verify_envelope(envelope, b64url_decode(stored.envelope_signature), KEY.did)
    # The associated data binds the ciphertext to (record, version):
    nonce, ciphertext = stored.nonce or b"", stored.ciphertext or b""
    assert aead_decrypt(data_key, nonce, ciphertext, associated_data(RECORD, 1)) == content
    assert cipher.decrypt(head, stored, commitment=stored.commitment) == content


def test_each_version_gets_its_own_nonce(cipher: RecordCipher) -> None:
    head, data_key, first = new_record(cipher)
    second = cipher.encrypt(
        observation(),
        data_key=data_key,
        salt=head.salt or b"",
        head=head,
        version=2,
        author=AUTHOR,
        created_at=NOW,
        event_id="ev-2",
    )
    assert second.version.nonce != first.version.nonce
    assert second.version.commitment == first.version.commitment  # same content, same salt
    assert cipher.decrypt(head, second.version, commitment=second.version.commitment)


def test_a_ciphertext_changed_and_rehashed_does_not_decrypt(cipher: RecordCipher) -> None:
    head, _, sealed = new_record(cipher)
    ciphertext = bytearray(sealed.version.ciphertext or b"")
    ciphertext[0] ^= 1
    tampered = replace(
        sealed.version,
        ciphertext=bytes(ciphertext),
        ciphertext_hash=ciphertext_hash(bytes(ciphertext)),
    )
    with pytest.raises(IntegrityError, match="does not decrypt"):
        cipher.decrypt(head, tampered, commitment=sealed.version.commitment)


def test_a_ciphertext_that_does_not_match_its_hash_is_refused(cipher: RecordCipher) -> None:
    head, _, sealed = new_record(cipher)
    tampered = replace(sealed.version, ciphertext=(sealed.version.ciphertext or b"") + b"\x00")
    with pytest.raises(IntegrityError, match="does not match its hash"):
        cipher.decrypt(head, tampered, commitment=sealed.version.commitment)
    rehashed = replace(sealed.version, ciphertext_hash="00" * 32)
    with pytest.raises(IntegrityError, match="does not match its hash"):
        cipher.decrypt(head, rehashed, commitment=sealed.version.commitment)


def test_a_version_moved_to_another_record_or_version_does_not_decrypt(
    cipher: RecordCipher,
) -> None:
    head, _, sealed = new_record(cipher)
    with pytest.raises(IntegrityError, match="does not decrypt"):
        cipher.decrypt(
            head, replace(sealed.version, version=2), commitment=sealed.version.commitment
        )
    moved = replace(head, record_id="00000000-0000-4000-8000-000000000009")
    with pytest.raises(IntegrityError, match="does not decrypt"):
        cipher.decrypt(moved, sealed.version, commitment=sealed.version.commitment)


def test_content_that_does_not_match_the_commitment_is_refused(cipher: RecordCipher) -> None:
    head, _, sealed = new_record(cipher)
    with pytest.raises(IntegrityError, match="commitment"):
        cipher.decrypt(head, sealed.version, commitment="00" * 32)
    other_salt = replace(head, salt=bytes(reversed(head.salt or b"")))
    with pytest.raises(IntegrityError, match="commitment"):
        cipher.decrypt(other_salt, sealed.version, commitment=sealed.version.commitment)


def test_an_erased_record_does_not_decrypt(cipher: RecordCipher) -> None:
    head, _, sealed = new_record(cipher)
    commitment = sealed.version.commitment
    for erased_head, erased in [
        (replace(head, salt=None), sealed.version),
        (head, replace(sealed.version, ciphertext=None)),
        (head, replace(sealed.version, nonce=None)),
    ]:
        with pytest.raises(IntegrityError, match="erased"):
            cipher.decrypt(erased_head, erased, commitment=commitment)
    with pytest.raises(IntegrityError, match="erased"):
        cipher.decrypt(replace(head, custody_key=None), sealed.version, commitment=commitment)
    with pytest.raises(IntegrityError, match="erased"):
        cipher.data_key(replace(head, custody_key=None))


def test_a_custody_key_sealed_to_another_key_does_not_open(cipher: RecordCipher) -> None:
    head, _, _ = new_record(cipher)
    elsewhere = RecordCipher(key=key_for("billing"), random_bytes=counting_random())
    with pytest.raises(IntegrityError, match="custody key does not open"):
        elsewhere.data_key(head)


def test_wraps_open_with_each_recipients_key_once_per_recipient(cipher: RecordCipher) -> None:
    head, data_key, _ = new_record(cipher)
    names = ["practitioner", "stranger", "practitioner"]
    wraps = cipher.wraps(head, [key_for(name).did for name in names], consent_id="c-1")
    assert [w.recipient for w in wraps] == [key_for("practitioner").did, key_for("stranger").did]
    for wrap, name in zip(wraps, ["practitioner", "stranger"], strict=True):
        assert (wrap.record_id, wrap.consent_id) == (RECORD, "c-1")
        assert open_sealed(key_for(name), wrap.sealed_key) == data_key
    given = cipher.wraps(head, [key_for("stranger").did], data_key=data_key)
    assert open_sealed(key_for("stranger"), given[0].sealed_key) == data_key
    assert given[0].consent_id is None


def test_a_wrap_does_not_open_with_another_key(cipher: RecordCipher) -> None:
    head, _, _ = new_record(cipher)
    (wrap,) = cipher.wraps(head, [key_for("practitioner").did])
    with pytest.raises(DecryptionError):
        open_sealed(key_for("stranger"), wrap.sealed_key)


def test_a_sealed_note_opens_only_for_the_service(cipher: RecordCipher) -> None:
    sealed = cipher.seal_note("unconscious in the ER — ünïcode")
    assert b"unconscious" not in sealed
    assert cipher.open_note(sealed) == "unconscious in the ER — ünïcode"
    assert open_sealed(KEY, sealed).decode() == "unconscious in the ER — ünïcode"
    elsewhere = RecordCipher(key=key_for("billing"), random_bytes=counting_random())
    with pytest.raises(IntegrityError, match="sealed note"):
        elsewhere.open_note(sealed)
