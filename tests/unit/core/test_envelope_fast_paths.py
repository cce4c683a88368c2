"""The fast paths of event parsing give exactly the answers of the algorithm they replaced.

`parse_event` reads canonical values without `parse_json`'s duplicate-name hook,
`_structure_problem` answers "nothing wrong" in one pass, `b64url_decode` tries `binascii`
first and `canonicalize` reuses one C encoder. Each claims to be exact; this file holds a
frozen copy of the code as it was before (the `reference_*` functions, not to be "fixed") and
compares the two over generated events, canonical and not: whitespace, reordered and repeated
members, escapes, floats, big integers, astral characters, lone surrogates, wrong types,
missing and extra members, bad signatures. Same result means an equal `ParsedEvent` with the
same repr (so the same types and member order), or the same exception with the same text.
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canonical import CanonicalizationError, canonicalize
from shared.crypto import (
    SIGNATURE_BYTES,
    EncodingError,
    InvalidDIDError,
    SigningKey,
    b64url_decode,
    b64url_encode,
    base58btc_multibase_encode,
    public_key_from_did,
)
from shared.envelope import (
    DATA_CONTENT_TYPE,
    EVENT_TYPE_PATTERN,
    MAX_EVENT_BYTES,
    SPEC_VERSION,
    EventRejected,
    ParsedEvent,
    Reason,
    _is_sound,
    _structure_detail,
    _structure_problem,
    _without_signature,
    build_event,
    is_rfc3339_utc,
    parse_event,
    parse_event_object,
)

# --- the reference: the algorithm as it was, frozen ------------------------------------------

_MAX_SAFE_INTEGER = 2**53 - 1
_LAST_BMP_CHARACTER = "\uffff"
_SCALARS = frozenset({str, bool, type(None)})
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
_TOKEN_LIMITS = {"id": 128, "source": 512, "subject": 256, "dataschema": 1024}
_TOKEN = re.compile(r"[\x21-\x7e]+")
_UNSIGNED_REQUIRED = frozenset(
    {"specversion", "id", "source", "type", "time", "datacontenttype", "data"}
)
_SIGNED_REQUIRED = _UNSIGNED_REQUIRED | {"signer", "signature"}
_ALLOWED = _SIGNED_REQUIRED | {"subject", "dataschema"}
_STRING_MEMBERS = tuple(sorted(_ALLOWED - {"data"}))


def reference_b64url_decode(text: str) -> bytes:
    if _BASE64URL.fullmatch(text) is None:
        raise EncodingError("base64url text holds padding or characters outside the alphabet")
    if len(text) % 4 == 1:
        raise EncodingError(f"base64url text of length {len(text)} cannot encode whole bytes")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        raise EncodingError("base64url text has non-zero trailing bits (non-canonical)")
    return data


def reference_canonicalize(value: object) -> bytes:
    try:
        if _reference_fast_path_is_exact(value):
            try:
                return json.dumps(
                    value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode("utf-8")
            except UnicodeEncodeError:
                pass
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except RecursionError as exc:
        raise CanonicalizationError("value is nested too deeply (or is circular)") from exc
    except (ValueError, TypeError) as exc:
        raise CanonicalizationError(f"value has no RFC 8785 form: {exc}") from exc


def _reference_fast_path_is_exact(value: object) -> bool:  # noqa: PLR0911 - frozen copy
    kind = type(value)
    items: Iterable[tuple[object, object]]
    if kind is dict:
        items = cast("dict[object, object]", value).items()
    elif kind is list or kind is tuple:
        items = enumerate(cast("list[object]", value))
    else:
        if kind is int:
            return -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER  # type: ignore[operator]
        return kind in _SCALARS
    for key, item in items:
        if type(key) is str:
            if not key.isascii() and max(key) > _LAST_BMP_CHARACTER:
                return False
        elif kind is dict:
            return False
        item_kind = type(item)
        if item_kind in _SCALARS:
            continue
        if item_kind is int:
            if -_MAX_SAFE_INTEGER <= item <= _MAX_SAFE_INTEGER:  # type: ignore[operator]
                continue
            return False
        if not _reference_fast_path_is_exact(item):
            return False
    return True


def _reference_unique_members(pairs: list[tuple[str, object]]) -> dict[str, object]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name is repeated in an object")
    return members


def _reference_no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def reference_parse_json(raw: bytes | str) -> object:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(
        text, object_pairs_hook=_reference_unique_members, parse_constant=_reference_no_constant
    )


def reference_parse_event(raw: bytes) -> ParsedEvent:
    if len(raw) > MAX_EVENT_BYTES:
        raise EventRejected(
            Reason.TOO_LARGE, f"{len(raw)} bytes, over {MAX_EVENT_BYTES}", size=len(raw)
        )
    try:
        event = reference_parse_json(raw)
    except ValueError as exc:
        raise EventRejected(Reason.MALFORMED, f"not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise EventRejected(Reason.MALFORMED, "JSON nested too deeply") from None
    if type(event) is not dict:
        raise EventRejected(Reason.MALFORMED, "the event is not a JSON object")
    return reference_parsed(event, raw)


def reference_parsed(event: dict[str, object], raw: bytes | None) -> ParsedEvent:
    problem = reference_structure_problem(event, _SIGNED_REQUIRED)
    if problem is not None:
        raise EventRejected(Reason.MALFORMED, problem)
    signature_text: str = event["signature"]  # type: ignore[assignment]
    try:
        signature = reference_b64url_decode(signature_text)
    except EncodingError as exc:
        raise EventRejected(Reason.MALFORMED, f"member 'signature': {exc}") from None
    if len(signature) != SIGNATURE_BYTES:
        raise EventRejected(
            Reason.MALFORMED, f"member 'signature' holds {len(signature)} bytes, not 64"
        )
    try:
        leaf_bytes = reference_canonicalize(event)
    except CanonicalizationError:
        raise EventRejected(
            Reason.MALFORMED,
            "member 'data' has no RFC 8785 form (a number beyond ±(2**53-1), NaN or Infinity, "
            "or a lone surrogate)",
        ) from None
    if len(leaf_bytes) > MAX_EVENT_BYTES:
        raise EventRejected(
            Reason.TOO_LARGE,
            f"canonical form is {len(leaf_bytes)} bytes, over {MAX_EVENT_BYTES}",
            size=len(leaf_bytes),
        )
    return ParsedEvent(
        event=event,
        raw=leaf_bytes if raw is None else raw,
        signing_bytes=_without_signature(leaf_bytes, signature_text),
        leaf_bytes=leaf_bytes,
        dedup_key=(event["source"], event["id"]),  # type: ignore[arg-type]
        signer=event["signer"],  # type: ignore[arg-type]
        type=event["type"],  # type: ignore[arg-type]
        signature=signature,
    )


def reference_structure_problem(  # noqa: PLR0911 - frozen copy, kept in one piece
    event: dict[str, object], required: frozenset[str]
) -> str | None:
    names = event.keys()
    if not names >= required:
        return f"missing member(s) {sorted(required - names)}"
    unknown = names - _ALLOWED
    if unknown:
        shown = sorted(repr(name)[:40] for name in unknown)[:5]
        return f"member(s) not in the envelope: {', '.join(shown)}"
    for name in _STRING_MEMBERS:
        if name in event and type(event[name]) is not str:
            return f"member {name!r} must be a string"
    if type(event["data"]) is not dict:
        return "member 'data' must be a JSON object"
    strings = cast("dict[str, str]", event)
    for name, limit in _TOKEN_LIMITS.items():
        if name in strings and (
            len(strings[name]) > limit or _TOKEN.fullmatch(strings[name]) is None
        ):
            return f"member {name!r} must be 1-{limit} printable ASCII characters, no spaces"
    for message, holds in _REFERENCE_RULES:
        if not holds(strings):
            return message
    if "signer" in strings:
        try:
            public_key_from_did(strings["signer"])
        except InvalidDIDError as exc:
            return f"member 'signer': {exc}"
    return None


_REFERENCE_RULES: tuple[tuple[str, Callable[[dict[str, str]], bool]], ...] = (
    (
        f"member 'specversion' must be {SPEC_VERSION!r}",
        lambda event: event["specversion"] == SPEC_VERSION,
    ),
    (
        "member 'type' must look like org.careledger.<domain>.<name>.v<N>",
        lambda event: EVENT_TYPE_PATTERN.fullmatch(event["type"]) is not None,
    ),
    (
        "member 'time' must be an RFC 3339 UTC date-time ending in 'Z'",
        lambda event: is_rfc3339_utc(event["time"]),
    ),
    (
        f"member 'datacontenttype' must be {DATA_CONTENT_TYPE!r}",
        lambda event: event["datacontenttype"] == DATA_CONTENT_TYPE,
    ),
)


# --- comparing outcomes ---------------------------------------------------------------------


def outcome(function: Callable[[Any], object], argument: object) -> tuple[object, ...]:
    """What a call gives, comparable: the value with its repr, or the exception in full."""
    try:
        result = function(argument)
    except EventRejected as exc:
        return ("rejected", exc.reason, exc.detail, str(exc), exc.context)
    except Exception as exc:  # any exception must be the same one
        return ("raised", type(exc), str(exc))
    return ("returned", result, repr(result))


def assert_same(new: Callable[[Any], object], old: Callable[[Any], object], arg: object) -> None:
    assert outcome(new, arg) == outcome(old, arg)


# --- generated events -----------------------------------------------------------------------

KEY = SigningKey.from_seed(bytes(range(32)))
SMALL_ORDER_DID = "did:key:" + base58btc_multibase_encode(b"\xed\x01\x01" + bytes(31))

_TEXT = st.text(
    st.one_of(
        st.characters(codec="utf-8"),  # includes astral characters, excludes lone surrogates
        st.sampled_from(['"', "\\", "\x00", "\x1f", "\x7f", "\u2028", "\ufeff", "\U0001f600"]),
    ),
    max_size=10,
)
_LONE_SURROGATE = st.sampled_from(["\ud800", "a\udfff", "\udbff\ud800"])
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.integers(min_value=-(10**30), max_value=10**30),  # unsafe ones too
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1.0, 1e20, 1e21, 2.0**53, 0.5, 5e-324]),
    _TEXT,
    _LONE_SURROGATE,
    st.sampled_from([',"signature":"', ',"signature":"AAAA"', "signature", "}"]),
)
_KEY = st.one_of(_TEXT, st.sampled_from(["signature", "id", "data", "\U0001f600", "\ue000"]))
_JSON = st.recursive(
    _SCALAR,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_KEY, children, max_size=4)
    ),
    max_leaves=16,
)
_SIGNATURE = st.one_of(
    st.binary(min_size=64, max_size=64).map(b64url_encode),
    st.binary(max_size=70).map(b64url_encode),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= é\n"),
    st.binary(min_size=64, max_size=64).map(lambda data: b64url_encode(data)[:-1] + "B"),
)
# A member of the envelope: mostly a valid value, sometimes a wrong one.
_MEMBERS: dict[str, st.SearchStrategy[object]] = {
    "specversion": st.sampled_from([SPEC_VERSION, "0.3", 1.0]),
    "id": st.one_of(st.uuids().map(str), st.sampled_from(["", "a b", "ïd", "a" * 129, 7])),
    "source": st.one_of(
        st.sampled_from(["https://video.example/consults", "urn:x", "s" * 512]),
        st.sampled_from(["", "s" * 513, None, "a\tb", "\x7f"]),
    ),
    "type": st.sampled_from(
        [
            "org.careledger.clinical.consultation_completed.v1",
            "org.careledger.records.record-created.v10",
            "com.example.thing.v1",
            "org.careledger.clinical.thing.v01",
            "",
        ]
    ),
    "time": st.sampled_from(
        [
            "2026-11-24T10:00:00.123Z",
            "2024-02-29T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-24T10:00:00+00:00",
            "2026-11-24T24:00:00Z",
        ]
    ),
    "datacontenttype": st.sampled_from([DATA_CONTENT_TYPE, "text/plain"]),
    "data": st.one_of(st.dictionaries(_KEY, _JSON, max_size=5), _JSON),
    "signer": st.sampled_from(
        [KEY.did, KEY.did, "did:web:video.example", KEY.did + "#key-1", SMALL_ORDER_DID, 1]
    ),
    "signature": _SIGNATURE,
    "subject": st.one_of(st.just("pt-7f3a9c"), _TEXT, st.sampled_from(["x" * 257, None])),
    "dataschema": st.one_of(st.just("https://schemas.example/c.json"), st.just("h" * 1025)),
    "traceparent": st.just("00-abc-def-01"),
    "data_base64": st.just("AAAA"),
    "\U0001f600": st.just(1),
}
_USUAL = ("specversion", "id", "source", "type", "time", "datacontenttype", "data", "signer")


_SAFE_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False).filter(
            lambda number: not (number.is_integer() and 2**53 <= abs(number) < 1e21)
        ),
        _TEXT,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(_TEXT, children, max_size=4)
    ),
    max_leaves=16,
)
_VALID: dict[str, st.SearchStrategy[object]] = {
    "specversion": st.just(SPEC_VERSION),
    "id": st.uuids().map(str),
    "source": st.sampled_from(["https://video.example/consults", "urn:x", "s" * 512]),
    "type": st.sampled_from(
        [
            "org.careledger.clinical.consultation_completed.v1",
            "org.careledger.records.record-created.v10",
        ]
    ),
    "time": st.sampled_from(["2026-11-24T10:00:00.123Z", "2024-02-29T00:00:00Z"]),
    "datacontenttype": st.just(DATA_CONTENT_TYPE),
    "data": st.dictionaries(_TEXT, _SAFE_JSON, max_size=5),
    "signer": st.just(KEY.did),
    "signature": st.binary(min_size=64, max_size=64).map(b64url_encode),
    "subject": st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    "dataschema": st.just("https://schemas.example/c.json"),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, object]:
    """Well-formed envelopes, half the time; otherwise members may be missing, wrong, or
    extra."""
    optional = draw(st.lists(st.sampled_from(["subject", "dataschema"]), unique=True))
    if draw(st.booleans()):
        return {name: draw(_VALID[name]) for name in (*_USUAL, "signature", *optional)}
    names = [name for name in (*_USUAL, "signature") if draw(st.integers(0, 19)) > 0]
    names += draw(st.lists(st.sampled_from(list(_MEMBERS)), max_size=2, unique=True))
    return {name: draw(_MEMBERS[name]) for name in dict.fromkeys(names)}


def _string(text: str, rng: random.Random) -> str:
    """A JSON string literal for `text`, escaping any character at random (as \\uXXXX, an
    astral one as a surrogate pair) and the rest as json.dumps would."""
    parts = []
    for character in text:
        if rng.random() < 0.2:
            units = character.encode("utf-16-be", "surrogatepass")
            parts += [f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2)]
        else:
            parts.append(json.dumps(character, ensure_ascii=rng.random() < 0.1)[1:-1])
    return '"' + "".join(parts) + '"'


def _write(value: object, rng: random.Random, space: str) -> str:
    """JSON text for `value` with random member order, escapes, whitespace and, sometimes, a
    repeated member name."""
    if isinstance(value, dict):
        members = list(value.items())
        if rng.random() < 0.5:
            rng.shuffle(members)
        if members and rng.random() < 0.08:
            members.insert(rng.randrange(len(members) + 1), rng.choice(members))
        return (
            "{"
            + space
            + ("," + space).join(
                _string(key, rng) + space + ":" + space + _write(item, rng, space)
                for key, item in members
            )
            + space
            + "}"
        )
    if isinstance(value, list):
        return "[" + ("," + space).join(_write(item, rng, space) for item in value) + "]"
    if isinstance(value, str):
        return _string(value, rng)
    return json.dumps(value)


@st.composite
def raw_events(draw: st.DrawFn) -> bytes:
    """An event as Kafka bytes: canonical (what publishers send), canonical with a repeated
    member spliced in, or written any other way; then, sometimes, damaged."""
    event = draw(events())
    rng = draw(st.randoms(use_true_random=False))
    way = draw(st.sampled_from(["canonical", "canonical", "repeated", "written", "dumps"]))
    raw: bytes
    if way in ("canonical", "repeated"):
        try:
            raw = reference_canonicalize(event)
        except CanonicalizationError:
            raw = json.dumps(event).encode()
        if way == "repeated" and raw.startswith(b"{") and len(raw) > 2:
            # A second member, canonical in form, in front of the canonical ones.
            name = rng.choice([*event, "id"])
            raw = b"{" + json.dumps(name).encode() + b':"x",' + raw[1:]
    elif way == "written":
        space = rng.choice(["", "", " ", "\n\t "])
        raw = _write(event, rng, space).encode("utf-8", "surrogatepass")
    else:
        raw = json.dumps(event, sort_keys=rng.random() < 0.5, ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    damage = draw(st.sampled_from([-1] * 20 + list(range(6))))
    if damage == 0:
        raw = raw + b" "
    elif damage == 1:
        raw = b"\xef\xbb\xbf" + raw
    elif damage == 2:
        raw = raw[: len(raw) // 2]
    elif damage == 3:
        raw = raw.replace(b"1", b"NaN", 1)
    elif damage == 4:
        raw = raw + b"{}"
    elif damage == 5:
        raw = b"\xff" + raw
    return raw


# --- the properties -------------------------------------------------------------------------


@settings(max_examples=400)
@given(raw_events())
def test_parse_event_gives_the_reference_answer(raw: bytes) -> None:
    assert_same(parse_event, reference_parse_event, raw)


@settings(max_examples=100)
@given(raw_events(), st.sampled_from([bytearray, lambda raw: raw.decode("utf-8", "replace")]))
def test_parse_event_of_other_types_gives_the_reference_answer(
    raw: bytes, convert: Callable[[bytes], object]
) -> None:
    assert_same(parse_event, reference_parse_event, convert(raw))


@settings(max_examples=200)
@given(events())
def test_parse_event_object_gives_the_reference_answer(event: dict[str, object]) -> None:
    assert_same(parse_event_object, lambda value: reference_parsed(dict(value), None), event)


@settings(max_examples=300)
@given(events(), st.sampled_from([_SIGNED_REQUIRED, _UNSIGNED_REQUIRED]), st.booleans())
def test_the_quick_structure_test_is_exact(
    event: dict[str, object], required: frozenset[str], unsigned: bool
) -> None:
    if unsigned:  # as build_event and sign_event check them
        event = {name: value for name, value in event.items() if name != "signer"}
    # Both ways: _is_sound never passes a faulty envelope, and never doubts a sound one
    # (so the detailed walk runs only for an event it will reject).
    assert _is_sound(event, required) == (_structure_detail(event, required) is None)
    assert _structure_problem(event, required) == reference_structure_problem(event, required)


@settings(max_examples=300)
@given(st.one_of(_JSON, st.tuples(_JSON, _JSON), st.dictionaries(_KEY, _JSON, max_size=3)))
def test_canonicalize_gives_the_reference_answer(value: object) -> None:
    assert_same(canonicalize, reference_canonicalize, value)


@settings(max_examples=500)
@given(
    st.one_of(
        _SIGNATURE,
        st.text(alphabet="AQgwBZh_-=+/ \n\x00é", max_size=9),
        st.binary(max_size=9).map(b64url_encode),
    )
)
def test_b64url_decode_gives_the_reference_answer(text: str) -> None:
    assert_same(b64url_decode, reference_b64url_decode, text)


@pytest.mark.parametrize("text", [b"Zm9v", 7, None, "Zm9v\u00e9", "Zm9v\U0001f600", "\ud800"])
def test_b64url_decode_of_odd_arguments_gives_the_reference_answer(text: object) -> None:
    assert_same(b64url_decode, reference_b64url_decode, text)


def _signed_raw(**members: object) -> bytes:
    event = build_event(
        source="https://video.example/consults",
        type="org.careledger.clinical.consultation_completed.v1",
        id="017f22e2-79b0-7cc3-98c4-dc0c0c07398f",
        time="2026-11-24T10:00:00.123Z",
        data={"consultation": "c-1234", "minutes": 15},
    )
    event.update({"signer": KEY.did, "signature": b64url_encode(bytes(64)), **members})
    return canonicalize(event)


@pytest.mark.parametrize(
    "raw",
    [
        _signed_raw(),
        _signed_raw(data={"a": [[[[]]]], "b": {"c": {}}}),
        _signed_raw(data={"n": 1.5}),  # canonical, through the reference
        _signed_raw()[:-1] + b',"id":"x"}',  # canonical up to a repeated name
        _signed_raw().replace(b'"minutes":15', b'"minutes":15,"minutes":15'),
        _signed_raw().replace(b'"minutes":15', b'"minutes":' + b"[" * 50000 + b"]" * 50000),
        _signed_raw().replace(b'"minutes":15', b'"minutes":' + b"9" * 5000),
        _signed_raw().replace(b'"minutes":15', b'"minutes":"\\ud800"'),
        _signed_raw().replace(b"{", b" {", 1),
        _signed_raw(data={"pad": "x" * (MAX_EVENT_BYTES - 400)}),
        _signed_raw(data={"pad": "x" * MAX_EVENT_BYTES}),
        _signed_raw(subject="pt 1"),
        _signed_raw(signer="did:key:z6Mk"),
        b"[" + _signed_raw() + b"]",
        b"",
    ],
)
def test_parse_event_examples_give_the_reference_answer(raw: bytes) -> None:
    assert_same(parse_event, reference_parse_event, raw)


def test_canonical_events_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the change: a canonical event never meets the duplicate-name hook, and a
    # non-canonical one still does.
    calls: list[object] = []

    def counted(raw: bytes | str) -> object:
        calls.append(raw)
        return reference_parse_json(raw)

    monkeypatch.setattr("shared.envelope.parse_json", counted)
    raw = _signed_raw()
    assert parse_event(raw).leaf_bytes == raw
    assert calls == []
    assert parse_event(raw + b"\n").raw == raw + b"\n"
    assert calls == [raw + b"\n"]


def test_token_test_agrees_with_the_pattern_on_every_ascii_character() -> None:
    # _is_sound's replacement for [\x21-\x7e]+ on one character (length is checked apart).
    for code in range(128):
        character = chr(code)
        fast = character.isascii() and character.isprintable() and character != " "
        assert fast == (_TOKEN.fullmatch(character) is not None), code
