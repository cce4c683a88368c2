"""Hypothesis strategies of hostile Kafka values: near-valid events, mutated.

Each strategy starts from a valid event signed by a key of the `ChainFactory` chain and
changes one thing, so that the checks behind the first ones are reached: the envelope's
member rules, the strict JSON reader, the canonical form, the signature, the signer's rights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from shared.canonical import CanonicalizationError, canonicalize
from shared.crypto import SigningKey, b64url_encode
from shared.envelope import encode_event
from shared.topics import BILLING_EVENTS, CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS
from tests.unit.core.chainfactory import CLINICAL_TYPE, ChainFactory

TOPICS = (CLINICAL_EVENTS, IDENTITY_EVENTS, RECORDS_EVENTS, BILLING_EVENTS)
SIGNERS = (
    "publisher",
    "identity",
    "records",
    "billing",
    "stranger",
    "sealer",
    "validator-1",
    "publisher-2",  # revoked in every `Pipeline`
)
#: The topic each signer may publish on (the others: clinical.events, where they may not).
HOME_TOPIC = {
    "identity": IDENTITY_EVENTS,
    "records": RECORDS_EVENTS,
    "billing": BILLING_EVENTS,
}
MEMBERS = (
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "datacontenttype",
    "data",
    "subject",
    "dataschema",
    "signer",
    "signature",
)
TYPES = (
    CLINICAL_TYPE,
    "org.careledger.identity.publisher.registered.v1",
    "org.careledger.identity.patient.registered.v1",
    "org.careledger.records.record.written.v1",
    "org.careledger.billing.invoice.issued.v1",
    "org.careledger.ledger.genesis.v1",
    "org.careledger.clinical.*",
    "org.careledger.clinical.x.v0",
    "org.careledger.Clinical.x.v1",
)
BAD_TIMES = (
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00:00+00:00",
    "2026-02-30T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-12-31T23:59:60Z",
    "2026-01-01T00:00:00.1234567890Z",
    "0000-01-01T00:00:00Z",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00Z\n",
    "",
    "9999-12-31T23:59:59.999999999Z",
    "1970-01-01T00:00:00Z",
)
EDGE_INTS = (2**53 - 1, 2**53, -(2**53) + 1, -(2**53), 2**63, -(2**64), 10**30)
EDGE_STRINGS = (
    "",
    " ",
    "\x00",
    "\u2028",
    "\ufeff",
    "\U0001f600",
    "é",
    "e\u0301",
    "\x7f",
    "a" * 129,
    "a" * 513,
)

#: Scalars and containers a JSON member can hold, the odd ones included.
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(EDGE_INTS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(EDGE_STRINGS),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def signed(
    factory: ChainFactory, unsigned: dict[str, Any], key: SigningKey
) -> dict[str, Any] | None:
    """`unsigned` with `signer` and a *valid* signature over its JCS, whatever else is wrong
    with it (None if it has no JCS form), so that the checks after the signature are reached."""
    body = {name: value for name, value in unsigned.items() if name != "signature"}
    body["signer"] = key.did
    try:
        signature = key.sign(canonicalize(body))
    except (CanonicalizationError, TypeError, ValueError):
        return None
    return {**body, "signature": b64url_encode(signature)}


def _key_of(factory: ChainFactory, event: dict[str, Any]) -> SigningKey:
    """The key of the event's signer (the publisher's if it names none of the chain's)."""
    for key in factory.keys.values():
        if key.did == event.get("signer"):
            return key
    return factory.keys["publisher"]


def nested(depth: int) -> Any:
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"n": value}
    return value


@st.composite
def base_event(draw: st.DrawFn, factory: ChainFactory) -> dict[str, Any]:
    """A valid event by one of the chain's keys (not necessarily allowed on every topic)."""
    signer = draw(st.sampled_from(SIGNERS))
    # Types without a data schema (or with valid data), so that the signature and the
    # signer's rights are what decide.
    own = (f"org.careledger.{signer}.note.v1", CLINICAL_TYPE, *TYPES[1:3])
    event_type = draw(st.sampled_from(own if signer in HOME_TOPIC else TYPES[:1]))
    if event_type.startswith("org.careledger.identity.patient"):
        data: dict[str, Any] = {"pseudonym": "ab" * 32}
    else:
        data = {"n": draw(st.integers(-(2**53) + 1, 2**53 - 1))}
    try:
        return factory.event(signer, event_type, data)
    except ValueError:
        return factory.event("publisher")


Mutation = Callable[[st.DrawFn, ChainFactory, dict[str, Any]], bytes]


def _remove(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    name = draw(st.sampled_from(sorted(event)))
    body = {k: v for k, v in event.items() if k != name}
    again = signed(factory, body, _key_of(factory, event)) if draw(st.booleans()) else None
    return encode_event(again or body)


def _add(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    name = draw(st.sampled_from(("traceparent", "extra", "Signature", "", "id ")))
    body = {**event, name: draw(JSON_VALUES)}
    return _encode(signed(factory, body, _key_of(factory, event)) or body)


def _retype(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    name = draw(st.sampled_from(MEMBERS))
    body = {**event, name: draw(JSON_VALUES)}
    resign = draw(st.booleans()) and name not in ("signer", "signature")
    return _encode((signed(factory, body, _key_of(factory, event)) if resign else None) or body)


def _huge_int(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    body = {**event, "data": {"n": draw(st.sampled_from(EDGE_INTS))}}
    again = signed(factory, body, _key_of(factory, event))
    if again is not None:
        return encode_event(again)
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return text.encode()


def _huge_literal(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    literal = draw(st.sampled_from(("1" * 400, "1e400", "-0", "1.0", "1E2", "0.1e-400", "-1e21")))
    text = encode_event(event).decode()
    return text.replace('"data":{', '"data":{"big":' + literal + ",", 1).encode()


def _deep(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    depth = draw(st.sampled_from((29, 30, 31, 32, 33, 100, 5000)))
    body = {**event, "data": {"deep": nested(depth)}}
    if depth < 100:
        again = signed(factory, body, _key_of(factory, event))
        if again is not None:
            return encode_event(again)
    # Deeper than Python's JSON encoder goes: written as text.
    deep = "[" * depth + "]" * depth
    return encode_event(event).replace(b'"data":{', b'"data":{"d":' + deep.encode() + b",", 1)


def _unicode(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    raw = encode_event(event)
    return draw(
        st.sampled_from(
            (
                b"\xef\xbb\xbf" + raw,  # a BOM
                raw.replace(b'"n":', b'"\\ud800":', 1),  # a lone surrogate, escaped
                raw.replace(b'"n":', b'"\xed\xa0\x80":', 1),  # a surrogate, encoded (invalid)
                raw.replace(b'"n":', b'"\xc0\xae":', 1),  # an overlong encoding
                raw.replace(b'"n":', b'"\\u0000":', 1),
                raw.replace(b'"n":', b'"\\u006e":', 1),  # "n", escaped: another text, same value
                raw.replace(b'"n":', b'"\xf0\x9f\x98\x80":', 1),
                raw.decode().encode("utf-16"),
                raw.replace(b'"publisher', b'"publ\\u0069sher', 1),
                raw[:-1],
                raw + b" ",
                raw + b"{}",
            )
        )
    )


def _noncanonical(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    style = draw(st.sampled_from(("indent", "unsorted", "ascii", "spaces")))
    if style == "indent":
        return json.dumps(event, indent=2).encode()
    if style == "unsorted":
        return json.dumps(dict(reversed(list(event.items())))).encode()
    if style == "ascii":
        return json.dumps(event, ensure_ascii=True, separators=(",", ":")).encode()
    return json.dumps(event, separators=(" , ", " : ")).encode()


def _duplicate_key(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    raw = encode_event(event).decode()
    where = draw(st.sampled_from(("top", "data", "signer", "signature")))
    if where == "top":
        return raw.replace("{", '{"id":"other",', 1).encode()
    if where == "data":
        return raw.replace('"data":{', '"data":{"n":0,', 1).encode()
    if where == "signer":
        return raw[:-1].encode() + b',"signer":"' + factory.did("stranger").encode() + b'"}'
    return raw[:-1].encode() + b',"signature":"' + b"A" * 86 + b'"}'


def _wrong_signature(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    signature = str(event["signature"])
    choice = draw(st.sampled_from(("flip", "padded", "short", "other", "zero", "std")))
    if choice == "flip":
        index = draw(st.integers(0, len(signature) - 2))
        flipped = "A" if signature[index] != "A" else "B"
        signature = signature[:index] + flipped + signature[index + 1 :]
    elif choice == "padded":
        signature += "=="
    elif choice == "short":
        signature = signature[:-4]
    elif choice == "other":
        signature = str(factory.event()["signature"])
    elif choice == "zero":
        signature = b64url_encode(bytes(64))
    else:
        signature = signature.replace("-", "+").replace("_", "/")
    return encode_event({**event, "signature": signature})


def _wrong_signer(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    choice = draw(st.sampled_from(("swap", "stranger", "garbage", "fragment")))
    if choice == "swap":
        return encode_event({**event, "signer": factory.did(draw(st.sampled_from(SIGNERS)))})
    if choice == "stranger":
        again = signed(factory, event, factory.keys[draw(st.sampled_from(SIGNERS))])
        assert again is not None
        return encode_event(again)
    if choice == "garbage":
        return encode_event({**event, "signer": "did:key:z6Mk" + "1" * 44})
    return encode_event({**event, "signer": str(event["signer"]) + "#key-1"})


def _bad_time(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    body = {**event, "time": draw(st.sampled_from(BAD_TIMES))}
    return encode_event(signed(factory, body, _key_of(factory, event)) or body)


def _bad_type(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    body = {**event, "type": draw(st.sampled_from(TYPES))}
    return encode_event(signed(factory, body, _key_of(factory, event)) or body)


def _bad_token(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    name = draw(st.sampled_from(("id", "source", "subject", "dataschema")))
    body = {**event, name: draw(st.sampled_from(EDGE_STRINGS))}
    return encode_event(signed(factory, body, _key_of(factory, event)) or body)


def _oversize(draw: st.DrawFn, factory: ChainFactory, event: dict[str, Any]) -> bytes:
    # Around the limit: the raw value, or only its canonical form (1e20 grows to 21 digits).
    size = draw(st.sampled_from((65_536 - 700, 65_536 - 600, 65_536, 70_000)))
    body = {**event, "data": {"pad": "x" * (size - 600)}}
    again = signed(factory, body, _key_of(factory, event))
    raw = encode_event(again or body)
    if draw(st.booleans()):
        raw = json.dumps(json.loads(raw), indent=1).encode()  # whitespace: raw grows only
    return raw


MUTATIONS: tuple[Mutation, ...] = (
    _remove,
    _add,
    _retype,
    _huge_int,
    _huge_literal,
    _deep,
    _unicode,
    _noncanonical,
    _duplicate_key,
    _wrong_signature,
    _wrong_signer,
    _bad_time,
    _bad_type,
    _bad_token,
    _oversize,
)


@st.composite
def hostile_value(draw: st.DrawFn, factory: ChainFactory) -> tuple[bytes, str]:
    """One Kafka value (a valid event of the chain with one mutation) and its topic: mostly
    the one its signer may publish on, so that the checks after the signer's are reached."""
    event = draw(base_event(factory))
    mutation = draw(st.sampled_from(MUTATIONS))
    names = [name for name, key in factory.keys.items() if key.did == event["signer"]]
    home = HOME_TOPIC.get(names[0], CLINICAL_EVENTS)
    topic = draw(st.sampled_from((home, home, home, *TOPICS)))
    return mutation(draw, factory, event), topic


def _encode(value: dict[str, Any]) -> bytes:
    """The value's JCS if it has one, else Python's JSON (unsafe numbers and all)."""
    try:
        return encode_event(value)
    except (CanonicalizationError, TypeError, ValueError):
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
