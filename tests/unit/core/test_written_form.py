"""Events travel as their canonical bytes: a block as `block_to_json` writes it carries each
event as its RFC 8785 text, `read_block` finds those leaves again without encoding anything,
and a verifier hashing them reaches exactly the verdicts it reaches by canonicalising.
Also the fixed nesting depth of events (`MAX_EVENT_DEPTH`), checked on bytes and on values
with the same verdict."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.block import Block, BlockFormatError, block_from_json, block_to_json, read_block
from shared.canonical import canonicalize, parse_canonical, read_canonical
from shared.chain import ChainVerifier, EventAdmissionError, verify_chain
from shared.envelope import (
    MAX_EVENT_BYTES,
    MAX_EVENT_DEPTH,
    EventRejected,
    Reason,
    encode_event,
    parse_canonical_event,
    parse_event,
    parse_event_object,
)
from tests.unit.core.chainfactory import ChainFactory


def _dumps(value: object, **options: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, **options).encode("utf-8")


def _old_block_to_json(block: Block) -> bytes:
    """How blocks were written before their events were written as leaves."""
    return _dumps(block.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


@pytest.fixture(scope="module")
def chain() -> ChainFactory:
    factory = ChainFactory()
    factory.seal(
        factory.event(data={"note": "é ü 中", "codes": [1, -2, 3], "x": {}}) for _ in range(3)
    )
    factory.seal_many(2, 4)
    return factory


# --- block_to_json -----------------------------------------------------------------------------


def test_blocks_are_written_as_before_when_their_events_hold_no_floats(chain: ChainFactory) -> None:
    for block in chain.blocks:
        assert block_to_json(block) == _old_block_to_json(block)


def test_the_leaves_given_are_the_events_written(chain: ChainFactory) -> None:
    block = chain.blocks[1]
    leaves = [canonicalize(event) for event in block.events]
    assert block_to_json(block, leaves=leaves) == block_to_json(block)
    with pytest.raises(ValueError, match="one leaf per event"):
        block_to_json(block, leaves=leaves[:-1])


def test_an_event_with_a_float_is_written_as_its_canonical_text() -> None:
    factory = ChainFactory()
    block = factory.seal([factory.event(data={"dose": 1.5e30, "ratio": 0.5})])
    written = block_to_json(block)
    assert canonicalize(block.events[0]) in written
    assert b'"dose":1.5e+30' in written  # JCS; Python would write 1.5e+30 too, but 1e30 as 1e+30
    assert block_from_json(written) == block


# --- read_block -----------------------------------------------------------------------------


def test_the_written_form_gives_the_block_and_its_leaves(chain: ChainFactory) -> None:
    for block in chain.blocks:
        read, leaves = read_block(block_to_json(block))
        assert read == block
        assert leaves == tuple(canonicalize(event) for event in block.events)
        assert read_block(block_to_json(block).decode("utf-8")) == (block, leaves)


def test_other_forms_of_a_block_give_the_same_block_and_no_leaves(chain: ChainFactory) -> None:
    block = chain.blocks[1]
    value = block.model_dump(mode="json")
    forms = [
        _dumps(value, indent=1),
        _dumps(value, separators=(",", ":")),  # members not sorted
        _dumps(
            {**value, "events": [dict(reversed(e.items())) for e in value["events"]]},
            sort_keys=False,
            separators=(",", ":"),
        ),
        block_to_json(block).replace(b'"events":[{', b'"events":[ {'),
        block_to_json(block).replace(b'"events":[{', b'"events": [{'),
        block_to_json(block).replace(b'},{"data"', b'} ,{"data"', 1),
        block_to_json(block).replace(b'"header":{', b'"header": {'),
        block_to_json(block) + b" ",
    ]
    for form in forms:
        assert read_block(form) == (block, None), form[:80]


def test_an_event_with_a_float_gives_no_leaves_and_the_same_verdicts() -> None:
    factory = ChainFactory()
    factory.seal([factory.event(data={"dose": 0.25})])
    written = factory.serialized()
    assert read_block(written[1])[1] is None
    assert verify_chain(written).tree_size == 2


def test_an_empty_events_array_is_read_and_then_refused_by_the_verifier(
    chain: ChainFactory,
) -> None:
    block = chain.resign(chain.blocks[1], events=[])
    read, leaves = read_block(block_to_json(block))
    assert (read.events, leaves) == ((), ())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace(b'"height":1,', b'"height":-1,'), "header.height"),
        (lambda text: text.replace(b'"events":[{', b'"events":[1,{'), "events.0"),
        (lambda text: text.replace(b'"block_hash":"', b'"block_hash":"zz', 1), "block_hash"),
        (lambda text: b"\xff" + text, "not a block"),
    ],
)
def test_a_broken_written_form_gets_the_general_parse_s_error(
    chain: ChainFactory, edit: Any, message: str
) -> None:
    with pytest.raises(BlockFormatError, match=message):
        read_block(edit(block_to_json(chain.blocks[1])))


def test_events_not_separated_by_commas_are_not_a_block(chain: ChainFactory) -> None:
    text = block_to_json(chain.blocks[1]).replace(b'},{"data"', b'}{"data"', 1)
    with pytest.raises(BlockFormatError):
        read_block(text)


# --- verifying with leaves --------------------------------------------------------------------


def test_verifying_with_the_leaves_gives_what_canonicalising_gives(chain: ChainFactory) -> None:
    with_leaves = ChainVerifier(trusted_genesis=chain.genesis_event)
    without = ChainVerifier(trusted_genesis=chain.genesis_event)
    for written in chain.serialized():
        block, leaves = read_block(written)
        assert leaves is not None
        fast = with_leaves.verify_block(block, leaves=leaves)
        slow = without.verify_block(block)
        assert (fast.leaf_hashes, fast.nodes, fast.dedup_keys) == (
            slow.leaf_hashes,
            slow.nodes,
            slow.dedup_keys,
        )
        assert fast.state.head_hash == slow.state.head_hash


def test_leaves_must_match_the_events(chain: ChainFactory) -> None:
    verifier = ChainVerifier(trusted_genesis=chain.genesis_event)
    verifier.verify_block(chain.blocks[0])
    block, leaves = read_block(block_to_json(chain.blocks[1]))
    assert leaves is not None
    with pytest.raises(ValueError, match="one leaf per event"):
        verifier.verify_block(block, leaves=leaves[1:])


def test_a_too_deep_event_in_a_block_is_refused_either_way() -> None:
    factory = ChainFactory()
    deep: dict[str, Any] = {}
    for _ in range(MAX_EVENT_DEPTH - 1):
        deep = {"d": deep}
    event = factory.event(data={"ok": True})
    event = {**event, "data": deep}  # the signature no longer matches, but depth is checked first
    block = factory.assemble([event])
    written = block_to_json(block)
    for leaves in (read_block(written)[1], None):
        verifier = ChainVerifier(trusted_genesis=factory.genesis_event)
        verifier.verify_block(factory.blocks[0])
        with pytest.raises(EventAdmissionError, match="nested deeper") as caught:
            verifier.verify_block(block, leaves=leaves)
        assert caught.value.context["reason"] == "malformed"


# --- canonical text ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(JSON)
def test_canonical_text_is_recognised_only_when_it_is_the_canonical_form(value: object) -> None:
    try:
        canonical = canonicalize(value)
    except Exception:
        return  # no canonical form (an unsafe integer, a lone surrogate)
    found = parse_canonical(canonical)
    if found is not None:
        assert canonicalize(found) == canonical
    for other in (_dumps(value), _dumps(value, indent=1), _dumps(value, sort_keys=True)):
        found = parse_canonical(other)
        if found is not None:
            assert canonicalize(found) == other


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (b'{"a":[1,"x",true,null,{}]}', True),
        (b'{"b":1,"a":2}', False),  # members out of order
        (b'{"a":1,"a":1}', False),  # a repeated member
        (b'{"a":1.5}', False),  # a float: JCS's own business
        (b'{"a":NaN}', False),
        (b'{"a":9007199254740992}', False),  # beyond 2**53 - 1
        (b'{"a":-0}', False),
        (b'{"a":"\\u0041"}', False),  # an escape JCS does not write
        (b'{"a":"\xf0\x9f\x98\x80"}', False),  # an astral character
        (b'{"\xf0\x9f\x98\x80":1,"\xee\x80\x80":2}', False),
        (b'{"a":"\\ud800"}', False),  # a lone surrogate
        (b'{"a":1} ', False),
        (b" {}", False),
        (b"\xff", False),
        (b"[" * 100_000 + b"]" * 100_000, False),  # the reader's own recursion limit
    ],
)
def test_what_is_canonical_text(text: bytes, canonical: bool) -> None:
    assert (parse_canonical(text) is not None) is canonical
    if canonical:
        assert canonicalize(parse_canonical(text)) == text


def test_reading_canonical_text_in_a_larger_text() -> None:
    text = '[{"a":1},{"b":2}]'
    assert read_canonical(text, 1) == ({"a": 1}, 8)
    assert read_canonical(text, 9) == ({"b": 2}, 16)
    assert read_canonical(" 1") is None
    assert read_canonical('{"a":"\ud800"}') is None  # a lone surrogate in a str, not an escape
    assert read_canonical('{"a":"é"}') == ({"a": "é"}, 9)


# --- nesting depth ----------------------------------------------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    """Data nesting `depth - 1` levels of objects and arrays, so that an event holding it
    nests `depth` (at least 3)."""
    inner: object = {}
    for level in range(depth - 3):
        inner = [inner] if level % 2 else {"d": inner}
    return {"d": inner}


@pytest.mark.parametrize("depth", [MAX_EVENT_DEPTH - 1, MAX_EVENT_DEPTH])
def test_events_up_to_the_depth_limit_are_read(depth: int) -> None:
    factory = ChainFactory()
    event = factory.event(data=_nested(depth))
    assert parse_event(encode_event(event)).event == event
    assert parse_event(_dumps(event, indent=1)).event == event  # not canonical: the strict reader
    assert parse_event_object(event).event == event


def _depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth_of, value), default=0)
    return 0


def test_the_nested_helper_nests_as_claimed() -> None:
    for depth in (3, 10, MAX_EVENT_DEPTH, MAX_EVENT_DEPTH + 1):
        assert 1 + _depth_of(_nested(depth)) == depth  # the event object is level 1


def test_deeper_events_are_malformed_on_every_path() -> None:
    factory = ChainFactory()
    event = factory.event(data={"n": 1})
    event["data"] = _nested(MAX_EVENT_DEPTH + 1)
    parses: list[Callable[[], object]] = [
        lambda: parse_event(encode_event(event)),
        lambda: parse_event(_dumps(event, indent=1)),
        lambda: parse_event(bytearray(encode_event(event))),  # type: ignore[arg-type]
        lambda: parse_event(encode_event(event).decode("utf-8")),  # type: ignore[arg-type]
        lambda: parse_event_object(event),
        lambda: parse_canonical_event(event, encode_event(event)),
    ]
    for parse in parses:
        with pytest.raises(EventRejected, match="nested deeper") as caught:
            parse()
        assert caught.value.reason is Reason.MALFORMED


def test_an_event_too_deep_for_the_reader_gets_the_same_verdict() -> None:
    """Deeper than any recursion limit: the verdict does not depend on the stack."""
    factory = ChainFactory()
    depth = 10_000
    raw = encode_event(factory.event(data={"x": 0})).replace(
        b'"data":{"x":0}', b'"data":' + b'{"d":' * depth + b"{}" + b"}" * depth
    )
    assert len(raw) <= MAX_EVENT_BYTES
    with pytest.raises(EventRejected, match="nested deeper") as caught:
        parse_event(raw)
    assert caught.value.reason is Reason.MALFORMED


def test_brackets_inside_strings_do_not_count() -> None:
    factory = ChainFactory()
    event = factory.event(data={"text": "[{" * 100 + '"\\' + "]}" * 50, "list": [[[]]]})
    assert parse_event(encode_event(event)).event == event


def test_a_leaf_over_the_size_limit_is_too_large() -> None:
    factory = ChainFactory()
    event = factory.event(data={"n": 1})
    with pytest.raises(EventRejected) as caught:
        parse_canonical_event(event, b" " * (MAX_EVENT_BYTES + 1))
    assert caught.value.reason is Reason.TOO_LARGE
