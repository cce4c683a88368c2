"""Checkpoints as C2SP signed notes: the `tlog-checkpoint` body, `signed-note` signature
lines with their key hashes, Ed25519 note signatures and `tlog-cosignature` cosignatures.

Specs: c2sp.org/signed-note, c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature. Pure: keys
and timestamps come in as arguments. Key names are did:keys (ADR 0015): a genesis validator's
note key is its DID and the Ed25519 key that DID names, so genesis alone gives every key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from shared.crypto import (
    SignatureError,
    SigningKey,
    public_key_from_did,
    verify_signature,
)
from shared.errors import VerificationError

__all__ = [
    "COSIGNATURE_V1",
    "ED25519",
    "Checkpoint",
    "CheckpointError",
    "NoteFormatError",
    "NoteSignature",
    "NoteSignatureError",
    "QuorumError",
    "SignedNote",
    "check_key_name",
    "check_origin",
    "cosign",
    "default_origin",
    "key_hash",
    "note_signature",
    "parse_checkpoint",
    "parse_note",
    "signature_line_of",
    "verified_signers",
    "verify_checkpoint_note",
    "verify_cosignature",
    "verify_note_signature",
    "vkey",
]

#: Signature types of C2SP signed-note: plain Ed25519 over the note, and cosignature/v1.
ED25519: Final = 0x01
COSIGNATURE_V1: Final = 0x04
EM_DASH: Final = "\u2014"
#: A signed-note verifier may refuse notes with more signatures than this (the spec: 100).
MAX_SIGNATURES: Final = 100
#: Our notes are a few hundred bytes; anything near this is not a checkpoint.
MAX_NOTE_BYTES: Final = 64 * 1024
HASH_BYTES: Final = 32
_TIMESTAMP_BYTES: Final = 8
_ED25519_SIGNATURE_BYTES: Final = 64
_SIZE: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_SIZE: Final = 2**63 - 1


class CheckpointError(VerificationError):
    """A checkpoint note is malformed or its signatures do not show what it claims."""


class NoteFormatError(CheckpointError):
    """The text is not a signed note, or its body is not a checkpoint."""


class NoteSignatureError(CheckpointError):
    """A signature line of a known key does not verify."""


class QuorumError(CheckpointError):
    """Fewer genesis validators than the quorum signed the checkpoint."""


def check_origin(origin: str) -> str:
    """An origin line: non-empty printable text without spaces or '+' (the spec's advice
    for a schema-less URL), so it can also stand in a key name."""
    if not origin or not origin.isprintable() or re.search(r"[\s+]", origin):
        raise ValueError("an origin is non-empty printable text without spaces or '+'")
    return origin


def check_key_name(name: str) -> str:
    """A signed-note key name: non-empty, no Unicode spaces, no '+'."""
    if not name or not name.isprintable() or re.search(r"[\s+]", name):
        raise ValueError("a key name is non-empty printable text without spaces or '+'")
    return name


def default_origin(chain_id: str) -> str:
    """The origin of a chain's checkpoints unless its operators name another."""
    return check_origin(f"careledger/{chain_id}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: `size` leaves with RFC 6962 root `root_hash`, of the log `origin`."""

    origin: str
    size: int
    root_hash: bytes

    def body(self) -> bytes:
        """The note body: origin, decimal size, base64 root hash, one line each."""
        root = base64.b64encode(self.root_hash).decode()
        return f"{self.origin}\n{self.size}\n{root}\n".encode()


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: `— <name> base64(key hash || signature)`."""

    name: str
    key_hash: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_hash + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note body and its signature lines, in order."""

    body: bytes
    signatures: tuple[NoteSignature, ...]

    def text(self) -> str:
        """The note as served: body, blank line, one line per signature."""
        return self.body.decode() + "\n" + "".join(s.line() for s in self.signatures)

    def with_signatures(self, extra: Iterable[NoteSignature]) -> SignedNote:
        """The same note with more signature lines appended."""
        return SignedNote(self.body, (*self.signatures, *extra))


def key_hash(name: str, signature_type: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key), first 4 bytes (C2SP signed-note)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([signature_type]) + public_key)
    return digest.digest()[:4]


def vkey(did: str, signature_type: int = ED25519, *, name: str | None = None) -> str:
    """The verifier key string `<name>+<hex key hash>+<base64(type || public key)>` of a
    did:key used as a note key (name: the DID unless given)."""
    name = check_key_name(did if name is None else name)
    public_key = public_key_from_did(did)
    encoded = base64.b64encode(bytes([signature_type]) + public_key).decode()
    return f"{name}+{key_hash(name, signature_type, public_key).hex()}+{encoded}"


def note_signature(body: bytes, key: SigningKey) -> NoteSignature:
    """An Ed25519 note signature over `body` by `key`, named by its DID."""
    return signature_line_of(key.did, key.sign(body))


def signature_line_of(did: str, signature: bytes) -> NoteSignature:
    """The note signature line of `did`'s Ed25519 `signature` (as an attestation carries it)."""
    return NoteSignature(did, key_hash(did, ED25519, public_key_from_did(did)), signature)


def verify_note_signature(signature: NoteSignature, body: bytes, did: str) -> None:
    """Check that `signature` is `did`'s Ed25519 note signature over `body`."""
    expected = key_hash(did, ED25519, public_key_from_did(did))
    if signature.name != did or signature.key_hash != expected:
        raise NoteSignatureError(
            "the signature line names another key",
            expected=f"{did} {expected.hex()}",
            computed=f"{signature.name} {signature.key_hash.hex()}",
        )
    try:
        verify_signature(did, body, signature.signature)
    except SignatureError as exc:
        raise NoteSignatureError(f"note signature by {did}: {exc.message}", name=did) from exc


def parse_note(text: str) -> SignedNote:
    """Split a signed note into its body and signature lines (C2SP signed-note)."""
    if len(text.encode()) > MAX_NOTE_BYTES:
        raise NoteFormatError("the note is too large", expected=MAX_NOTE_BYTES)
    body, separator, block = text.rpartition("\n\n")
    if not separator or not block.endswith("\n"):
        raise NoteFormatError("a signed note is a body, a blank line and signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteFormatError("too many signature lines", expected=MAX_SIGNATURES)
    return SignedNote((body + "\n").encode(), tuple(_signature_line(line) for line in lines))


def _signature_line(line: str) -> NoteSignature:
    parts = line.split(" ")
    if len(parts) != 3 or parts[0] != EM_DASH:  # dash, name, blob
        raise NoteFormatError("a signature line is '\u2014 <name> <base64>'", computed=line)
    try:
        name = check_key_name(parts[1])
        blob = base64.b64decode(parts[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise NoteFormatError(f"bad signature line: {exc}", computed=line) from exc
    if len(blob) < 5:  # a key hash and at least one byte
        raise NoteFormatError("a signature is a key hash and at least one byte", computed=line)
    return NoteSignature(name, blob[:4], blob[4:])


def parse_checkpoint(body: bytes) -> Checkpoint:
    """Read a tlog-checkpoint body: origin, decimal size, base64 32-byte root, then any
    extension lines (kept in the signed body, not interpreted)."""
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise NoteFormatError("a checkpoint is UTF-8 text") from exc
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or "" in lines[:-1]:  # 3 lines + end
        raise NoteFormatError("a checkpoint body is origin, size and root hash lines")
    origin, size, root = lines[0], lines[1], lines[2]
    try:
        check_origin(origin)
    except ValueError as exc:
        raise NoteFormatError(str(exc), computed=origin) from exc
    if _SIZE.fullmatch(size) is None or int(size) > _MAX_SIZE:
        raise NoteFormatError("the tree size is a decimal integer", computed=size)
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error as exc:
        raise NoteFormatError("the root hash is standard base64", computed=root) from exc
    if len(root_hash) != HASH_BYTES:
        raise NoteFormatError("the root hash is 32 bytes", computed=len(root_hash))
    return Checkpoint(origin, int(size), root_hash)


def verified_signers(note: SignedNote, validators: Collection[str]) -> list[str]:
    """The validators (did:keys) whose Ed25519 note signature over the body verifies, in
    the order of the lines. Lines of other keys are ignored, as the spec says; a line of a
    validator's key that does not verify raises `NoteSignatureError`."""
    signers: list[str] = []
    for signature in note.signatures:
        if signature.name not in validators or signature.name in signers:
            continue
        expected = key_hash(signature.name, ED25519, public_key_from_did(signature.name))
        if signature.key_hash == expected:
            verify_note_signature(signature, note.body, signature.name)
            signers.append(signature.name)
    return signers


def verify_checkpoint_note(
    text: str, *, origin: str, validators: Collection[str], quorum: int
) -> tuple[Checkpoint, SignedNote]:
    """Parse a checkpoint note of `origin` and check that at least `quorum` of
    `validators` signed it; return the checkpoint and the note."""
    note = parse_note(text)
    checkpoint = parse_checkpoint(note.body)
    if checkpoint.origin != origin:
        raise CheckpointError(
            "the checkpoint is of another log", expected=origin, computed=checkpoint.origin
        )
    signers = verified_signers(note, validators)
    if len(signers) < quorum:
        raise QuorumError(
            "too few genesis validators signed the checkpoint",
            expected=quorum,
            computed=len(signers),
            signers=signers,
        )
    return checkpoint, note


def _cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + checkpoint.body()


def cosign(checkpoint: Checkpoint, key: SigningKey, *, name: str, timestamp: int) -> NoteSignature:
    """A tlog-cosignature (cosignature/v1) line by `key` under the key name `name`, at
    `timestamp` (seconds since the epoch): the witness's word that it saw this checkpoint
    consistent with all it saw before."""
    check_key_name(name)
    signature = key.sign(_cosigned_message(checkpoint, timestamp))
    public_key = public_key_from_did(key.did)
    return NoteSignature(
        name,
        key_hash(name, COSIGNATURE_V1, public_key),
        timestamp.to_bytes(_TIMESTAMP_BYTES, "big") + signature,
    )


def verify_cosignature(
    signature: NoteSignature, checkpoint: Checkpoint, *, name: str, did: str
) -> int:
    """Check a cosignature/v1 line of the witness key (`name`, `did`); return its timestamp."""
    expected = key_hash(name, COSIGNATURE_V1, public_key_from_did(did))
    if signature.name != name or signature.key_hash != expected:
        raise NoteSignatureError(
            "the cosignature names another key",
            expected=f"{name} {expected.hex()}",
            computed=f"{signature.name} {signature.key_hash.hex()}",
        )
    if len(signature.signature) != _TIMESTAMP_BYTES + _ED25519_SIGNATURE_BYTES:
        raise NoteSignatureError(
            "a cosignature is an 8-byte timestamp and a 64-byte signature",
            computed=len(signature.signature),
        )
    timestamp = int.from_bytes(signature.signature[:_TIMESTAMP_BYTES], "big")
    try:
        verify_signature(
            did,
            _cosigned_message(checkpoint, timestamp),
            signature.signature[_TIMESTAMP_BYTES:],
        )
    except SignatureError as exc:
        raise NoteSignatureError(f"cosignature by {name}: {exc.message}", name=name) from exc
    return timestamp
