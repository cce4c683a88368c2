"""did:key for Ed25519: the did:key method's published vectors, round trips, and every refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.crypto import (
    ED25519_MULTICODEC,
    InvalidDIDError,
    SigningKey,
    base58btc_multibase_encode,
    did_from_public_key,
    public_key_from_did,
    x25519_public_key_from_did,
)

# w3c-ccg/did-method-key test-vectors/ed25519-x25519.json: seed -> DID, Ed25519 public key,
# X25519 key-agreement key id, X25519 public and private key (base58btc).
DID_KEY_VECTORS = [
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp",
        "4zvwRjXUKGfvwnParsHAS3HuSVzV5cA4McphgmoCtajS",
        "z6LShs9GGnqk85isEBzzshkuVWrVKsRp24GnDuHk8QWkARMW",
        "7By6kV2t2d188odEM4ExAve1UithKT6dLva4dwsDT3ak",
        "6QN8DfuN9hjgHgPvLXqgzqYE3jRRGRrmJQZkd5tL8paR",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000001",
        "did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG",
        "6ASf5EcmmEHTgDJ4X4ZT5vT6iHVJBXPg5AN5YoTCpGWt",
        "z6LSrHyXiPBhUbvPUtyUCdf32sniiMGPTAesgHrtEa4FePtr",
        "FcoNC5NqP9CePWbhfz95iHaEsCjGkZUioK9Ck7Qiw286",
        "HBTcN2MrXNRj9xF9oi8QqYyuEPv3JLLjQKuEgW9oxVKP",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000002",
        "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf",
        "8pM1DN3RiT8vbom5u1sNryaNT1nyL8CTTW3b5PwWXRBH",
        "z6LSkkqoZRC34AEpbkhZCqLDcHQVAxuLpQ7kC8XCXMVUfvjE",
        "A5fe37PAxhX5WNKngBpGHhC1KpNE7nwbK9oX2tqwxYxU",
        "ACa4PPJ1LnPNq1iwS33V3Akh7WtnC71WkKFZ9ccM6sX2",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "did:key:z6MkvqoYXQfDDJRv8L4wKzxYeuKyVZBfi9Qo6Ro8MiLH3kDQ",
        "HPYVwAQmskwT1qEEeRzhoomyfyupJGASQQtCXSNG8XS2",
        "z6LSiUo6AEDat8Ze4nQzDo67SGuHLLwsUGkxndHGUjsywHow",
        "7ocvdvQinfqtyQ3Dh9aA7ggoVCQkmfaoueZazHETDv3B",
        "FZrzd1osCnbK6y6MJzMBW1RcVfL524sNKhSbqRwMuwHT",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000004",
        "did:key:z6MkwW6aqMnjgrhJXFUko3NnZPGzVpkNzhYK7yEhnsibmLwL",
        "J3qYF7YJMKCqQke47UQwiHizgFUXapHxRxKmxbkar89x",
        "z6LSrGb3qm4xMCEBjvwkLb2WEcXfTM94Tu1RyGCbT5wbg8i9",
        "FbQtKTG6FjWSeYZyowWYv2KBcCbwmHqH6HUuxdJ4xkwP",
        "8Zybi2bqQ8YB4uPm3iy2rkDCmbB4wkG2Y2ig5YAkgNdg",
    ),
]
X25519_MULTICODEC = b"\xec\x01"
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
VALID_DID = DID_KEY_VECTORS[0][1]

# --- a deliberately naive edwards25519 (affine coordinates, Python ints) for the refusals ---
P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1)
Point = tuple[int, int]


def decode_point(encoded: bytes) -> Point | None:
    """RFC 8032 §5.1.3 point decoding, but accepting y >= p (reduced), to study such inputs."""
    y = int.from_bytes(encoded, "little") & ((1 << 255) - 1)
    sign = encoded[31] >> 7
    y %= P
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = (u * pow(v, -1, P)) % P
    root = pow(x, (P + 3) // 8, P)
    if (root * root - x) % P:
        root = root * SQRT_M1 % P
    if (root * root - x) % P:
        return None
    if root & 1 != sign:
        root = (P - root) % P
    return (root, y)


def encode_point(point: Point) -> bytes:
    x, y = point
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, -1, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P
    return (x3, y3)


def times(point: Point, n: int) -> Point:
    result = IDENTITY
    for _ in range(n):
        result = add(result, point)
    return result


SMALL_ORDER_HEX = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]


def did_for_bytes(public_key: bytes, codec: bytes = ED25519_MULTICODEC) -> str:
    """A did:key-shaped string for any bytes, bypassing the checks of did_from_public_key."""
    return "did:key:" + base58btc_multibase_encode(codec + public_key)


@pytest.mark.parametrize("vector", DID_KEY_VECTORS, ids=lambda vector: vector[0][-2:])
def test_did_key_spec_vectors(vector: tuple[str, str, str, str, str, str]) -> None:
    seed, did, ed_pub, x_id, x_pub, x_priv = vector
    key = SigningKey.from_seed(bytes.fromhex(seed))
    assert key.did == did
    assert did_from_public_key(key.public_key) == did
    assert base58btc_multibase_encode(public_key_from_did(did))[1:] == ed_pub
    x25519_public = x25519_public_key_from_did(did)
    assert base58btc_multibase_encode(x25519_public)[1:] == x_pub
    assert base58btc_multibase_encode(X25519_MULTICODEC + x25519_public) == x_id
    assert base58btc_multibase_encode(key.x25519_private_key())[1:] == x_priv


def test_did_key_spec_document_example() -> None:
    # The did:key method document's Ed25519 example and its X25519 key-agreement key.
    did = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
    x25519_id = "z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p"
    assert base58btc_multibase_encode(X25519_MULTICODEC + x25519_public_key_from_did(did)) == (
        x25519_id
    )
    assert did_from_public_key(public_key_from_did(did)) == did


@given(st.binary(min_size=32, max_size=32))
def test_round_trip_from_any_seed(seed: bytes) -> None:
    key = SigningKey.from_seed(seed)
    assert key.did.startswith("did:key:z6Mk")
    assert public_key_from_did(key.did) == key.public_key
    assert did_from_public_key(key.public_key) == key.did


@given(st.binary(min_size=32, max_size=32), st.data())
def test_a_changed_character_never_names_the_same_key(seed: bytes, data: st.DataObject) -> None:
    did = SigningKey.from_seed(seed).did
    position = data.draw(st.integers(min_value=len("did:key:z"), max_value=len(did) - 1))
    replacement = data.draw(st.sampled_from(BASE58_ALPHABET + "0OIl#:"))
    mutated = did[:position] + replacement + did[position + 1 :]
    if mutated == did:
        return
    try:
        other = public_key_from_did(mutated)
    except InvalidDIDError:
        return
    assert other != public_key_from_did(did)


@pytest.mark.parametrize(
    ("did", "complaint"),
    [
        ("did:web:example.com", "is not a did:key"),
        ("DID:KEY:" + VALID_DID[8:], "is not a did:key"),
        ("", "is not a did:key"),
        (VALID_DID + "#" + VALID_DID[8:], "a fragment"),
        (VALID_DID + "?service=x", "a query"),
        (VALID_DID + "/path", "a path"),
        ("did:key:1.0:" + VALID_DID[8:], "extra ':'-separated parts"),
        ("did:key:" + "f" + "ed01" + "00" * 32, "prefix 'f' is not 'z'"),
        ("did:key:", "prefix '' is not 'z'"),
        ("did:key:z", "characters outside the alphabet"),
        (VALID_DID[:-1] + "0", "characters outside the alphabet"),
        (VALID_DID + " ", "characters outside the alphabet"),
        ("did:key:z" + "2" * 129, "too long"),
        (did_for_bytes(bytes(32), codec=b"\xec\x01"), "multicodec prefix ec01"),
        (did_for_bytes(bytes(32), codec=b"\xe7\x01"), "multicodec prefix e701"),
        (did_for_bytes(b"\x01" * 31), "32 bytes, not 31"),
        (did_for_bytes(b"\x01" * 33), "32 bytes, not 33"),
        ("did:key:z" + "1" + VALID_DID[9:], "multicodec prefix 00"),
    ],
)
def test_malformed_dids_are_refused_with_a_reason(did: str, complaint: str) -> None:
    with pytest.raises(InvalidDIDError, match=re.escape(complaint)):
        public_key_from_did(did)


def test_a_non_string_is_refused() -> None:
    with pytest.raises(InvalidDIDError, match="a DID is a string"):
        public_key_from_did(b"did:key:z6Mk")  # type: ignore[arg-type]


def test_long_dids_are_shortened_in_messages() -> None:
    with pytest.raises(InvalidDIDError) as caught:
        public_key_from_did("did:web:" + "x" * 500)
    assert len(str(caught.value)) < 200


def test_the_small_order_list_is_exactly_the_points_of_order_dividing_8() -> None:
    # The eight torsion points, found by the naive reference from one point of order 8.
    generator = decode_point(bytes.fromhex(SMALL_ORDER_HEX[2]))
    assert generator is not None
    torsion = {times(generator, n) for n in range(8)}
    assert len(torsion) == 8
    assert all(times(point, 8) == IDENTITY for point in torsion)
    masked = {
        encode_point(point)[:31] + bytes([encode_point(point)[31] & 0x7F]) for point in torsion
    }
    listed = {bytes.fromhex(value) for value in SMALL_ORDER_HEX}
    # The torsion points' y values are 0, 1, p-1 and two order-8 pairs: five masked encodings;
    # the other two listed are the non-canonical spellings y = p (= 0) and y = p + 1 (= 1).
    assert masked <= listed
    assert listed - masked == {bytes.fromhex(SMALL_ORDER_HEX[5]), bytes.fromhex(SMALL_ORDER_HEX[6])}


@pytest.mark.parametrize("sign_bit", [0, 0x80])
@pytest.mark.parametrize("encoded_hex", SMALL_ORDER_HEX)
def test_small_order_keys_are_refused(encoded_hex: str, sign_bit: int) -> None:
    encoded = bytearray.fromhex(encoded_hex)
    encoded[31] |= sign_bit
    with pytest.raises(InvalidDIDError, match="small-order point"):
        public_key_from_did(did_for_bytes(bytes(encoded)))
    with pytest.raises(InvalidDIDError, match="small-order point"):
        did_from_public_key(bytes(encoded))


def test_a_key_with_a_torsion_component_is_refused() -> None:
    honest = decode_point(public_key_from_did(VALID_DID))
    order_8 = decode_point(bytes.fromhex(SMALL_ORDER_HEX[2]))
    assert honest is not None
    assert order_8 is not None
    mixed = encode_point(add(honest, order_8))
    with pytest.raises(InvalidDIDError, match="prime-order subgroup"):
        public_key_from_did(did_for_bytes(mixed))


def test_a_point_off_the_curve_is_refused() -> None:
    y = next(y for y in range(2, 100) if decode_point(y.to_bytes(32, "little")) is None)
    with pytest.raises(InvalidDIDError, match="prime-order subgroup"):
        public_key_from_did(did_for_bytes(y.to_bytes(32, "little")))


def test_a_non_canonical_y_is_refused() -> None:
    # y = p + 2 spells the same y as 2 would; only the reduced form is a valid encoding.
    with pytest.raises(InvalidDIDError, match="prime-order subgroup"):
        did_from_public_key((P + 2).to_bytes(32, "little"))


def test_did_from_public_key_refuses_wrong_lengths() -> None:
    with pytest.raises(InvalidDIDError, match="32 bytes, not 31"):
        did_from_public_key(bytes(31))


def test_x25519_derivation_refuses_invalid_dids() -> None:
    with pytest.raises(InvalidDIDError):
        x25519_public_key_from_did("did:key:zzz")
