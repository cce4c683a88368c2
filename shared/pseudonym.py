"""Patient pseudonyms: hex HMAC-SHA-256 of a patient's DID under a 32-byte secret key.

The chain and Kafka carry only the pseudonym; without the key nobody can tell which DID it
stands for, and anyone holding the key (identity, records) computes the same value. The key
travels as text: 32 bytes in unpadded base64url (`dump_pseudonym_key` / `parse_pseudonym_key`);
reading and writing the file belong to `shared.keystore`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from shared.crypto import EncodingError, b64url_decode, b64url_encode
from shared.errors import CareLedgerError

__all__ = [
    "PSEUDONYM_KEY_BYTES",
    "PseudonymKeyError",
    "dump_pseudonym_key",
    "parse_pseudonym_key",
    "patient_pseudonym",
]

PSEUDONYM_KEY_BYTES: Final = 32


class PseudonymKeyError(CareLedgerError):
    """A pseudonym key is not exactly 32 bytes, or its text is not unpadded base64url."""


def patient_pseudonym(key: bytes, did: str) -> str:
    """The pseudonym of `did`: 64 lower-case hex digits of HMAC-SHA-256(key, UTF-8 of did)."""
    _check_length(key)
    return hmac.new(key, did.encode("utf-8"), hashlib.sha256).hexdigest()


def dump_pseudonym_key(key: bytes) -> str:
    """The key file text: the key in unpadded base64url, newline-terminated."""
    _check_length(key)
    return b64url_encode(key) + "\n"


def parse_pseudonym_key(text: str) -> bytes:
    """The key from its file text (surrounding whitespace ignored)."""
    try:
        key = b64url_decode(text.strip())
    except EncodingError as exc:
        raise PseudonymKeyError(f"a pseudonym key is unpadded base64url: {exc}") from exc
    _check_length(key)
    return key


def _check_length(key: bytes) -> None:
    if len(key) != PSEUDONYM_KEY_BYTES:
        raise PseudonymKeyError(
            f"a pseudonym key holds {PSEUDONYM_KEY_BYTES} bytes, not {len(key)}"
        )
