"""RFC 8785 canonical JSON: the RFC's examples, refusals, and equality with `rfc8785` under
Hypothesis (the fast path must never produce different bytes from the reference)."""

from __future__ import annotations

import contextlib
import enum
import json
import struct
from types import MappingProxyType

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from shared.canonical import CanonicalizationError, canonicalize, parse_json
from shared.errors import CareLedgerError

# RFC 8785 §3.2.2: the input, as JSON text, and its canonical form.
RFC8785_INPUT = r"""{
  "numbers": [333333333.33333329, 1E30, 4.50,
              2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"""
RFC8785_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
)

# RFC 8785 §3.2.3: keys sorted by their UTF-16 code units.
RFC8785_SORTING_INPUT = r"""{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"""
RFC8785_SORTED_VALUES = [
    "Carriage Return",
    "One",
    "Control",
    "Latin Small Letter O With Diaeresis",
    "Euro Sign",
    "Emoji: Grinning Face",
    "Hebrew Letter Dalet With Dagesh",
]

# RFC 8785 Appendix B: IEEE 754 bit patterns and their JCS number text.
RFC8785_NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]
RFC8785_NON_NUMBERS = ["7fffffffffffffff", "7ff0000000000000"]  # NaN, Infinity

MAX_SAFE = 2**53 - 1


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


def test_rfc8785_example() -> None:
    assert canonicalize(json.loads(RFC8785_INPUT)) == RFC8785_OUTPUT.encode("utf-8")


def test_rfc8785_sorting_example() -> None:
    canonical = canonicalize(json.loads(RFC8785_SORTING_INPUT))
    assert list(json.loads(canonical).values()) == RFC8785_SORTED_VALUES
    assert canonical.startswith(b'{"\\r":"Carriage Return","1":"One","\xc2\x80":"Control"')


@pytest.mark.parametrize(("bits", "text"), RFC8785_NUMBERS)
def test_rfc8785_number_samples(bits: str, text: str) -> None:
    assert canonicalize(_double(bits)) == text.encode()
    assert canonicalize([_double(bits)]) == f"[{text}]".encode()


@pytest.mark.parametrize("bits", RFC8785_NON_NUMBERS)
def test_rfc8785_non_numbers_are_refused(bits: str) -> None:
    with pytest.raises(CanonicalizationError, match="no RFC 8785 form"):
        canonicalize({"n": _double(bits)})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, b"null"),
        (True, b"true"),
        ("", b'""'),
        ("\u2028\x7f\x1f", '"\u2028\x7f\\u001f"'.encode()),
        (MAX_SAFE, b"9007199254740991"),
        (-MAX_SAFE, b"-9007199254740991"),
        ((1, [2, (3,)]), b"[1,[2,[3]]]"),
        ({"b": [], "a": {}}, b'{"a":{},"b":[]}'),
        ({"a": 1.0, "b": -0.0}, b'{"a":1,"b":0}'),
        # U+E000 sorts after U+1F600 in UTF-16 (high surrogate D83D) but before it by code point.
        ({"\ue000": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\ue000":1}'.encode()),
    ],
)
def test_small_values(value: object, expected: bytes) -> None:
    assert canonicalize(value) == expected


class Colour(enum.StrEnum):
    RED = "red"


class Size(enum.IntEnum):
    LARGE = 3


def test_subclasses_of_json_types_are_encoded_by_value() -> None:
    assert canonicalize({"c": Colour.RED, "s": Size.LARGE}) == b'{"c":"red","s":3}'


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        -(2**53),
        [2**64],
        {"n": 10**400},
        {1: "non-string key"},
        {"k": b"bytes"},
        {"k": {1, 2}},
        object(),
        MappingProxyType({"a": 1}),
        float("nan"),
        ["\ud800"],
        {"\udfff": 1},
        {"nested": {"lone": "x\udc00y"}},
    ],
    ids=repr,
)
def test_non_json_values_are_refused(value: object) -> None:
    with pytest.raises(CanonicalizationError) as caught:
        canonicalize(value)
    assert isinstance(caught.value, CareLedgerError)


def test_deep_and_circular_values_are_refused() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CanonicalizationError, match="nested too deeply"):
        canonicalize(deep)
    circular: dict[str, object] = {}
    circular["self"] = circular
    with pytest.raises(CanonicalizationError, match="nested too deeply"):
        canonicalize(circular)


def test_the_fast_path_serves_ledger_values(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: object) -> bytes:
        raise AssertionError("the reference was called for a fast-path value")

    monkeypatch.setattr(rfc8785, "dumps", refuse)
    event = {
        "id": "0190b1d2-8f00-7000-8000-000000000000",
        "data": {"n": [1, -MAX_SAFE, True, None], "é": "ünïcödé ☃", "t": ("x",)},
    }
    assert (
        canonicalize(event)
        == json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.mark.parametrize(
    "value", [1.5, [1.5], {"k": 2**53}, {"\U0001f600": 1}, {"k": Size.LARGE}], ids=repr
)
def test_the_reference_serves_everything_else(
    monkeypatch: pytest.MonkeyPatch, value: object
) -> None:
    calls: list[object] = []
    reference = rfc8785.dumps

    def spy(value: rfc8785._impl._Value) -> bytes:
        calls.append(value)
        return reference(value)

    monkeypatch.setattr(rfc8785, "dumps", spy)
    with contextlib.suppress(CanonicalizationError):
        canonicalize(value)
    assert calls == [value]


# Characters that stress both escaping and sorting: controls, quotes, BMP above the surrogate
# block (U+E000..U+FFFF), astral characters, and (sometimes) lone surrogates.
_CHARACTERS = st.one_of(
    st.characters(max_codepoint=0x7F),
    st.characters(min_codepoint=0xE000, max_codepoint=0xFFFF),
    st.characters(min_codepoint=0x10000),
    st.characters(codec="utf-8"),  # "utf-8" keeps surrogates out
)
_TEXT = st.text(_CHARACTERS, max_size=6)
_TEXT_WITH_SURROGATES = st.text(
    st.one_of(_CHARACTERS, st.characters(categories=["Cs"])), max_size=4
)
_NUMBERS = st.one_of(
    st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE),
    st.integers(),
    st.sampled_from([MAX_SAFE, MAX_SAFE + 1, -MAX_SAFE, -MAX_SAFE - 1, 2**63]),
    st.floats(),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXT)


def _json(
    scalars: st.SearchStrategy[object], keys: st.SearchStrategy[str]
) -> st.SearchStrategy[object]:
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.tuples(children, children),
            st.dictionaries(keys, children, max_size=4),
        ),
        max_leaves=20,
    )


def _agree_with_reference(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        with pytest.raises(CanonicalizationError):
            canonicalize(value)
        return
    assert canonicalize(value) == expected


@given(_json(_SCALARS, _TEXT))
def test_equal_to_the_reference(value: object) -> None:
    _agree_with_reference(value)


@given(_json(st.one_of(st.none(), st.integers(), _TEXT), _TEXT))
def test_equal_to_the_reference_without_floats(value: object) -> None:
    # The fast path's own territory, plus unsafe integers and astral keys that leave it.
    _agree_with_reference(value)


@given(_json(st.one_of(_SCALARS, _TEXT_WITH_SURROGATES), _TEXT_WITH_SURROGATES))
def test_lone_surrogates_are_refused_like_the_reference(value: object) -> None:
    _agree_with_reference(value)


@given(_json(st.one_of(st.none(), st.booleans(), st.integers(-MAX_SAFE, MAX_SAFE), _TEXT), _TEXT))
def test_canonical_form_survives_a_round_trip(value: object) -> None:
    canonical = canonicalize(value)
    assert canonicalize(json.loads(canonical)) == canonical


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"a": 1, "a": 2}', "repeated"),
        ('{"a": {"b": 1, "b": 1}}', "repeated"),
        (b'{"a": NaN}', "NaN is not JSON"),
        ("[Infinity]", "Infinity is not JSON"),
    ],
)
def test_parse_json_refuses_what_could_mean_two_things(raw: bytes | str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_json(raw)


def test_parse_json_reads_utf8_only() -> None:
    assert parse_json('{"é": [1, true, null]}'.encode()) == {"é": [1, True, None]}
    with pytest.raises(UnicodeDecodeError):
        parse_json('{"a": 1}'.encode("utf-16"))
