"""C2SP signed notes and checkpoints (`shared.checkpoint`): the format, key hashes, note
signatures and cosignatures, each checked against tlog-scales, an implementation we did not
write, and tamper tests for every refusal."""

from __future__ import annotations

import base64
import hashlib

import pytest
from tlog_scales.signing import Ed25519CosignatureVerifier, PlainEd25519Verifier, Vkey
from tlog_scales.tlog import Checkpoint as TheirCheckpoint

from shared.checkpoint import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    CheckpointError,
    NoteFormatError,
    NoteSignature,
    NoteSignatureError,
    QuorumError,
    SignedNote,
    check_key_name,
    check_origin,
    cosign,
    default_origin,
    key_hash,
    note_signature,
    parse_checkpoint,
    parse_note,
    signature_line_of,
    verified_signers,
    verify_checkpoint_note,
    verify_cosignature,
    verify_note_signature,
    vkey,
)
from tests.unit.core.chainfactory import key_for

ORIGIN = "careledger/careledger-test"
ROOT = hashlib.sha256(b"root").digest()
V1, V2, V3 = (key_for(f"validator-{n}") for n in (1, 2, 3))
VALIDATORS = frozenset({V1.did, V2.did, V3.did})


def _note(*keys: object, checkpoint: Checkpoint | None = None) -> SignedNote:
    head = checkpoint or Checkpoint(ORIGIN, 7, ROOT)
    body = head.body()
    return SignedNote(body, tuple(note_signature(body, key) for key in keys))  # type: ignore[arg-type]


def test_the_body_is_the_three_lines_of_tlog_checkpoint() -> None:
    body = Checkpoint(ORIGIN, 7, ROOT).body()
    assert body == f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}\n".encode()
    assert parse_checkpoint(body) == Checkpoint(ORIGIN, 7, ROOT)


def test_key_hash_is_the_spec_formula() -> None:
    expected = hashlib.sha256(V1.did.encode() + b"\n\x01" + V1.public_key).digest()[:4]
    assert key_hash(V1.did, ED25519, V1.public_key) == expected
    name, hash_hex, blob = vkey(V1.did).split("+")
    assert (name, bytes.fromhex(hash_hex)) == (V1.did, expected)
    assert base64.b64decode(blob) == b"\x01" + V1.public_key


def test_our_note_verifies_with_tlog_scales() -> None:
    note = _note(V1, V2)
    theirs = TheirCheckpoint.from_text(note.text())
    assert (theirs.origin, theirs.size, theirs.root_hash) == (ORIGIN, 7, ROOT)
    for key in (V1, V2):
        their_key = Vkey.from_string(vkey(key.did))
        theirs.verify(their_key)  # raises on a bad signature
        assert isinstance(their_key.get_verifier(), PlainEd25519Verifier)


def test_our_cosignature_verifies_with_tlog_scales() -> None:
    head = Checkpoint(ORIGIN, 7, ROOT)
    witness = key_for("witness")
    line = cosign(head, witness, name="witness.example", timestamp=1_700_000_000)
    their_key = Vkey.from_string(vkey(witness.did, COSIGNATURE_V1, name="witness.example"))
    theirs = TheirCheckpoint.from_text(_note(V1).with_signatures([line]).text())
    theirs.verify(their_key)
    verifier = their_key.get_verifier()
    assert isinstance(verifier, Ed25519CosignatureVerifier)
    assert verifier.get_timestamp(line.signature) == 1_700_000_000
    assert verify_cosignature(line, head, name="witness.example", did=witness.did) == 1_700_000_000


def test_a_note_round_trips_through_its_text() -> None:
    note = _note(V1, V2, V3)
    assert parse_note(note.text()) == note
    assert signature_line_of(V1.did, note.signatures[0].signature) == note.signatures[0]


def test_a_quorum_of_genesis_validators_verifies() -> None:
    text = _note(V1, V3).text()
    checkpoint, note = verify_checkpoint_note(text, origin=ORIGIN, validators=VALIDATORS, quorum=2)
    assert checkpoint == Checkpoint(ORIGIN, 7, ROOT)
    assert verified_signers(note, VALIDATORS) == [V1.did, V3.did]


def test_other_keys_and_repeated_lines_are_ignored() -> None:
    stranger = key_for("stranger")
    note = _note(V1, stranger, V1)
    assert verified_signers(note, VALIDATORS) == [V1.did]
    with pytest.raises(QuorumError) as raised:
        verify_checkpoint_note(note.text(), origin=ORIGIN, validators=VALIDATORS, quorum=2)
    assert (raised.value.expected, raised.value.computed) == (2, 1)


def test_a_validator_name_with_another_key_hash_is_ignored() -> None:
    line = note_signature(Checkpoint(ORIGIN, 7, ROOT).body(), V1)
    other = NoteSignature(line.name, b"\0\0\0\0", line.signature)
    note = SignedNote(Checkpoint(ORIGIN, 7, ROOT).body(), (other,))
    assert verified_signers(note, VALIDATORS) == []


def test_a_validator_line_that_does_not_verify_raises() -> None:
    note = _note(V1)
    line = note.signatures[0]
    flipped = NoteSignature(
        line.name, line.key_hash, bytes([line.signature[0] ^ 1]) + line.signature[1:]
    )
    with pytest.raises(NoteSignatureError):
        verified_signers(SignedNote(note.body, (flipped,)), VALIDATORS)
    other_size = Checkpoint(ORIGIN, 8, ROOT).body()
    with pytest.raises(NoteSignatureError):
        verify_note_signature(line, other_size, V1.did)
    with pytest.raises(NoteSignatureError) as raised:
        verify_note_signature(line, note.body, V2.did)
    assert "another key" in raised.value.message


def test_a_checkpoint_of_another_origin_is_refused() -> None:
    text = _note(V1, V2, checkpoint=Checkpoint("careledger/other", 7, ROOT)).text()
    with pytest.raises(CheckpointError) as raised:
        verify_checkpoint_note(text, origin=ORIGIN, validators=VALIDATORS, quorum=2)
    assert raised.value.computed == "careledger/other"


@pytest.mark.parametrize(
    "text",
    [
        "no blank line\n",
        f"{ORIGIN}\n7\nAAAA\n\n\u2014 a AAAAAAA=",  # no final newline
        f"{ORIGIN}\n7\nAAAA\n\n" + "\u2014 a AAAAAAA=\n" * 101,
        f"{ORIGIN}\n7\nAAAA\n\n- a AAAAAAA=\n",
        f"{ORIGIN}\n7\nAAAA\n\n\u2014 a b AAAAAAA=\n",
        f"{ORIGIN}\n7\nAAAA\n\n\u2014 a+b AAAAAAA=\n",
        f"{ORIGIN}\n7\nAAAA\n\n\u2014 a AAAA*AA=\n",
        f"{ORIGIN}\n7\nAAAA\n\n\u2014 a AAAAAA==\n",  # four bytes: a key hash alone
        "x" * (64 * 1024 + 1),
    ],
)
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(NoteFormatError):
        parse_note(text)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\n7\nAAAA\n",
        f"{ORIGIN}\n7\n".encode(),
        f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}".encode(),  # no final newline
        f"{ORIGIN}\n\n7\n{base64.b64encode(ROOT).decode()}\n".encode(),
        f"has space\n7\n{base64.b64encode(ROOT).decode()}\n".encode(),
        f"{ORIGIN}\n07\n{base64.b64encode(ROOT).decode()}\n".encode(),
        f"{ORIGIN}\n-1\n{base64.b64encode(ROOT).decode()}\n".encode(),
        f"{ORIGIN}\n{2**63}\n{base64.b64encode(ROOT).decode()}\n".encode(),
        f"{ORIGIN}\n7\nnot*base64\n".encode(),
        f"{ORIGIN}\n7\n{base64.b64encode(ROOT[:31]).decode()}\n".encode(),
    ],
)
def test_malformed_checkpoints_are_refused(body: bytes) -> None:
    with pytest.raises(NoteFormatError):
        parse_checkpoint(body)


def test_extension_lines_stay_in_the_signed_body() -> None:
    body = Checkpoint(ORIGIN, 7, ROOT).body() + b"extension\n"
    assert parse_checkpoint(body) == Checkpoint(ORIGIN, 7, ROOT)


@pytest.mark.parametrize("value", ["", "a b", "a+b", "a\tb", "a\nb"])
def test_origins_and_key_names_without_spaces_or_plus(value: str) -> None:
    with pytest.raises(ValueError, match="without spaces"):
        check_origin(value)
    with pytest.raises(ValueError, match="without spaces"):
        check_key_name(value)


def test_the_default_origin_names_the_chain() -> None:
    assert default_origin("careledger-dev") == "careledger/careledger-dev"


def test_cosignature_tamper() -> None:
    head = Checkpoint(ORIGIN, 7, ROOT)
    witness = key_for("witness")
    line = cosign(head, witness, name="w", timestamp=5)
    with pytest.raises(NoteSignatureError, match="another key"):
        verify_cosignature(line, head, name="other", did=witness.did)
    short = NoteSignature(line.name, line.key_hash, line.signature[:-1])
    with pytest.raises(NoteSignatureError, match="8-byte timestamp"):
        verify_cosignature(short, head, name="w", did=witness.did)
    later = NoteSignature(line.name, line.key_hash, (6).to_bytes(8, "big") + line.signature[8:])
    with pytest.raises(NoteSignatureError):
        verify_cosignature(later, head, name="w", did=witness.did)
    with pytest.raises(NoteSignatureError):
        verify_cosignature(line, Checkpoint(ORIGIN, 8, ROOT), name="w", did=witness.did)
    with pytest.raises(ValueError, match="key name"):
        cosign(head, witness, name="two words", timestamp=5)


def test_our_note_verifies_with_sigstore() -> None:
    from sigstore.errors import VerificationError as SigstoreVerificationError

    from tests.unit.core.sigstore_check import verify_with_sigstore

    text = _note(V1, V2).text()
    for key in (V1, V2):
        parsed = verify_with_sigstore(text, key.did, key.public_key)
        assert (parsed.origin, parsed.log_size, parsed.log_hash) == (ORIGIN, 7, ROOT.hex())
    with pytest.raises(SigstoreVerificationError):
        verify_with_sigstore(text, V3.did, V3.public_key)
    flipped = _note(V1, checkpoint=Checkpoint(ORIGIN, 7, ROOT)).signatures[0]
    forged = SignedNote(Checkpoint(ORIGIN, 8, ROOT).body(), (flipped,)).text()
    with pytest.raises(SigstoreVerificationError):
        verify_with_sigstore(forged, V1.did, V1.public_key)
