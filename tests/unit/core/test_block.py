"""Block models, hashing, sealing, JSON, the genesis block and the builder."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.admission import InMemorySeenEvents
from shared.block import (
    GENESIS_PREV_HASH,
    BlockFormatError,
    BlockHashError,
    BlockHeader,
    BlockSignatureError,
    SourceOffsetError,
    SourceRange,
    block_from_json,
    block_hash,
    block_to_json,
    build_genesis_block,
    event_positions,
    format_timestamp,
    seal_block,
    verify_block_signature,
)
from shared.canonical import canonicalize
from shared.crypto import b64url_encode
from shared.envelope import EventRejected, Reason, encode_event
from shared.events import identity
from shared.merkle import leaf_hash, root
from shared.topics import CLINICAL_EVENTS, IDENTITY_EVENTS
from tests.unit.core.chainfactory import GENESIS_TIME, ChainFactory, Submission


@pytest.fixture
def factory() -> ChainFactory:
    return ChainFactory()


def _header(**changes: object) -> BlockHeader:
    factory = ChainFactory()
    return factory.blocks[0].header.model_copy(update=changes)


def test_block_hash_is_sha256_of_the_canonical_header(factory: ChainFactory) -> None:
    header = factory.blocks[0].header
    expected = hashlib.sha256(canonicalize(header.model_dump(mode="json"))).digest()
    assert block_hash(header) == expected
    assert factory.blocks[0].block_hash == expected.hex()


def test_the_header_json_has_exactly_the_brief_members(factory: ChainFactory) -> None:
    block = factory.seal([factory.event()])
    value = json.loads(block_to_json(block))
    assert set(value) == {"header", "block_hash", "signature", "events"}
    assert set(value["header"]) == {
        "version",
        "chain_id",
        "height",
        "prev_hash",
        "tree_size",
        "log_root",
        "event_count",
        "sources",
        "sealed_at",
        "sealer",
    }
    assert value["header"]["sources"] == [
        {"topic": CLINICAL_EVENTS, "partition": 0, "first_offset": 0, "last_offset": 0}
    ]


def test_a_sealed_block_verifies_for_its_sealer_only(factory: ChainFactory) -> None:
    block = factory.blocks[0]
    verify_block_signature(block, factory.did("sealer"))
    with pytest.raises(BlockSignatureError) as caught:
        verify_block_signature(block, factory.did("admin"))
    assert caught.value.context["height"] == 0


def test_a_signature_that_is_not_base64url_is_a_signature_error(factory: ChainFactory) -> None:
    block = factory.blocks[0].model_copy(update={"signature": "not base64!"})
    with pytest.raises(BlockSignatureError):
        verify_block_signature(block, factory.did("sealer"))


def test_a_signature_over_another_hash_fails(factory: ChainFactory) -> None:
    other = factory.seal([factory.event()])
    block = factory.blocks[0].model_copy(update={"signature": other.signature})
    with pytest.raises(BlockSignatureError):
        verify_block_signature(block, factory.did("sealer"))


def test_a_hash_that_is_not_the_headers_is_refused_before_the_signature(
    factory: ChainFactory,
) -> None:
    genesis = factory.blocks[0]
    forged_hash = "11" * 32
    signature = b64url_encode(factory.keys["sealer"].sign(bytes.fromhex(forged_hash)))
    block = genesis.model_copy(update={"block_hash": forged_hash, "signature": signature})
    with pytest.raises(BlockHashError) as caught:
        verify_block_signature(block, factory.did("sealer"))
    assert caught.value.expected == forged_hash
    assert caught.value.computed == genesis.block_hash


def test_json_round_trip(factory: ChainFactory) -> None:
    block = factory.seal([factory.event(), factory.event()])
    assert block_from_json(block_to_json(block)) == block
    assert block_from_json(block_to_json(block).decode()) == block


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.update(extra=1),
        lambda v: v["header"].update(extra=1),
        lambda v: v["header"]["sources"][0].update(extra=1),
        lambda v: v.pop("signature"),
        lambda v: v["header"].update(height="1"),
        lambda v: v["header"].update(height=True),
        lambda v: v["header"].update(height=-1),
        lambda v: v["header"].update(prev_hash="AB" * 32),
        lambda v: v["header"].update(sealed_at="yesterday"),
        lambda v: v["header"].update(sealer="did:key:z6Mkbad"),
        lambda v: v["header"]["sources"][0].update(first_offset=5, last_offset=4),
        lambda v: v.update(events=[1]),
    ],
)
def test_block_from_json_is_strict(factory: ChainFactory, mutate: object) -> None:
    value = json.loads(block_to_json(factory.seal([factory.event()])))
    mutate(value)  # type: ignore[operator]
    with pytest.raises(BlockFormatError):
        block_from_json(json.dumps(value).encode())


def test_block_from_json_refuses_what_is_not_json() -> None:
    with pytest.raises(BlockFormatError):
        block_from_json(b"{")


def test_timestamps_are_written_in_utc_with_microseconds() -> None:
    moment = datetime(2026, 1, 1, 2, 0, tzinfo=UTC) + timedelta(microseconds=5)
    assert format_timestamp(moment) == "2026-01-01T02:00:00.000005Z"
    with pytest.raises(ValueError, match="naive"):
        format_timestamp(datetime(2026, 1, 1))


def test_the_genesis_block(factory: ChainFactory) -> None:
    genesis = factory.blocks[0]
    header = genesis.header
    assert (header.height, header.prev_hash, header.event_count, header.tree_size) == (
        0,
        GENESIS_PREV_HASH,
        1,
        1,
    )
    assert header.sources == ()
    assert header.sealer == factory.did("sealer")
    assert header.chain_id == factory.chain_id
    assert header.log_root == leaf_hash(canonicalize(factory.genesis_event)).hex()
    assert genesis.events == (factory.genesis_event,)
    with pytest.raises(ValueError, match="sealer"):
        build_genesis_block(factory.genesis_event, factory.keys["admin"], GENESIS_TIME)


# --- the builder --------------------------------------------------------------------------


def test_the_builder_computes_the_header_from_the_events(factory: ChainFactory) -> None:
    factory.seal_many(2, 3)
    events = [factory.event() for _ in range(4)]
    block = factory.seal(events)
    header = block.header
    every_leaf = [leaf_hash(canonicalize(e)) for b in factory.blocks for e in b.events]
    assert header.height == 3
    assert header.prev_hash == factory.blocks[2].block_hash
    assert header.tree_size == 1 + 2 * 3 + 4 == len(every_leaf)
    assert header.log_root == root(every_leaf).hex()
    assert header.event_count == 4
    assert list(block.events) == events
    assert header.sources == (
        SourceRange(topic=CLINICAL_EVENTS, partition=0, first_offset=6, last_offset=9),
    )
    assert header.sealed_at == "2026-01-01T00:00:03.000000Z"


def test_runs_follow_leaf_order_and_merge_only_consecutive_offsets(factory: ChainFactory) -> None:
    a = [factory.submit(factory.event(), partition=0) for _ in range(3)]
    b = [factory.submit(factory.event(), partition=1) for _ in range(2)]
    grant = factory.identity_event(
        "org.careledger.identity.patient.registered.v1", {"pseudonym": "00" * 32}
    )
    c = factory.submit(grant)
    skipped = factory.submit(factory.event())  # offset 3 of partition 0: "rejected", not sealed
    block = factory.seal([a[0], a[1], b[0], b[1], c, a[2], factory.submit(factory.event())])
    assert skipped.offset == 3
    assert [
        (r.topic, r.partition, r.first_offset, r.last_offset) for r in block.header.sources
    ] == [
        (CLINICAL_EVENTS, 0, 0, 1),
        (CLINICAL_EVENTS, 1, 0, 1),
        (IDENTITY_EVENTS, 0, 0, 0),
        (CLINICAL_EVENTS, 0, 2, 2),
        (CLINICAL_EVENTS, 0, 4, 4),
    ]
    assert factory.state.last_offsets == {
        (CLINICAL_EVENTS, 0): 4,
        (CLINICAL_EVENTS, 1): 1,
        (IDENTITY_EVENTS, 0): 0,
    }


def test_a_rejected_event_leaves_the_builder_unchanged(factory: ChainFactory) -> None:
    builder = factory.state.open_block(sealed_at=GENESIS_TIME, seen=InMemorySeenEvents())
    bad = factory.submit(factory.event("stranger"))
    with pytest.raises(EventRejected) as caught:
        builder.admit(bad.value, topic=bad.topic, partition=bad.partition, offset=bad.offset)
    assert caught.value.reason is Reason.UNKNOWN_SIGNER
    assert (builder.event_count, builder.byte_size, builder.log.size) == (0, 0, 1)
    assert builder.sources() == ()
    assert builder.dedup_keys == []


def test_a_duplicate_inside_one_block_is_refused(factory: ChainFactory) -> None:
    event = factory.event()
    builder = factory.state.open_block(sealed_at=GENESIS_TIME, seen=factory.seen)
    builder.admit(encode_event(event), topic=CLINICAL_EVENTS, partition=0, offset=0)
    with pytest.raises(EventRejected) as caught:
        builder.admit(encode_event(event), topic=CLINICAL_EVENTS, partition=0, offset=1)
    assert caught.value.reason is Reason.DUPLICATE
    assert builder.byte_size == len(canonicalize(event))
    assert not factory.seen.contains((event["source"], event["id"]))  # nothing stored yet


def test_offsets_that_go_back_are_a_consumer_bug(factory: ChainFactory) -> None:
    builder = factory.state.open_block(sealed_at=GENESIS_TIME, seen=InMemorySeenEvents())
    builder.admit(encode_event(factory.event()), topic=CLINICAL_EVENTS, partition=0, offset=5)
    with pytest.raises(ValueError, match="goes back"):
        builder.admit(encode_event(factory.event()), topic=CLINICAL_EVENTS, partition=0, offset=5)


def test_an_empty_block_is_never_sealed(factory: ChainFactory) -> None:
    builder = factory.state.open_block(sealed_at=GENESIS_TIME, seen=InMemorySeenEvents())
    with pytest.raises(ValueError, match="empty"):
        builder.seal(factory.keys["sealer"])


def test_a_clock_that_steps_back_seals_at_the_previous_time(factory: ChainFactory) -> None:
    factory.seal([factory.event()])
    builder = factory.state.open_block(
        sealed_at=GENESIS_TIME - timedelta(days=1), seen=factory.seen
    )
    assert (
        builder.header(sealer=factory.did("sealer")).sealed_at == factory.blocks[1].header.sealed_at
    )


def test_the_builder_admits_identity_events_into_its_own_registry(factory: ChainFactory) -> None:
    grant = factory.identity_event(
        "org.careledger.identity.publisher.registered.v1",
        {
            "did": factory.did("publisher-2"),
            "name": "p2",
            "topic": CLINICAL_EVENTS,
            "types": ["org.careledger.clinical.*"],
        },
    )
    before = factory.state.registry
    factory.seal([grant, factory.event("publisher-2")])  # admitted right after, same block
    assert factory.state.registry is not before
    assert before.roles_of(factory.did("publisher-2")) == {}


def test_a_verdict_on_a_signer_is_reached_again_once_the_block_changes_the_registry(
    factory: ChainFactory,
) -> None:
    """The builder memoises who may publish what; an identity event inside the block must
    end that memo: first unknown then admitted, first admitted then revoked."""
    builder = factory.state.open_block(sealed_at=GENESIS_TIME, seen=InMemorySeenEvents())
    offsets = iter(range(100))

    def admit(event: dict[str, object], topic: str = CLINICAL_EVENTS) -> None:
        builder.admit(encode_event(event), topic=topic, partition=0, offset=next(offsets))

    with pytest.raises(EventRejected) as unknown:
        admit(factory.event("publisher-2"))
    assert unknown.value.reason is Reason.UNKNOWN_SIGNER
    grant = {
        "did": factory.did("publisher-2"),
        "name": "p2",
        "topic": CLINICAL_EVENTS,
        "types": ["org.careledger.clinical.*"],
    }
    admit(factory.identity_event(identity.PUBLISHER_REGISTERED, grant), IDENTITY_EVENTS)
    admit(factory.event("publisher-2"))
    admit(factory.event("publisher-2"))  # the memoised verdict
    revoke = identity.PublisherRevoked(did=factory.did("publisher-2"))
    admit(factory.identity_event(identity.PUBLISHER_REVOKED, revoke), IDENTITY_EVENTS)
    with pytest.raises(EventRejected) as revoked:
        admit(factory.event("publisher-2"))
    assert revoked.value.reason is Reason.REVOKED_SIGNER
    assert builder.event_count == 4


def test_seal_block_keeps_events_in_order(factory: ChainFactory) -> None:
    header = factory.blocks[0].header
    events = [{"b": 1}, {"a": 2}]
    block = seal_block(header, events, factory.keys["sealer"])
    assert block.events == ({"b": 1}, {"a": 2})


# --- source runs ----------------------------------------------------------------------------


def _run(topic: str, partition: int, first: int, last: int) -> SourceRange:
    return SourceRange(topic=topic, partition=partition, first_offset=first, last_offset=last)


def test_event_positions_expand_the_runs_in_order() -> None:
    header = _header(
        event_count=3, sources=(_run(CLINICAL_EVENTS, 1, 7, 8), _run(IDENTITY_EVENTS, 0, 0, 0))
    )
    assert event_positions(header, {(CLINICAL_EVENTS, 1): 6}) == [
        (CLINICAL_EVENTS, 1, 7),
        (CLINICAL_EVENTS, 1, 8),
        (IDENTITY_EVENTS, 0, 0),
    ]


@pytest.mark.parametrize(
    ("sources", "last", "message"),
    [
        ((_run(CLINICAL_EVENTS, 0, 0, 1),), {}, "event_count"),
        ((_run("ledger.blocks", 0, 0, 2),), {}, "input topic"),
        ((_run(CLINICAL_EVENTS, 0, 5, 7),), {(CLINICAL_EVENTS, 0): 5}, "go back"),
        ((_run(CLINICAL_EVENTS, 0, 5, 6), _run(CLINICAL_EVENTS, 0, 6, 6)), {}, "go back"),
    ],
)
def test_event_positions_refuse_bad_runs(
    sources: tuple[SourceRange, ...], last: dict[tuple[str, int], int], message: str
) -> None:
    with pytest.raises(SourceOffsetError, match=message):
        event_positions(_header(event_count=3, sources=sources), last)


def test_a_source_range_cannot_be_reversed() -> None:
    with pytest.raises(ValidationError):
        _run(CLINICAL_EVENTS, 0, 2, 1)
    assert _run(CLINICAL_EVENTS, 0, 2, 4).size == 3


def test_submissions_are_placed_per_partition(factory: ChainFactory) -> None:
    first = factory.submit(factory.event(), partition=3)
    second = factory.submit(factory.event(), partition=3)
    assert isinstance(first, Submission)
    assert (first.offset, second.offset) == (0, 1)
