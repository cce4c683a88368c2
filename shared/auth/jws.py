"""Compact JWS (RFC 7515 §7.1) signed with EdDSA over Ed25519 (RFC 8037), verified strictly.

Only the one algorithm is accepted, and nothing in a header may point at a key: the verifier
is told which did:key to check against, so a token can never choose its own trust anchor.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Final

from shared.canonical import parse_json
from shared.crypto import (
    EncodingError,
    SignatureError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    verify_signature,
)
from shared.errors import VerificationError

__all__ = [
    "ALGORITHM",
    "MAX_TOKEN_CHARACTERS",
    "TokenError",
    "TokenFailure",
    "parse_json_object",
    "sign_jws",
    "split_jws",
    "verify_jws",
    "verify_jws_signature",
]

ALGORITHM: Final = "EdDSA"
#: A token of ours is ~400 characters; anything far larger is refused before decoding.
MAX_TOKEN_CHARACTERS: Final = 4096
# Headers that would make a verifier fetch, or trust, a key named by the token itself.
_KEY_BEARING_HEADERS: Final = frozenset({"jwk", "jku", "x5u", "x5c", "x5t", "x5t#S256"})


class TokenFailure(StrEnum):
    """Why a bearer token was refused: the `reason` of the 401 and the metric label."""

    MISSING = "missing_token"  # no Authorization header (decided by the HTTP side)
    MALFORMED = "malformed"  # not three strict base64url parts of JSON objects
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"  # alg is not exactly "EdDSA"
    FORBIDDEN_HEADER = "forbidden_header"  # jwk/jku/x5u/x5c/crit, or typ other than JWT
    INVALID_ISSUER = "invalid_issuer"  # iss is not a valid did:key, or kid names another key
    BAD_SIGNATURE = "bad_signature"  # the signature is not iss's over header.payload
    MISSING_CLAIM = "missing_claim"  # iss, aud, iat, exp or jti absent
    INVALID_CLAIM = "invalid_claim"  # a claim of the wrong type or out of range
    WRONG_AUDIENCE = "wrong_audience"  # aud does not name this service
    EXPIRED = "expired"  # exp has passed (beyond the leeway)
    NOT_YET_VALID = "not_yet_valid"  # iat or nbf in the future (beyond the leeway)
    LIFETIME_TOO_LONG = "lifetime_too_long"  # exp - iat, or exp - now, beyond the maximum
    REPLAYED = "replayed"  # (iss, jti) already used and not yet expired


class TokenError(VerificationError):
    """A bearer token was refused; `reason` says why, the context holds the evidence (never
    the token itself, which a caller could replay from a log)."""

    def __init__(self, reason: TokenFailure, message: str, **evidence: Any) -> None:
        super().__init__(message, reason=str(reason), **evidence)
        self.reason = reason


def sign_jws(key: SigningKey, header: dict[str, Any], payload: bytes) -> str:
    """The compact serialisation of `payload` signed by `key` under `header`."""
    encoded_header = b64url_encode(json.dumps(header, separators=(",", ":")).encode())
    signing_input = f"{encoded_header}.{b64url_encode(payload)}"
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode('ascii')))}"


def split_jws(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(header, payload, signature, signing input) of a compact JWS, checking the header
    (alg first, then the members that could name a key) before anything else is trusted."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARACTERS:
        raise TokenError(TokenFailure.MALFORMED, "the token is not a string of sane length")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError(TokenFailure.MALFORMED, "a compact JWS has three parts", parts=len(parts))
    try:
        raw_header, payload, signature = (b64url_decode(part) for part in parts)
    except EncodingError as exc:
        raise TokenError(TokenFailure.MALFORMED, f"a part is not strict base64url: {exc}") from exc
    header = parse_json_object(raw_header, "header")
    _check_header(header)
    return header, payload, signature, f"{parts[0]}.{parts[1]}".encode("ascii")


def verify_jws_signature(did: str, signing_input: bytes, signature: bytes) -> None:
    """Check the Ed25519 signature of the ASCII `header.payload` by the key `did` names."""
    try:
        verify_signature(did, signing_input, signature)
    except SignatureError as exc:
        raise TokenError(
            TokenFailure.BAD_SIGNATURE, "the signature does not verify", **exc.context
        ) from exc


def parse_json_object(raw: bytes, part: str) -> dict[str, Any]:
    """A UTF-8 JSON object with unique member names and no NaN/Infinity, or MALFORMED."""
    try:
        value = parse_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TokenError(TokenFailure.MALFORMED, f"the {part} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TokenError(TokenFailure.MALFORMED, f"the {part} is not a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    alg = header.get("alg")
    if alg != ALGORITHM:
        # Checked before the signature: "none", HMAC and ECDSA never reach a verifier.
        raise TokenError(
            TokenFailure.UNSUPPORTED_ALGORITHM,
            "only EdDSA tokens are accepted",
            expected=ALGORITHM,
            computed=alg if isinstance(alg, str) else repr(alg),
        )
    key_bearing = sorted(_KEY_BEARING_HEADERS & header.keys())
    if key_bearing:
        raise TokenError(
            TokenFailure.FORBIDDEN_HEADER,
            "the key comes from iss, never from the token's header",
            members=key_bearing,
        )
    if "crit" in header:
        # RFC 7515 §4.1.11: we understand no extensions, so any critical one is refused.
        raise TokenError(TokenFailure.FORBIDDEN_HEADER, "no critical header extension is known")
    if "typ" in header and header["typ"] != "JWT":
        raise TokenError(
            TokenFailure.FORBIDDEN_HEADER,
            "typ, when present, must be JWT",
            expected="JWT",
            computed=repr(header["typ"]),
        )


def verify_jws(token: str, *, did: str) -> tuple[dict[str, Any], bytes]:
    """(header, payload) of a compact EdDSA JWS whose signature is by the key `did` names."""
    header, payload, signature, signing_input = split_jws(token)
    verify_jws_signature(did, signing_input, signature)
    return header, payload
