"""Bearer tokens of the API (BRIEF "API authentication"): a JWT (RFC 7519) in a compact EdDSA
JWS, signed by the caller's own key and naming it as `iss` (a did:key). Pure: the clock and
the token id come in as arguments, and replay is the caller's business (a SeenTokens port).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from shared.auth.jws import (
    ALGORITHM,
    TokenError,
    TokenFailure,
    parse_json_object,
    sign_jws,
    split_jws,
    verify_jws_signature,
)
from shared.crypto import DID_KEY_PREFIX, InvalidDIDError, SigningKey, public_key_from_did

__all__ = [
    "DEFAULT_LEEWAY",
    "DEFAULT_LIFETIME",
    "MAX_JTI_CHARACTERS",
    "MAX_LIFETIME",
    "TokenClaims",
    "issue_token",
    "verify_token",
]

DEFAULT_LIFETIME: Final = 60
#: BRIEF: exp is at most 300 s ahead.
MAX_LIFETIME: Final = 300
#: Clock skew tolerated between caller and service, in seconds.
DEFAULT_LEEWAY: Final = 5
MAX_JTI_CHARACTERS: Final = 128
_REQUIRED: Final = ("iss", "aud", "iat", "exp", "jti")
# NumericDates outside year 1..9999 do not fit a datetime; refusing them early is clearer.
_MAX_NUMERIC_DATE: Final = 253_402_300_799


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """The verified claims of a bearer token."""

    issuer: str
    audience: str
    issued_at: datetime
    expires_at: datetime
    jti: str


def issue_token(
    key: SigningKey,
    *,
    audience: str,
    issued_at: datetime,
    jti: str,
    lifetime: int = DEFAULT_LIFETIME,
) -> str:
    """A bearer token for `audience` from `key`'s DID, valid `lifetime` seconds from
    `issued_at` (whole seconds: NumericDates are integers here)."""
    if not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"a token lives 1..{MAX_LIFETIME} s, not {lifetime}")
    if not jti or len(jti) > MAX_JTI_CHARACTERS:
        raise ValueError(f"a jti is 1..{MAX_JTI_CHARACTERS} characters")
    iat = _numeric_date(issued_at)
    claims = {"iss": key.did, "aud": audience, "iat": iat, "exp": iat + lifetime, "jti": jti}
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.did}
    return sign_jws(key, header, json.dumps(claims, separators=(",", ":")).encode())


def verify_token(
    token: str,
    *,
    audience: str,
    now: datetime,
    max_lifetime: int = MAX_LIFETIME,
    leeway: int = DEFAULT_LEEWAY,
) -> TokenClaims:
    """The claims of `token` if it is a well-formed EdDSA JWT signed by its `iss`, meant for
    `audience` and valid at `now`; raise TokenError (with its reason) otherwise. Replay is
    not checked here: hand the claims to a SeenTokens."""
    header, raw_payload, signature, signing_input = split_jws(token)
    claims = parse_json_object(raw_payload, "payload")
    missing = [name for name in _REQUIRED if name not in claims]
    if missing:
        raise TokenError(TokenFailure.MISSING_CLAIM, "required claims are absent", missing=missing)
    issuer = _issuer(claims["iss"])
    _check_key_id(header, issuer)
    verify_jws_signature(issuer, signing_input, signature)
    _check_audience(claims["aud"], audience)
    issued_at, expires_at = _check_times(claims, _numeric_date(now), max_lifetime, leeway)
    return TokenClaims(
        issuer=issuer,
        audience=audience,
        issued_at=issued_at,
        expires_at=expires_at,
        jti=_jti(claims["jti"]),
    )


def _issuer(value: object) -> str:
    if not isinstance(value, str):
        raise TokenError(TokenFailure.INVALID_ISSUER, "iss is not a string")
    try:
        public_key_from_did(value)
    except InvalidDIDError as exc:
        raise TokenError(TokenFailure.INVALID_ISSUER, f"iss is not a did:key: {exc}") from exc
    return value


def _check_key_id(header: dict[str, Any], issuer: str) -> None:
    """kid may name the signer, as the DID or its did:key verification method; nothing else."""
    if "kid" not in header:
        return
    allowed = (issuer, f"{issuer}#{issuer.removeprefix(DID_KEY_PREFIX)}")
    if header["kid"] not in allowed:
        raise TokenError(
            TokenFailure.INVALID_ISSUER,
            "kid names another key than iss",
            expected=issuer,
            computed=repr(header["kid"])[:200],
        )


def _check_audience(value: object, audience: str) -> None:
    if isinstance(value, str):
        named = [value]
    elif isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        named = value
    else:
        raise TokenError(TokenFailure.INVALID_CLAIM, "aud is a string or a non-empty string array")
    if audience not in named:
        raise TokenError(
            TokenFailure.WRONG_AUDIENCE,
            "the token is meant for another service",
            expected=audience,
            computed=[item[:64] for item in named[:8]],
        )


def _check_times(
    claims: dict[str, Any], now: int, max_lifetime: int, leeway: int
) -> tuple[datetime, datetime]:
    iat, exp = _date_claim(claims, "iat"), _date_claim(claims, "exp")
    if exp <= iat:
        raise TokenError(TokenFailure.INVALID_CLAIM, "exp is not after iat", iat=iat, exp=exp)
    if exp - iat > max_lifetime:
        raise TokenError(
            TokenFailure.LIFETIME_TOO_LONG,
            "exp - iat exceeds the maximum lifetime",
            expected=max_lifetime,
            computed=exp - iat,
        )
    if exp > now + max_lifetime + leeway:
        raise TokenError(
            TokenFailure.LIFETIME_TOO_LONG,
            "exp is too far ahead",
            expected=now + max_lifetime + leeway,
            computed=exp,
        )
    if now >= exp + leeway:
        raise TokenError(TokenFailure.EXPIRED, "the token has expired", now=now, exp=exp)
    if iat > now + leeway:
        raise TokenError(TokenFailure.NOT_YET_VALID, "iat is in the future", now=now, iat=iat)
    if "nbf" in claims and _date_claim(claims, "nbf") > now + leeway:
        raise TokenError(TokenFailure.NOT_YET_VALID, "nbf is in the future", now=now)
    return _datetime(iat), _datetime(exp)


def _date_claim(claims: dict[str, Any], name: str) -> int:
    """An integer NumericDate: booleans (ints to Python) and floats, even 1.0, are refused,
    so that each instant has one spelling and no fraction is silently dropped."""
    value = claims[name]
    if type(value) is not int or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise TokenError(
            TokenFailure.INVALID_CLAIM,
            f"{name} is not an integer NumericDate",
            claim=name,
            computed=repr(value)[:40],
        )
    return value


def _jti(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_JTI_CHARACTERS:
        raise TokenError(
            TokenFailure.INVALID_CLAIM, f"jti is a string of 1..{MAX_JTI_CHARACTERS} characters"
        )
    return value


def _numeric_date(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("use an aware datetime (UTC)")
    return int(moment.timestamp())


def _datetime(numeric_date: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=numeric_date)
