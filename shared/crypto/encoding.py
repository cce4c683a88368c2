"""Binary-to-text encodings on the wire, decoded strictly: unpadded base64url (RFC 4648 §5, as
RFC 7515 §2 uses it) and multibase base58btc (the ``z`` prefix of did:key identifiers).

Decoding is strict so that each byte string has exactly one accepted text form. A lenient
decoder would let anyone make distinct-but-equivalent signature strings (malleability, which
changes the Merkle leaf of an otherwise identical event) or several spellings of one DID
(which would defeat registries keyed by the DID string).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

import base58

from shared.errors import CareLedgerError

__all__ = [
    "EncodingError",
    "b64url_decode",
    "b64url_encode",
    "base58btc_multibase_decode",
    "base58btc_multibase_encode",
]

_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
# base64url to the standard alphabet, for binascii; "+", "/" and "=" become "!", which is in
# neither alphabet, so that no text outside base64url can pass for one inside it.
_BASE64URL_TO_STANDARD: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
# Bitcoin's base58 alphabet: no 0, O, I or l. The base58 package would strip whitespace.
_BASE58BTC_MULTIBASE: Final = re.compile(r"z[1-9A-HJ-NP-Za-km-z]+")
# Decoding base58 is quadratic in the length; nothing we decode is longer than this.
MAX_BASE58_CHARACTERS: Final = 128


class EncodingError(CareLedgerError):
    """Text is not the canonical encoded form of any byte string."""


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; reject padding, characters outside the alphabet (including
    whitespace), impossible lengths and non-zero trailing bits.

    Every signature of every event comes through here, so the text is decoded directly with
    `binascii`, leniently, and the bytes are accepted only when encoding them gives the text
    back, which is the definition of canonical: `b64url_encode` writes only the alphabet,
    never padding, never a length of 4n + 1, with zero trailing bits. Conversely every
    canonical text is accepted (it is the encoding of some bytes, which the standard decoder
    returns), so whatever is not accepted is refused, and `_b64url_problem` says why.
    """
    try:
        padded = text.encode("ascii").translate(_BASE64URL_TO_STANDARD) + b"=" * (-len(text) % 4)
        data = binascii.a2b_base64(padded)
    except (UnicodeEncodeError, binascii.Error, AttributeError):  # AttributeError: not a str
        pass
    else:
        # b2a_base64 writes the standard alphabet with padding: the text b64url_encode writes,
        # mapped as above, plus the "=" it strips (as many as added here).
        if binascii.b2a_base64(data, newline=False) == padded:
            return data
    raise EncodingError(_b64url_problem(text))


def _b64url_problem(text: str) -> str:
    """Why `text`, refused by `b64url_decode`, is not canonical unpadded base64url."""
    if _BASE64URL.fullmatch(text) is None:
        return "base64url text holds padding or characters outside the alphabet"
    if len(text) % 4 == 1:
        return f"base64url text of length {len(text)} cannot encode whole bytes"
    # In the alphabet and of a possible length, yet not what its bytes encode to: the last
    # character carries unused low bits, and only the all-zero choice is canonical.
    return "base64url text has non-zero trailing bits (non-canonical)"


def base58btc_multibase_encode(data: bytes) -> str:
    """Encode bytes as multibase base58btc: ``z`` followed by base58 (Bitcoin alphabet)."""
    return "z" + base58.b58encode(data).decode("ascii")


def base58btc_multibase_decode(text: str) -> bytes:
    """Decode multibase base58btc; reject other multibase prefixes, characters outside the
    alphabet, and texts longer than `MAX_BASE58_CHARACTERS`."""
    if not text.startswith("z"):
        raise EncodingError(f"not multibase base58btc: prefix {text[:1]!r} is not 'z'")
    if len(text) > MAX_BASE58_CHARACTERS + 1:
        raise EncodingError(f"base58btc text is too long ({len(text) - 1} characters)")
    if _BASE58BTC_MULTIBASE.fullmatch(text) is None:
        raise EncodingError("base58btc text is empty or holds characters outside the alphabet")
    # Base58 of a byte string is unique (leading '1's are leading zero bytes), so no
    # canonical-form check is needed once the alphabet is enforced.
    return bytes(base58.b58decode(text[1:]))
