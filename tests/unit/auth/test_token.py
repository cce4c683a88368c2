"""Bearer JWTs: issue -> verify round trip, every refusal reason, and the replay table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.auth import MemorySeenTokens, TokenError, TokenFailure, issue_token, verify_token
from shared.auth.jws import sign_jws
from shared.crypto import SigningKey, b64url_encode

ALICE = SigningKey(bytes(range(32)))
MALLORY = SigningKey(bytes(range(1, 33)))
NOW = datetime(2025, 11, 25, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
NONE = b'{"alg":"none"}'
HS256 = b'{"alg":"HS256","typ":"JWT"}'


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ALICE.did,
        "aud": "records",
        "iat": T,
        "exp": T + 60,
        "jti": "j-1",
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(payload: dict[str, Any], *, key: SigningKey = ALICE, **header: Any) -> str:
    return sign_jws(key, {"alg": "EdDSA", **header}, json.dumps(payload).encode())


def refusal(token: str, **kwargs: Any) -> TokenFailure:
    with pytest.raises(TokenError) as caught:
        verify_token(token, audience=kwargs.pop("audience", "records"), now=NOW, **kwargs)
    return caught.value.reason


def test_an_issued_token_verifies_to_its_claims() -> None:
    token = issue_token(ALICE, audience="records", issued_at=NOW, jti="j-1")
    verified = verify_token(token, audience="records", now=NOW + timedelta(seconds=59))
    assert verified.issuer == ALICE.did
    assert verified.audience == "records"
    assert verified.issued_at == NOW
    assert verified.expires_at == NOW + timedelta(seconds=60)
    assert verified.jti == "j-1"


@given(
    seed=st.binary(min_size=32, max_size=32),
    audience=st.sampled_from(["identity", "records", "billing"]),
    offset=st.integers(min_value=0, max_value=10**9),
    lifetime=st.integers(min_value=1, max_value=300),
    elapsed=st.integers(min_value=0, max_value=300),
    jti=st.text(min_size=1, max_size=128),
)
def test_round_trip_issue_then_verify(
    *, seed: bytes, audience: str, offset: int, lifetime: int, elapsed: int, jti: str
) -> None:
    key = SigningKey(seed)
    issued = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    token = issue_token(key, audience=audience, issued_at=issued, jti=jti, lifetime=lifetime)
    now = issued + timedelta(seconds=min(elapsed, lifetime - 1))
    verified = verify_token(token, audience=audience, now=now)
    assert (verified.issuer, verified.jti, verified.audience) == (key.did, jti, audience)
    assert verified.expires_at - verified.issued_at == timedelta(seconds=lifetime)


def test_an_audience_array_naming_the_service_is_accepted() -> None:
    token = signed(claims(aud=["billing", "records"]))
    assert verify_token(token, audience="records", now=NOW).audience == "records"


def test_kid_may_name_the_did_or_its_verification_method() -> None:
    fragment = ALICE.did.removeprefix("did:key:")
    for kid in (ALICE.did, f"{ALICE.did}#{fragment}"):
        assert verify_token(signed(claims(), kid=kid), audience="records", now=NOW).jti == "j-1"


# --- every reason verify_token can give --------------------------------------------------


def test_malformed() -> None:
    assert refusal("not.a.token") is TokenFailure.MALFORMED
    payload_not_object = sign_jws(ALICE, {"alg": "EdDSA"}, b"[1,2]")
    assert refusal(payload_not_object) is TokenFailure.MALFORMED
    duplicate = sign_jws(ALICE, {"alg": "EdDSA"}, b'{"aud":"x","aud":"records"}')
    assert refusal(duplicate) is TokenFailure.MALFORMED
    nan = sign_jws(ALICE, {"alg": "EdDSA"}, b'{"iat":NaN}')
    assert refusal(nan) is TokenFailure.MALFORMED


def test_unsupported_algorithm_none_and_hs256() -> None:
    body = b64url_encode(json.dumps(claims()).encode())
    none = f"{b64url_encode(NONE)}.{body}."
    assert refusal(none) is TokenFailure.UNSUPPORTED_ALGORITHM
    hs256 = f"{b64url_encode(HS256)}.{body}.{b64url_encode(bytes(32))}"
    assert refusal(hs256) is TokenFailure.UNSUPPORTED_ALGORITHM


def test_forbidden_header() -> None:
    assert refusal(signed(claims(), jku="https://x.example")) is TokenFailure.FORBIDDEN_HEADER


def test_invalid_issuer() -> None:
    assert refusal(signed(claims(iss="did:web:example.com"))) is TokenFailure.INVALID_ISSUER
    assert refusal(signed(claims(iss=7))) is TokenFailure.INVALID_ISSUER
    assert refusal(signed(claims(), kid=MALLORY.did)) is TokenFailure.INVALID_ISSUER


def test_bad_signature_when_signed_by_another_key_than_iss() -> None:
    assert refusal(signed(claims(), key=MALLORY)) is TokenFailure.BAD_SIGNATURE


@pytest.mark.parametrize("name", ["iss", "aud", "iat", "exp", "jti"])
def test_missing_claim(name: str) -> None:
    payload = claims()
    del payload[name]
    assert refusal(signed(payload)) is TokenFailure.MISSING_CLAIM


@pytest.mark.parametrize(
    "overrides",
    [
        {"iat": True},
        {"exp": float(T + 60)},
        {"iat": float(T) + 0.5},
        {"exp": str(T + 60)},
        {"iat": -1},
        {"exp": T},  # not after iat
        {"aud": 5},
        {"aud": []},
        {"jti": ""},
        {"jti": "x" * 129},
        {"jti": 12},
        {"nbf": "soon"},
    ],
)
def test_invalid_claim(overrides: dict[str, Any]) -> None:
    assert refusal(signed(claims(**overrides))) is TokenFailure.INVALID_CLAIM


def test_wrong_audience() -> None:
    token = issue_token(ALICE, audience="billing", issued_at=NOW, jti="j")
    assert refusal(token) is TokenFailure.WRONG_AUDIENCE
    assert refusal(signed(claims(aud=["identity", "billing"]))) is TokenFailure.WRONG_AUDIENCE


def test_expired_after_exp_plus_leeway_only() -> None:
    token = issue_token(ALICE, audience="records", issued_at=NOW - timedelta(seconds=64), jti="j")
    assert verify_token(token, audience="records", now=NOW, leeway=5).jti == "j"
    assert refusal(token, leeway=4) is TokenFailure.EXPIRED


def test_not_yet_valid_iat_or_nbf_beyond_the_leeway() -> None:
    assert refusal(signed(claims(iat=T + 6, exp=T + 60))) is TokenFailure.NOT_YET_VALID
    assert refusal(signed(claims(nbf=T + 30))) is TokenFailure.NOT_YET_VALID
    assert verify_token(signed(claims(iat=T + 5)), audience="records", now=NOW).jti == "j-1"


def test_lifetime_too_long() -> None:
    assert refusal(signed(claims(exp=T + 301))) is TokenFailure.LIFETIME_TOO_LONG
    # A short lifetime that starts in the future still ends too far ahead.
    assert refusal(signed(claims(iat=T + 100, exp=T + 350))) is TokenFailure.LIFETIME_TOO_LONG


def test_issue_refuses_what_verify_would_refuse() -> None:
    with pytest.raises(ValueError, match="lives"):
        issue_token(ALICE, audience="records", issued_at=NOW, jti="j", lifetime=301)
    with pytest.raises(ValueError, match="jti"):
        issue_token(ALICE, audience="records", issued_at=NOW, jti="")
    with pytest.raises(ValueError, match="aware"):
        issue_token(ALICE, audience="records", issued_at=NOW.replace(tzinfo=None), jti="j")


def test_errors_carry_evidence_but_never_the_token() -> None:
    token = issue_token(ALICE, audience="billing", issued_at=NOW, jti="j")
    with pytest.raises(TokenError) as caught:
        verify_token(token, audience="records", now=NOW)
    evidence = caught.value.evidence()
    assert evidence["reason"] == "wrong_audience"
    assert evidence["expected"] == "records"
    assert token not in json.dumps(evidence)


# --- replay: REPLAYED comes from the SeenTokens port -------------------------------------


def test_replayed_until_expiry_then_forgotten() -> None:
    seen = MemorySeenTokens()
    expires = NOW + timedelta(seconds=60)
    seen.remember(ALICE.did, "j", expires, NOW)
    with pytest.raises(TokenError) as caught:
        seen.remember(ALICE.did, "j", expires, NOW + timedelta(seconds=59))
    assert caught.value.reason is TokenFailure.REPLAYED
    seen.remember(MALLORY.did, "j", expires, NOW)  # the key is (issuer, jti)
    seen.remember(ALICE.did, "j", expires + timedelta(seconds=60), expires)
    assert len(seen) == 1  # the two expired entries were purged


def test_the_worked_example_of_docs_auth_md_verifies() -> None:
    example = (
        "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6ImRpZDprZXk6ejZNa2VoUmdmN3lKYmdhR2ZZc2RvQXNL"
        "ZEJQRTNkajJDWWhvd1FkY2pxU0pndlZkIn0.eyJpc3MiOiJkaWQ6a2V5Ono2TWtlaFJnZjd5SmJnYUdmWXNkb0Fz"
        "S2RCUEUzZGoyQ1lob3dRZGNqcVNKZ3ZWZCIsImF1ZCI6InJlY29yZHMiLCJpYXQiOjE3NjQwNzIwMDAsImV4cCI6"
        "MTc2NDA3MjA2MCwianRpIjoiNWYxYzBiNmU2YjBmNGMxZTlkMmE3YzNiOGU0ZjlhMTAifQ.nokvkteo6cjlqAYNgG"
        "rh67uNrXNOGmp0m7yh7y_c6Ebh5b99194pQThB_9khQz3L115hAKWdOrXD-uyBj1TVCQ"
    )
    verified = verify_token(example, audience="records", now=NOW + timedelta(seconds=30))
    assert verified.issuer == "did:key:z6MkehRgf7yJbgaGfYsdoAsKdBPE3dj2CYhowQdcjqSJgvVd"
    assert verified.jti == "5f1c0b6e6b0f4c1e9d2a7c3b8e4f9a10"
    assert issue_token(ALICE, audience="records", issued_at=NOW, jti=verified.jti) == example
