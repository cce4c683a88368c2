"""The development key file format: exact text, round trips, and every refusal."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import KeyFileError, SigningKey, b64url_encode, dump_key_file, parse_key_file

SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
KEY = SigningKey.from_seed(SEED)


def test_the_exact_format_of_the_brief() -> None:
    # RFC 8032 TEST 1's seed; its did:key is the multibase of ed01 || d75a98...511a.
    assert dump_key_file(KEY) == (
        '{"did": "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw", '
        '"private_key": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}\n'
    )


@given(st.binary(min_size=32, max_size=32))
def test_round_trip(seed: bytes) -> None:
    key = SigningKey.from_seed(seed)
    text = dump_key_file(key)
    assert text.endswith("\n")
    assert text.count("\n") == 1
    assert parse_key_file(text) == key
    assert parse_key_file(text).did == key.did


def test_whitespace_and_member_order_do_not_matter() -> None:
    text = json.dumps({"private_key": b64url_encode(SEED), "did": KEY.did}, indent=4)
    assert parse_key_file(text) == KEY


def _file(**members: object) -> str:
    return json.dumps(members)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "a key file is JSON"),
        ("{", "a key file is JSON"),
        ("[]", "is a JSON object"),
        ('"did"', "is a JSON object"),
        (_file(did=KEY.did), r"missing \['private_key'\]"),
        (_file(private_key=b64url_encode(SEED)), r"missing \['did'\]"),
        (
            _file(did=KEY.did, private_key=b64url_encode(SEED), name="admin"),
            r"unexpected \['name'\]",
        ),
        (
            f'{{"did": "{KEY.did}", "did": "{KEY.did}", "private_key": "{b64url_encode(SEED)}"}}',
            "is repeated",
        ),
        (_file(did=None, private_key=b64url_encode(SEED)), "must be strings"),
        (_file(did=KEY.did, private_key=list(SEED)), "must be strings"),
        (_file(did=KEY.did, private_key=b64url_encode(SEED) + "="), "not unpadded base64url"),
        (_file(did=KEY.did, private_key=SEED.hex()), "32-byte seed, not 48"),
        (_file(did=KEY.did, private_key=b64url_encode(SEED[:31])), "32-byte seed, not 31"),
        (
            _file(did=SigningKey.from_seed(bytes(32)).did, private_key=b64url_encode(SEED)),
            "is not the DID of the private key",
        ),
        (_file(did="did:key:nonsense", private_key=b64url_encode(SEED)), "is not the DID"),
    ],
)
def test_refusals(text: str, complaint: str) -> None:
    with pytest.raises(KeyFileError, match=complaint):
        parse_key_file(text)
