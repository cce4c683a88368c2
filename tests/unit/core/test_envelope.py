"""The signed CloudEvent envelope: building, signing, parsing, verifying, and every rejection
reason the envelope owns (malformed, too_large, bad_signature)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.canonical import canonicalize
from shared.crypto import (
    SignatureError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    base58btc_multibase_encode,
)
from shared.envelope import (
    CONTENT_TYPE,
    CONTENT_TYPE_HEADER,
    MAX_EVENT_BYTES,
    SPEC_VERSION,
    EventRejected,
    EventSignatureError,
    ParsedEvent,
    Reason,
    build_event,
    encode_event,
    is_rfc3339_utc,
    kafka_key,
    parse_and_verify,
    parse_event_object,
    sign_event,
    uuid7,
    verify_event,
)
from shared.errors import CareLedgerError, VerificationError

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER = SigningKey.from_seed(bytes(range(1, 33)))
TYPE = "org.careledger.clinical.consultation_completed.v1"
EVENT_ID = "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"


def unsigned(**overrides: Any) -> dict[str, object]:
    fields: dict[str, Any] = {
        "source": "https://video.example/consults",
        "type": TYPE,
        "id": EVENT_ID,
        "time": "2026-11-24T10:00:00.123Z",
        "subject": "pt-7f3a9c",
        "data": {"consultation": "c-1234", "minutes": 15, "codes": ["A01", {"x": None}]},
    }
    fields.update(overrides)
    return build_event(**fields)


def signed(**overrides: Any) -> dict[str, object]:
    return sign_event(unsigned(**overrides), KEY)


def raw(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode()


def rejected(payload: bytes, reason: Reason) -> EventRejected:
    with pytest.raises(EventRejected) as caught:
        parse_and_verify(payload)
    assert caught.value.reason is reason, caught.value
    return caught.value


# --- UUIDv7 ---------------------------------------------------------------------------------


def test_uuid7_rfc9562_example() -> None:
    # RFC 9562 Appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
    assert uuid7(0x017F22E279B0, bytes.fromhex("0cc318c4dc0c0c07398f")) == EVENT_ID


@given(st.integers(min_value=0, max_value=2**48 - 1), st.binary(min_size=10, max_size=10))
def test_uuid7_layout(unix_ms: int, rand: bytes) -> None:
    parsed = uuid.UUID(uuid7(unix_ms, rand))
    assert str(parsed) == uuid7(unix_ms, rand)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert parsed.int >> 80 == unix_ms
    # 74 of the 80 random bits survive: rand_a (12) and rand_b (62).
    assert (parsed.int >> 64) & 0xFFF == int.from_bytes(rand[:2]) & 0xFFF
    assert parsed.int & (2**62 - 1) == int.from_bytes(rand[2:]) & (2**62 - 1)


@pytest.mark.parametrize(
    ("unix_ms", "rand"), [(-1, bytes(10)), (2**48, bytes(10)), (0, bytes(9)), (0, bytes(11))]
)
def test_uuid7_refuses_bad_inputs(unix_ms: int, rand: bytes) -> None:
    with pytest.raises(ValueError, match=r"48 bits|10 bytes"):
        uuid7(unix_ms, rand)


# --- building and signing -------------------------------------------------------------------


def test_build_event_shape() -> None:
    assert unsigned(subject=None) == {
        "specversion": "1.0",
        "id": EVENT_ID,
        "source": "https://video.example/consults",
        "type": TYPE,
        "time": "2026-11-24T10:00:00.123Z",
        "datacontenttype": "application/json",
        "data": {"consultation": "c-1234", "minutes": 15, "codes": ["A01", {"x": None}]},
    }
    assert unsigned()["subject"] == "pt-7f3a9c"


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"type": "com.example.thing.v1"}, "'type'"),
        ({"time": "2026-11-24T10:00:00+00:00"}, "'time'"),
        ({"id": ""}, "'id'"),
        ({"subject": "has space"}, "'subject'"),
        ({"source": 7}, "'source' must be a string"),
    ],
)
def test_build_event_refuses_invalid_events(override: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        unsigned(**override)


def test_sign_event_sets_signer_and_signs_the_jcs_of_the_rest() -> None:
    event = signed()
    assert event["signer"] == KEY.did
    without = {name: value for name, value in event.items() if name != "signature"}
    signature = b64url_decode(str(event["signature"]))
    assert signature == KEY.sign(canonicalize(without))
    # Re-signing with another key replaces both members.
    again = sign_event(event, OTHER)
    assert again["signer"] == OTHER.did
    parse_and_verify(encode_event(again))


def test_sign_event_refuses_invalid_events_and_non_json_data() -> None:
    event = unsigned()
    event["extra"] = 1
    with pytest.raises(ValueError, match="not in the envelope"):
        sign_event(event, KEY)
    with pytest.raises(CareLedgerError):
        sign_event(unsigned(data={"n": float("nan")}), KEY)


def test_sign_event_refuses_what_would_be_too_large() -> None:
    event = unsigned(data={"pad": "x" * MAX_EVENT_BYTES})
    with pytest.raises(ValueError, match="over 65536"):
        sign_event(event, KEY)


@pytest.mark.parametrize("number", [2.0**53, -(2.0**53), 1e20])
def test_sign_event_refuses_floats_that_come_back_as_unsafe_integers(number: float) -> None:
    with pytest.raises(ValueError, match="would be rejected"):
        sign_event(unsigned(data={"n": number}), KEY)


@pytest.mark.parametrize("number", [2.0**53 - 1, 1e21, 0.5, -1e-7])
def test_floats_that_round_trip_are_signed(number: float) -> None:
    parsed = parse_and_verify(encode_event(sign_event(unsigned(data={"n": number}), KEY)))
    assert parsed.event["data"] == {"n": number}


def test_kafka_conventions() -> None:
    assert CONTENT_TYPE == "application/cloudevents+json"
    assert CONTENT_TYPE_HEADER == "content-type"
    assert SPEC_VERSION == "1.0"
    assert kafka_key(signed()) == "pt-7f3a9c"
    assert kafka_key(signed(subject=None)) == EVENT_ID
    assert encode_event(signed()) == canonicalize(signed())


# --- parsing and verifying ------------------------------------------------------------------


def test_parse_and_verify_round_trip() -> None:
    event = signed()
    payload = raw(event)
    parsed = parse_and_verify(payload)
    assert parsed == ParsedEvent(
        event=event,
        raw=payload,
        signing_bytes=canonicalize({k: v for k, v in event.items() if k != "signature"}),
        leaf_bytes=canonicalize(event),
        dedup_key=("https://video.example/consults", EVENT_ID),
        signer=KEY.did,
        type=TYPE,
        signature=b64url_decode(str(event["signature"])),
    )


def test_parse_event_object_for_events_already_decoded() -> None:
    event = signed()
    parsed = parse_event_object(MappingProxyType(event))
    verify_event(parsed)
    assert parsed.raw == parsed.leaf_bytes == canonicalize(event)
    with pytest.raises(EventRejected, match="not a JSON object"):
        parse_event_object([event])  # type: ignore[arg-type]


def _round_trips(number: float) -> bool:
    # JCS writes these floats as integer literals that parse back as unsafe ints; sign_event
    # refuses them (test_sign_event_refuses_floats_that_come_back_as_unsafe_integers).
    return not (number.is_integer() and 2**53 <= abs(number) < 1e21)


_KEYS = st.text(st.characters(codec="utf-8"), max_size=8)
_DATA = st.dictionaries(
    _KEYS,
    st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
            st.floats(allow_nan=False, allow_infinity=False).filter(_round_trips),
            st.text(st.characters(codec="utf-8"), max_size=12),
            st.sampled_from(['","signature":"', ',"signature":"AAAA"', '\\"', "signature"]),
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=3)
        ),
        max_leaves=12,
    ),
    max_size=5,
).map(lambda data: {**data, "signature": data.get("signature", "x")})


@given(_DATA, st.booleans())
def test_signing_bytes_equal_the_jcs_of_the_event_without_signature(
    data: dict[str, object], with_subject: bool
) -> None:
    # The data carries keys and strings that look like the signature member, to show the
    # splice never cuts in the wrong place.
    event = signed(data=data, subject="s" if with_subject else None)
    parsed = parse_and_verify(encode_event(event))
    assert parsed.leaf_bytes == canonicalize(event)
    assert parsed.signing_bytes == canonicalize(
        {name: value for name, value in event.items() if name != "signature"}
    )


@given(_DATA, st.data())
def test_signatures_survive_reserialisation(data: dict[str, object], draw: st.DataObject) -> None:
    event = signed(data=data)
    members = draw.draw(st.permutations(list(event.items())))
    text = json.dumps(
        dict(members),
        indent=draw.draw(st.sampled_from([None, 0, 2, "\t"])),
        separators=draw.draw(st.sampled_from([None, (",", ":"), (" ,  ", " :\n")])),
        ensure_ascii=draw.draw(st.booleans()),
    )
    parsed = parse_and_verify(text.encode())
    assert parsed.leaf_bytes == canonicalize(event)


def _leaf_paths(value: object, path: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, (*path, index))


@given(_DATA, st.data())
def test_any_change_inside_data_breaks_the_signature(
    data: dict[str, object], draw: st.DataObject
) -> None:
    event = signed(data=data)
    tampered = json.loads(json.dumps(event))
    paths = [path for path in _leaf_paths(tampered["data"]) if path]
    path = draw.draw(st.sampled_from(paths))
    parent = tampered["data"]
    for step in path[:-1]:
        parent = parent[step]
    # Wrapping a value in a list always changes its canonical form (1 -> 1.0 would not).
    parent[path[-1]] = [parent[path[-1]]]
    with pytest.raises(EventSignatureError):
        parse_and_verify(raw(tampered))


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("id", "017f22e2-79b0-7cc3-98c4-dc0c0c07398e"),
        ("source", "https://video.example/consult"),
        ("type", "org.careledger.clinical.consultation_completed.v2"),
        ("time", "2026-11-24T10:00:00.124Z"),
        ("subject", "pt-7f3a9d"),
        ("dataschema", "https://schemas.example/consult.json"),
        ("data", {"consultation": "c-1234", "minutes": 16, "codes": ["A01", {"x": None}]}),
        ("data", {"consultation": "c-1234", "minutes": 15, "codes": ["A01", {"x": False}]}),
        ("data", {"consultation": "c-1234", "minutes": 15, "codes": ["A01", {}]}),
        ("data", {"consultation": "c-1234", "minutes": 15, "codes": [{"x": None}, "A01"]}),
        ("signer", OTHER.did),
    ],
)
def test_any_change_of_a_member_breaks_the_signature(member: str, value: object) -> None:
    event = signed()
    event[member] = value
    error = rejected(raw(event), Reason.BAD_SIGNATURE)
    assert isinstance(error, EventSignatureError)
    assert isinstance(error, SignatureError)
    evidence = error.evidence()
    assert evidence["reason"] == "bad_signature"
    assert evidence["signer"] == event["signer"]
    assert evidence["source"] == event["source"]
    assert evidence["id"] == event["id"]
    assert len(evidence["message_sha256"]) == 64


def test_removing_an_optional_member_breaks_the_signature() -> None:
    event = signed()
    del event["subject"]
    rejected(raw(event), Reason.BAD_SIGNATURE)


@pytest.mark.parametrize("bit", [0, 7, 255, 511])
def test_a_flipped_signature_bit_is_a_bad_signature(bit: int) -> None:
    event = signed()
    signature = bytearray(b64url_decode(str(event["signature"])))
    signature[bit // 8] ^= 1 << (bit % 8)
    event["signature"] = b64url_encode(bytes(signature))
    rejected(raw(event), Reason.BAD_SIGNATURE)


def test_a_signature_by_another_key_is_a_bad_signature() -> None:
    event = signed()
    event["signature"] = sign_event(event, OTHER)["signature"]
    rejected(raw(event), Reason.BAD_SIGNATURE)


# --- size -----------------------------------------------------------------------------------


def _event_of_size(size: int) -> bytes:
    """A signed event whose Kafka value is exactly `size` bytes (padding in data)."""
    base = len(encode_event(signed(data={"pad": ""})))
    return encode_event(signed(data={"pad": "x" * (size - base)}))


def test_exactly_64_kib_is_accepted_and_one_byte_more_is_too_large() -> None:
    payload = _event_of_size(MAX_EVENT_BYTES)
    assert len(payload) == MAX_EVENT_BYTES
    parse_and_verify(payload)
    error = rejected(payload + b" ", Reason.TOO_LARGE)  # trailing whitespace: still valid JSON
    assert error.context["size"] == MAX_EVENT_BYTES + 1
    assert "65537 bytes, over 65536" in error.detail


def test_an_event_whose_canonical_form_outgrows_the_limit_is_too_large() -> None:
    # 1e20 is 4 bytes of JSON and 21 canonical ones (100000000000000000000).
    event = signed(data={"n": []})
    text = json.dumps(event).replace('"n": []', '"n": [' + ",".join(["1e20"] * 6000) + "]")
    assert len(text) <= MAX_EVENT_BYTES
    error = rejected(text.encode(), Reason.TOO_LARGE)
    assert "canonical form" in error.detail


# --- malformed ------------------------------------------------------------------------------


def _with(**members: object) -> bytes:
    event: dict[str, object] = {**signed(), **members}
    return raw(event)


def _without(member: str) -> bytes:
    event = signed()
    del event[member]
    return raw(event)


GOOD = raw(signed())
# The identity point (y = 1) as a did:key: every signature "verifies" under some libraries.
SMALL_ORDER_DID = "did:key:" + base58btc_multibase_encode(b"\xed\x01\x01" + bytes(31))
MALFORMED = {
    "not utf-8": b"\xff" + GOOD,
    "utf-16": json.dumps(signed()).encode("utf-16"),
    "byte order mark": b"\xef\xbb\xbf" + GOOD,
    "not json": b"{",
    "empty": b"",
    "array": b"[]",
    "string": b'"event"',
    "NaN": GOOD.replace(b'"minutes": 15', b'"minutes": NaN'),
    "Infinity": GOOD.replace(b'"minutes": 15', b'"minutes": -Infinity'),
    "repeated member": GOOD.replace(b'{"specversion": "1.0"', b'{"specversion": "1.0", "id": "a"'),
    "repeated data key": GOOD.replace(b'"minutes": 15', b'"minutes": 15, "minutes": 16'),
    "deep nesting": GOOD.replace(b'"minutes": 15', b'"minutes": ' + b"[" * 30000 + b"]" * 30000),
    "4301-digit integer": GOOD.replace(b'"minutes": 15', b'"minutes": ' + b"9" * 4301),
    "unsafe integer": GOOD.replace(b'"minutes": 15', b'"minutes": 9007199254740992'),
    "lone surrogate": GOOD.replace(b'"minutes": 15', b'"minutes": "\\ud800"'),
    "unknown member": _with(traceparent="00-abc-def-01"),
    "data_base64": _with(data_base64="AAAA"),
    "specversion 0.3": _with(specversion="0.3"),
    "specversion number": _with(specversion=1.0),
    "datacontenttype": _with(datacontenttype="text/plain"),
    "data array": _with(data=[1, 2]),
    "data string": _with(data="{}"),
    "data null": _with(data=None),
    "id empty": _with(id=""),
    "id space": _with(id="a b"),
    "id non-ascii": _with(id="ïd"),
    "id too long": _with(id="a" * 129),
    "id number": _with(id=7),
    "source empty": _with(source=""),
    "source too long": _with(source="s" * 513),
    "subject null": _with(subject=None),
    "subject control": _with(subject="a\nb"),
    "dataschema space": _with(dataschema="https://x.example/a b"),
    "dataschema too long": _with(dataschema="h" * 1025),
    "time offset": _with(time="2026-11-24T10:00:00+00:00"),
    "signer not did:key": _with(signer="did:web:video.example"),
    "signer fragment": _with(signer=KEY.did + "#key-1"),
    "signer small order": _with(signer=SMALL_ORDER_DID),
    "signer number": _with(signer=1),
    "signature padded": _with(signature=str(signed()["signature"]) + "=="),
    "signature standard base64": _with(signature="+" + str(signed()["signature"])[1:]),
    "signature short": _with(signature=b64url_encode(bytes(63))),
    "signature long": _with(signature=b64url_encode(bytes(65))),
    "signature trailing bits": _with(signature=str(signed()["signature"])[:-1] + "B"),
    "signature number": _with(signature=0),
}
for _member in ("specversion", "id", "source", "type", "time", "datacontenttype", "data"):
    MALFORMED[f"no {_member}"] = _without(_member)
MALFORMED["no signer"] = _without("signer")
MALFORMED["no signature"] = _without("signature")


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_events(payload: bytes) -> None:
    error = rejected(payload, Reason.MALFORMED)
    assert isinstance(error, VerificationError)
    assert not isinstance(error, SignatureError)
    assert error.evidence()["reason"] == "malformed"


def test_a_small_order_signer_is_named_as_such() -> None:
    error = rejected(MALFORMED["signer small order"], Reason.MALFORMED)
    assert "small-order point" in error.detail


def test_rejection_details_never_quote_data() -> None:
    payload = GOOD.replace(b'"minutes": 15', b'"minutes": 9007199254740993')
    error = rejected(payload, Reason.MALFORMED)
    assert "9007199254740993" not in str(error)
    error = rejected(_with(data_base64="SECRET-PAYLOAD"), Reason.MALFORMED)
    assert "SECRET-PAYLOAD" not in str(error)


@pytest.mark.parametrize(
    "event_type",
    [
        "org.careledger.clinical.consultation_completed.v1",
        "org.careledger.identity.key.revoked.v2",
        "org.careledger.ledger.genesis.v1",
        "org.careledger.records.record-created.v10",
        "org.careledger.billing2.invoice_settled.v999999",
    ],
)
def test_accepted_types(event_type: str) -> None:
    parse_and_verify(raw(signed(type=event_type)))


@pytest.mark.parametrize(
    "event_type",
    [
        "com.example.clinical.thing.v1",
        "org.careledger.clinical.v1",
        "org.careledger.Clinical.thing.v1",
        "org.careledger.clinical.Thing.v1",
        "org.careledger.clinical.thing.V1",
        "org.careledger.clinical.thing.v0",
        "org.careledger.clinical.thing.v01",
        "org.careledger.clinical.thing.v1234567",
        "org.careledger.clinical.thing",
        "org.careledger.clinical..thing.v1",
        "org.careledger.clinical.thing.v1.",
        "org.careledger.clinical.thing.v1\n",
        "org.careledger.clinical-care.thing.v1",
        "org.careledger.clinical._thing.v1",
        "org.careledger.clinical.*",
        "",
    ],
)
def test_refused_types(event_type: str) -> None:
    rejected(_with(type=event_type), Reason.MALFORMED)


@pytest.mark.parametrize(
    "time",
    ["2026-11-24T10:00:00Z", "2026-11-24T23:59:59.1Z", "2024-02-29T00:00:00.123456789Z"],
)
def test_accepted_times(time: str) -> None:
    assert is_rfc3339_utc(time)
    parse_and_verify(raw(signed(time=time)))


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-24t10:00:00z",
        "2026-11-24T10:00:00+00:00",
        "2026-11-24T10:00Z",
        "2026-11-24 10:00:00Z",
        "2026-11-24T24:00:00Z",
        "2026-11-24T23:60:00Z",
        "2026-11-24T23:59:60Z",
        "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-11-24T10:00:00.1234567890Z",
        "2026-11-24T10:00:00.Z",
        "2026-11-24T10:00:00Z ",
        "٢٠٢٦-11-24T10:00:00Z",
        "",
    ],
)
def test_refused_times(time: str) -> None:
    assert not is_rfc3339_utc(time)
    rejected(_with(time=time), Reason.MALFORMED)


# --- the error design -----------------------------------------------------------------------


def test_reason_codes_are_the_briefs() -> None:
    assert [reason.value for reason in Reason] == [
        "malformed",
        "too_large",
        "bad_signature",
        "unknown_signer",
        "revoked_signer",
        "unauthorized_type",
        "duplicate",
    ]


def test_event_rejected_for_other_reasons() -> None:
    # Admission (elsewhere) raises these with the same class.
    error = EventRejected("revoked_signer", "key revoked at height 12", signer=KEY.did)
    assert error.reason is Reason.REVOKED_SIGNER
    assert error.detail == "key revoked at height 12"
    assert str(error).startswith("revoked_signer: key revoked at height 12")
    assert error.evidence()["signer"] == KEY.did
    assert isinstance(error, VerificationError)
    with pytest.raises(ValueError, match="not a valid Reason"):
        EventRejected("no_such_reason", "x")


def test_the_documented_example() -> None:
    # docs/envelope.md shows this event; if this test changes, the document must too.
    key = SigningKey.from_seed(
        bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    )
    event = sign_event(
        build_event(
            source="https://video.example/consults",
            type="org.careledger.clinical.consultation.completed.v1",
            id=uuid7(0x017F22E279B0, bytes.fromhex("0cc318c4dc0c0c07398f")),
            time="2022-02-22T19:22:22Z",
            subject="pt-3f9c2a7e",
            data={
                "consultation": "c-1234",
                "practitioner_commitment": (
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
                ),
                "duration_minutes": 15,
            },
        ),
        key,
    )
    assert event["signer"] == "did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw"
    assert event["signature"] == (
        "WQq0FcwGKh6eZcx6o_zWEGJVz9V4zdjhc74aqSBxW-WDWzJcQQkousMpGmR0J3-EolEuOkbNHkNvL23PaQfVDA"
    )
    assert len(encode_event(event)) == 574
