"""Forged and broken bearer tokens: one builder per attack, each from a clean signed token.

Shared by the in-process table (every service) and the real-process subset. Every token is
built relative to `now`, so the attacks hold whatever the real clock says.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.auth import issue_token
from shared.auth.jws import sign_jws
from shared.crypto import SigningKey, b64url_encode, public_key_from_did

CALLER = SigningKey.from_seed(b"security-auth-caller".ljust(32, b"#"))
OTHER = SigningKey.from_seed(b"security-auth-other".ljust(32, b"#"))


def claims(audience: str, now: datetime, **changes: Any) -> dict[str, Any]:
    """A valid claim set of CALLER for `audience` at `now`; `changes` replace members
    (None removes one)."""
    moment = int(now.timestamp())
    base: dict[str, Any] = {
        "iss": CALLER.did,
        "aud": audience,
        "iat": moment,
        "exp": moment + 60,
        "jti": uuid.uuid4().hex,
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


def encode(value: Any) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def signed(
    audience: str,
    now: datetime,
    *,
    key: SigningKey = CALLER,
    header: dict[str, Any] | None = None,
    **changes: Any,
) -> str:
    """An EdDSA JWS by `key` over CALLER's claims with `changes`."""
    head = header if header is not None else {"alg": "EdDSA", "typ": "JWT", "kid": CALLER.did}
    payload = json.dumps(claims(audience, now, **changes), separators=(",", ":")).encode()
    return sign_jws(key, head, payload)


def unsigned(audience: str, now: datetime, header: dict[str, Any], signature: str = "") -> str:
    return f"{encode(header)}.{encode(claims(audience, now))}.{signature}"


def hs256_with_public_key(audience: str, now: datetime) -> str:
    """Algorithm confusion: HMAC-SHA-256 keyed with the caller's public key bytes, the
    classic attack on verifiers that take the key from the DID and the algorithm from the
    token."""
    signing_input = f"{encode({'alg': 'HS256', 'typ': 'JWT'})}.{encode(claims(audience, now))}"
    secret = public_key_from_did(CALLER.did)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def raw_payload(audience: str, now: datetime, payload: bytes) -> str:
    """A correctly signed token whose payload is exactly `payload` (not necessarily JSON)."""
    return sign_jws(CALLER, {"alg": "EdDSA", "typ": "JWT"}, payload)


def duplicate_audience(audience: str, now: datetime) -> str:
    """`aud` twice: a lenient parser keeps the last one, a strict one refuses the token."""
    body = json.dumps(claims(audience, now))[:-1] + ', "aud": "someone-else"}'
    return raw_payload(audience, now, body.encode())


def padded(audience: str, now: datetime) -> str:
    header, payload, signature = signed(audience, now).split(".")
    return f"{header}==.{payload}.{signature}"


def standard_base64(audience: str, now: datetime) -> str:
    """The header in standard base64 (`+`, `/`, padding) instead of base64url."""
    header, payload, signature = signed(audience, now).split(".")
    raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
    return f"{base64.b64encode(raw + b' ' * 2).decode()}.{payload}.{signature}"


@dataclass(frozen=True)
class Attack:
    """One attack: how to build the Authorization header value, and the refusal expected."""

    name: str
    authorization: Callable[[str, datetime], str | None]
    reason: str


def constant(value: str | None) -> Callable[[str, datetime], str | None]:
    return lambda _audience, _now: value


def bearer(build: Callable[[str, datetime], str]) -> Callable[[str, datetime], str]:
    return lambda audience, now: f"Bearer {build(audience, now)}"


def _t(seconds: int, now: datetime) -> int:
    return int(now.timestamp()) + seconds


ATTACKS: list[Attack] = [
    Attack("no header", constant(None), "missing_token"),
    Attack("basic scheme", constant("Basic YWxpY2U6c2VjcmV0"), "malformed"),
    Attack("bearer without token", constant("Bearer "), "malformed"),
    Attack(
        "expired",
        bearer(lambda a, n: signed(a, n, iat=_t(-100, n), exp=_t(-10, n))),
        "expired",
    ),
    Attack(
        "iat in the future",
        bearer(lambda a, n: signed(a, n, iat=_t(60, n), exp=_t(120, n))),
        "not_yet_valid",
    ),
    Attack("nbf in the future", bearer(lambda a, n: signed(a, n, nbf=_t(30, n))), "not_yet_valid"),
    Attack("nbf not an integer", bearer(lambda a, n: signed(a, n, nbf="soon")), "invalid_claim"),
    Attack(
        "lifetime beyond 300 s",
        bearer(lambda a, n: signed(a, n, exp=_t(3600, n))),
        "lifetime_too_long",
    ),
    Attack(
        "wrong audience",
        bearer(lambda a, n: signed(a, n, aud="not-" + a)),
        "wrong_audience",
    ),
    Attack(
        "audience array without this service",
        bearer(lambda a, n: signed(a, n, aud=["identity-x", "billing-x"])),
        "wrong_audience",
    ),
    Attack(
        "alg none, empty signature",
        bearer(lambda a, n: unsigned(a, n, {"alg": "none", "typ": "JWT"})),
        "unsupported_algorithm",
    ),
    Attack(
        "alg none, two parts only",
        bearer(lambda a, n: unsigned(a, n, {"alg": "none"}).rstrip(".")),
        "malformed",
    ),
    Attack(
        "alg none with a real signature",
        bearer(lambda a, n: signed(a, n, header={"alg": "none", "typ": "JWT"})),
        "unsupported_algorithm",
    ),
    Attack(
        "HS256 keyed with the public key", bearer(hs256_with_public_key), "unsupported_algorithm"
    ),
    Attack(
        "ES256 header",
        bearer(lambda a, n: signed(a, n, header={"alg": "ES256"})),
        "unsupported_algorithm",
    ),
    Attack(
        "RS256 header",
        bearer(lambda a, n: signed(a, n, header={"alg": "RS256"})),
        "unsupported_algorithm",
    ),
    Attack(
        "alg in lower case",
        bearer(lambda a, n: signed(a, n, header={"alg": "eddsa"})),
        "unsupported_algorithm",
    ),
    Attack(
        "alg in upper case",
        bearer(lambda a, n: signed(a, n, header={"alg": "EDDSA"})),
        "unsupported_algorithm",
    ),
    Attack(
        "alg missing",
        bearer(lambda a, n: signed(a, n, header={"typ": "JWT"})),
        "unsupported_algorithm",
    ),
    Attack(
        "embedded jwk",
        bearer(
            lambda a, n: signed(
                a, n, header={"alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}}
            )
        ),
        "forbidden_header",
    ),
    Attack(
        "signed by another key than iss",
        bearer(lambda a, n: signed(a, n, key=OTHER, header={"alg": "EdDSA"})),
        "bad_signature",
    ),
    Attack(
        "kid names another key",
        bearer(lambda a, n: signed(a, n, header={"alg": "EdDSA", "kid": OTHER.did})),
        "invalid_issuer",
    ),
    Attack(
        "signed and named by another key (kid and iss agree, signature does not)",
        bearer(lambda a, n: signed(a, n, key=OTHER, header={"alg": "EdDSA", "kid": CALLER.did})),
        "bad_signature",
    ),
    Attack("iss not a did:key", bearer(lambda a, n: signed(a, n, iss="admin")), "invalid_issuer"),
    Attack("jti missing", bearer(lambda a, n: signed(a, n, jti=None)), "missing_claim"),
    Attack("16 KiB token", constant("Bearer " + "a" * 16 * 1024), "malformed"),
    Attack("1 MiB token", constant("Bearer " + "a." * (512 * 1024)), "malformed"),
    Attack("bad base64", constant("Bearer e30.e30.!!!"), "malformed"),
    Attack("base64 padding", bearer(padded), "malformed"),
    Attack("standard base64", bearer(standard_base64), "malformed"),
    Attack(
        "payload not JSON",
        bearer(lambda a, n: raw_payload(a, n, b"iss=did:key:z6Mk")),
        "malformed",
    ),
    Attack("payload a JSON array", bearer(lambda a, n: raw_payload(a, n, b"[1,2]")), "malformed"),
    Attack(
        "payload not UTF-8",
        bearer(lambda a, n: raw_payload(a, n, b'{"iss":"\xff"}')),
        "malformed",
    ),
    Attack("duplicate JSON member", bearer(duplicate_audience), "malformed"),
    Attack(
        "huge integer iat",
        bearer(lambda a, n: signed(a, n, iat=10**300, exp=10**300 + 60)),
        "invalid_claim",
    ),
    Attack(
        "huge integer exp",
        bearer(lambda a, n: signed(a, n, exp=2**64)),
        "invalid_claim",
    ),
    Attack(
        "fractional iat",
        bearer(lambda a, n: signed(a, n, iat=_t(0, n) + 0.5)),
        "invalid_claim",
    ),
    Attack("boolean exp", bearer(lambda a, n: signed(a, n, exp=True)), "invalid_claim"),
]


def valid(audience: str, now: datetime, key: SigningKey = CALLER) -> str:
    """A token every service accepts, with a fresh jti."""
    return issue_token(key, audience=audience, issued_at=now, jti=uuid.uuid4().hex)
