"""The JWS layer: RFC 8037 Appendix A.4 as a published vector, tampering, refused headers."""

from __future__ import annotations

import json

import pytest

from shared.auth.jws import TokenError, TokenFailure, sign_jws, split_jws, verify_jws
from shared.crypto import SigningKey, b64url_decode, b64url_encode, did_from_public_key

# RFC 8037 Appendix A.1 (the Ed25519 key) and A.4 (the JWS over "Example of Ed25519 signing").
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)
RFC8037_DID = did_from_public_key(b64url_decode(RFC8037_X))
OTHER = SigningKey(bytes(range(32)))


def test_rfc8037_a4_signature_verifies_over_its_payload() -> None:
    header, payload = verify_jws(RFC8037_JWS, did=RFC8037_DID)
    assert header == {"alg": "EdDSA"}
    assert payload == b"Example of Ed25519 signing"


def test_rfc8037_a4_is_reproduced_by_signing_with_the_rfc_key() -> None:
    key = SigningKey(b64url_decode(RFC8037_D))
    assert key.did == RFC8037_DID
    # Ed25519 is deterministic; the RFC's header is serialised without spaces, as ours is.
    assert sign_jws(key, {"alg": "EdDSA"}, b"Example of Ed25519 signing") == RFC8037_JWS


def test_rfc8037_a4_under_another_did_is_a_bad_signature() -> None:
    with pytest.raises(TokenError) as caught:
        verify_jws(RFC8037_JWS, did=OTHER.did)
    assert caught.value.reason is TokenFailure.BAD_SIGNATURE


@pytest.mark.parametrize("part", [0, 1, 2])
def test_flipping_a_bit_in_any_part_is_refused(part: int) -> None:
    parts = RFC8037_JWS.split(".")
    raw = bytearray(b64url_decode(parts[part]))
    raw[len(raw) // 2] ^= 0x01
    parts[part] = b64url_encode(bytes(raw))
    with pytest.raises(TokenError) as caught:
        verify_jws(".".join(parts), did=RFC8037_DID)
    # A flipped header byte breaks its JSON; flipped payload or signature bytes break the sig.
    assert caught.value.reason in {TokenFailure.MALFORMED, TokenFailure.BAD_SIGNATURE}
    if part:
        assert caught.value.reason is TokenFailure.BAD_SIGNATURE


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        RFC8037_JWS + "=",  # padding
        RFC8037_JWS.replace(".", ". ", 1),  # whitespace
        RFC8037_JWS[:-1] + "h",  # non-zero trailing bits: a second spelling of the signature
        "x" * 5000,
        f"{b64url_encode(b'[1]')}.{b64url_encode(b'{}')}.{b64url_encode(bytes(64))}",
        f"{b64url_encode(b'not json')}.{b64url_encode(b'{}')}.{b64url_encode(bytes(64))}",
        ".".join([b64url_encode(b"\xff"), b64url_encode(b"{}"), b64url_encode(bytes(64))]),
    ],
)
def test_malformed_compact_serialisations_are_refused(token: str) -> None:
    with pytest.raises(TokenError) as caught:
        split_jws(token)
    assert caught.value.reason is TokenFailure.MALFORMED


def _with_header(header: dict[str, object] | str) -> str:
    raw = header if isinstance(header, str) else json.dumps(header)
    return f"{b64url_encode(raw.encode())}.{b64url_encode(b'{}')}.{b64url_encode(bytes(64))}"


def test_duplicate_header_members_are_refused() -> None:
    with pytest.raises(TokenError) as caught:
        split_jws(_with_header('{"alg":"none","alg":"EdDSA"}'))
    assert caught.value.reason is TokenFailure.MALFORMED


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "ES256", "RS256", "Ed25519", "eddsa", 1])
def test_every_other_algorithm_is_refused_before_the_signature(alg: object) -> None:
    with pytest.raises(TokenError) as caught:
        split_jws(_with_header({"alg": alg}))
    assert caught.value.reason is TokenFailure.UNSUPPORTED_ALGORITHM


def test_a_header_without_alg_is_refused() -> None:
    with pytest.raises(TokenError) as caught:
        split_jws(_with_header({"typ": "JWT"}))
    assert caught.value.reason is TokenFailure.UNSUPPORTED_ALGORITHM


@pytest.mark.parametrize(
    "extra",
    [
        {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X}},
        {"jku": "https://attacker.example/keys"},
        {"x5u": "https://attacker.example/cert"},
        {"x5c": ["MIIB"]},
        {"crit": ["exp"], "exp": 1},
        {"typ": "JOSE"},
    ],
)
def test_headers_that_bring_their_own_key_or_extensions_are_refused(
    extra: dict[str, object],
) -> None:
    with pytest.raises(TokenError) as caught:
        split_jws(_with_header({"alg": "EdDSA", **extra}))
    assert caught.value.reason is TokenFailure.FORBIDDEN_HEADER
