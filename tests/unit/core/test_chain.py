"""The chain verifier: a valid chain verifies, and every kind of tampering fails precisely."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.admission import InMemorySeenEvents, PreverifiedSignatures
from shared.block import (
    Block,
    BlockFormatError,
    BlockHashError,
    BlockSignatureError,
    ChainError,
    SourceOffsetError,
    SourceRange,
    build_genesis_block,
    seal_block,
)
from shared.canonical import canonicalize
from shared.chain import (
    BlockHeaderError,
    BlockLinkError,
    ChainState,
    ChainStateError,
    ChainVerifier,
    EventAdmissionError,
    GenesisBlockError,
    LogRootError,
    TreeSizeError,
    verify_chain,
)
from shared.crypto import b64url_encode
from shared.envelope import Reason
from shared.events import identity
from shared.merkle import CompactRange, leaf_hash, root
from shared.topics import CLINICAL_EVENTS
from tests.unit.core.chainfactory import GENESIS_TIME, ChainFactory, key_for


@pytest.fixture
def factory() -> ChainFactory:
    made = ChainFactory()
    made.seal_many(3, 3)
    return made


def _verify(blocks: list[Block], **kwargs: Any) -> None:
    verify_chain(blocks, **kwargs)


def _fails(blocks: list[Block], error: type[ChainError], **kwargs: Any) -> ChainError:
    with pytest.raises(error) as caught:
        _verify(blocks, **kwargs)
    return caught.value


def _with(factory: ChainFactory, height: int, block: Block) -> list[Block]:
    """The factory's chain up to `height`, with `block` at that height."""
    return [*factory.blocks[:height], block]


def _admission(factory: ChainFactory, block: Block) -> EventAdmissionError:
    error = _fails(_with(factory, len(factory.blocks), block), EventAdmissionError)
    assert isinstance(error, EventAdmissionError)
    return error


# --- what verifies ---------------------------------------------------------------------------


def test_a_valid_chain_verifies_to_its_head(factory: ChainFactory) -> None:
    head = verify_chain(factory.blocks, trusted_genesis=factory.genesis_event)
    last = factory.blocks[-1]
    assert (head.height, head.block_hash, head.tree_size, head.log_root) == (
        3,
        last.block_hash,
        10,
        last.header.log_root,
    )
    assert verify_chain(factory.serialized()) == head


def test_the_verifier_reports_what_each_block_added(factory: ChainFactory) -> None:
    verifier = ChainVerifier()
    genesis = verifier.verify_block(factory.blocks[0])
    assert genesis.leaf_hashes == [leaf_hash(canonicalize(factory.genesis_event))]
    assert genesis.nodes == [(0, 0, genesis.leaf_hashes[0])]
    assert genesis.dedup_keys == [(factory.genesis_event["source"], factory.genesis_event["id"])]
    every_leaf = list(genesis.leaf_hashes)
    for block in factory.blocks[1:]:
        verified = verifier.verify_block(block)
        every_leaf += verified.leaf_hashes
        assert verified.state.head == block.header
        assert verified.dedup_keys == [(e["source"], e["id"]) for e in block.events]
        assert verified.nodes[0] == (0, block.header.tree_size - 3, verified.leaf_hashes[0])
    assert root(every_leaf).hex() == factory.blocks[-1].header.log_root
    assert verifier.state is not None
    assert verifier.state.chain_head.tree_size == len(every_leaf)


def test_the_genesis_configuration_is_returned(factory: ChainFactory) -> None:
    assert ChainVerifier().verify_genesis(factory.blocks[0]) == factory.config


def test_a_newly_registered_publisher_is_admitted_after_its_registration(
    factory: ChainFactory,
) -> None:
    grant = identity.PublisherRegistered(
        did=factory.did("publisher-2"),
        name="p2",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
    )
    factory.seal([factory.identity_event(identity.PUBLISHER_REGISTERED, grant)])
    factory.seal([factory.event("publisher-2")])
    factory.seal([factory.event("publisher-2"), factory.event("publisher")])
    _verify(factory.blocks)


def test_a_store_backed_dedup_set_and_a_restored_state_continue_the_chain(
    factory: ChainFactory,
) -> None:
    seen = InMemorySeenEvents()
    verifier = ChainVerifier(seen=seen)
    for block in factory.blocks[:3]:
        verifier.verify_block(block)
    assert verifier.state is not None
    saved = verifier.state.to_json()
    restored = ChainState.from_json(saved)
    assert restored.head == verifier.state.head
    assert restored.registry == verifier.state.registry
    assert restored.last_offsets == verifier.state.last_offsets
    assert restored.log.root() == verifier.state.log.root()
    again = ChainVerifier(seen=seen, state=restored)
    again.verify_block(factory.blocks[3])
    assert len(seen) == 10


def test_a_saved_state_that_does_not_add_up_is_refused(factory: ChainFactory) -> None:
    saved = factory.state.to_json()
    with pytest.raises(ChainStateError):
        ChainState.from_json(b"{}")
    with pytest.raises(ChainStateError):
        ChainState.from_json(saved.replace(b'"frontier":["', b'"frontier":["0'))
    other = ChainFactory(chain_id="other")
    other.seal_many(3, 3)
    wrong_frontier = replace(
        factory.state, log=CompactRange.from_frontier(10, other.state.log.frontier())
    )
    with pytest.raises(ChainStateError) as caught:
        ChainState.from_json(wrong_frontier.to_json())
    assert caught.value.expected == factory.state.head.log_root


def test_signatures_checked_earlier_are_not_checked_again(factory: ChainFactory) -> None:
    verifier = ChainVerifier()
    for block in factory.blocks[:-1]:
        verifier.verify_block(block)
    last = factory.blocks[-1]
    checked = PreverifiedSignatures(frozenset(leaf_hash(canonicalize(e)) for e in last.events))
    calls: list[object] = []

    def counting(event: Any) -> None:
        calls.append(event)
        checked(event)

    verifier.verify_block(last, check_signature=counting)
    assert len(calls) == 3


# --- genesis ----------------------------------------------------------------------------------


def test_an_empty_chain_has_no_genesis() -> None:
    with pytest.raises(GenesisBlockError):
        verify_chain([])


def test_only_the_trusted_genesis_is_accepted(factory: ChainFactory) -> None:
    other = ChainFactory(chain_id="another-chain")
    error = _fails(other.blocks, GenesisBlockError, trusted_genesis=factory.genesis_event)
    assert error.expected != error.computed
    _verify(other.blocks)  # without a pin, another well-formed chain verifies


def test_a_block_before_genesis_is_refused(factory: ChainFactory) -> None:
    with pytest.raises(GenesisBlockError):
        ChainVerifier().verify_next(factory.blocks[1])
    error = _fails(factory.blocks[1:], BlockLinkError)
    assert (error.expected, error.computed) == (0, 1)


def test_a_second_genesis_is_refused(factory: ChainFactory) -> None:
    error = _fails([factory.blocks[0], factory.blocks[0]], BlockLinkError)
    assert (error.expected, error.computed) == (1, 0)


def test_a_genesis_event_that_does_not_verify_is_refused(factory: ChainFactory) -> None:
    event = {**factory.genesis_event, "time": "2030-01-01T00:00:00Z"}
    forged = factory.resign(factory.blocks[0], events=[event])
    _fails([forged], GenesisBlockError)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"prev_hash": "11" * 32}, BlockLinkError),
        ({"event_count": 2}, BlockHeaderError),
        ({"chain_id": "other"}, BlockHeaderError),
        ({"version": 2}, BlockHeaderError),
        ({"tree_size": 2}, TreeSizeError),
        ({"log_root": "22" * 32}, LogRootError),
        (
            {
                "sources": (
                    {"topic": CLINICAL_EVENTS, "partition": 0, "first_offset": 0, "last_offset": 0},
                )
            },
            SourceOffsetError,
        ),
    ],
)
def test_a_tampered_genesis_header_is_refused(
    factory: ChainFactory, changes: dict[str, Any], error: type[ChainError]
) -> None:
    _fails([factory.resign(factory.blocks[0], **changes)], error)


def test_genesis_holds_exactly_one_event(factory: ChainFactory) -> None:
    two = factory.resign(factory.blocks[0], events=[factory.genesis_event] * 2, event_count=2)
    error = _fails([two], GenesisBlockError)
    assert error.computed == 2


def test_genesis_must_be_sealed_by_the_sealer_it_names(factory: ChainFactory) -> None:
    impostor = key_for("impostor")
    block = factory.blocks[0]
    forged = seal_block(
        block.header.model_copy(update={"sealer": impostor.did}), block.events, impostor
    )
    error = _fails([forged], BlockHeaderError)
    assert error.context["field"] == "sealer"
    with pytest.raises(ValueError, match="sealer"):
        build_genesis_block(factory.genesis_event, impostor, GENESIS_TIME)


# --- links, hashes, signatures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"height": 5}, BlockLinkError, None),
        ({"prev_hash": "33" * 32}, BlockLinkError, None),
        ({"version": 2}, BlockHeaderError, "version"),
        ({"chain_id": "other"}, BlockHeaderError, "chain_id"),
        ({"sealer": key_for("impostor").did}, BlockHeaderError, "sealer"),
        ({"tree_size": 99}, BlockHashError, None),
        ({"log_root": "44" * 32}, BlockHashError, None),
        ({"event_count": 2}, BlockHashError, None),
        ({"sealed_at": "2026-01-01T00:00:02.5Z"}, BlockHashError, None),
        ({"sources": ()}, BlockHashError, None),
    ],
)
def test_changing_any_header_field_without_the_sealer_key_is_caught(
    factory: ChainFactory, changes: dict[str, Any], error: type[ChainError], field: str | None
) -> None:
    block = factory.blocks[2]
    tampered = block.model_copy(update={"header": block.header.model_copy(update=changes)})
    caught = _fails(_with(factory, 2, tampered), error)
    assert caught.context.get("field") == field


def test_a_wrong_prev_hash_is_a_link_error_even_when_signed(factory: ChainFactory) -> None:
    forged = factory.resign(factory.blocks[2], prev_hash=factory.blocks[0].block_hash)
    error = _fails(_with(factory, 2, forged), BlockLinkError)
    assert (error.expected, error.computed) == (
        factory.blocks[1].block_hash,
        factory.blocks[0].block_hash,
    )


def test_a_block_signed_with_another_key_is_refused(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    impostor = key_for("impostor")
    signature = b64url_encode(impostor.sign(bytes.fromhex(block.block_hash)))
    _fails(
        _with(factory, 2, block.model_copy(update={"signature": signature})), BlockSignatureError
    )


def test_a_forged_signature_is_refused(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    forged = block.model_copy(update={"signature": b64url_encode(bytes(64))})
    _fails(_with(factory, 2, forged), BlockSignatureError)


def test_a_signature_for_another_block_is_refused(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    stolen = block.model_copy(update={"signature": factory.blocks[1].signature})
    _fails(_with(factory, 2, stolen), BlockSignatureError)


# --- header fields the sealer signed but got wrong ------------------------------------------------


def test_sealed_at_may_not_go_back(factory: ChainFactory) -> None:
    forged = factory.resign(factory.blocks[2], sealed_at="2026-01-01T00:00:00.5Z")
    error = _fails(_with(factory, 2, forged), BlockHeaderError)
    assert error.context["field"] == "sealed_at"
    same_time = factory.resign(factory.blocks[2], sealed_at=factory.blocks[1].header.sealed_at)
    _verify(_with(factory, 2, same_time))  # equal is fine: only going back is refused


def test_event_count_must_count_the_events(factory: ChainFactory) -> None:
    error = _fails(
        _with(factory, 2, factory.resign(factory.blocks[2], event_count=4)), BlockHeaderError
    )
    assert (error.expected, error.computed, error.context["field"]) == (4, 3, "event_count")


def test_an_empty_block_is_refused(factory: ChainFactory) -> None:
    empty = factory.resign(factory.blocks[2], events=[], event_count=0, sources=())
    error = _fails(_with(factory, 2, empty), BlockHeaderError)
    assert error.context["field"] == "event_count"


def test_tree_size_must_grow_by_the_events(factory: ChainFactory) -> None:
    error = _fails(_with(factory, 2, factory.resign(factory.blocks[2], tree_size=8)), TreeSizeError)
    assert (error.expected, error.computed) == (8, 7)


def test_log_root_is_recomputed(factory: ChainFactory) -> None:
    wrong = factory.blocks[1].header.log_root
    error = _fails(
        _with(factory, 2, factory.resign(factory.blocks[2], log_root=wrong)), LogRootError
    )
    assert (error.expected, error.computed) == (wrong, factory.blocks[2].header.log_root)


# --- the events -----------------------------------------------------------------------------


def test_flipping_a_byte_of_an_event_breaks_its_signature(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    events = [dict(e) for e in block.events]
    events[1] = {**events[1], "data": {"n": events[1]["data"]["n"] + 1}}
    tampered = block.model_copy(update={"events": tuple(events)})
    error = _fails(_with(factory, 2, tampered), EventAdmissionError)
    assert error.context["reason"] == Reason.BAD_SIGNATURE
    assert error.context["leaf_index"] == 5
    assert (error.context["topic"], error.context["partition"], error.context["offset"]) == (
        CLINICAL_EVENTS,
        0,
        4,
    )


def test_reordering_events_changes_the_log_root(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    swapped = (block.events[1], block.events[0], block.events[2])
    error = _fails(_with(factory, 2, block.model_copy(update={"events": swapped})), LogRootError)
    assert error.expected == block.header.log_root


def test_dropping_an_event_is_caught(factory: ChainFactory) -> None:
    block = factory.blocks[2]
    fewer = block.model_copy(update={"events": block.events[:2]})
    _fails(_with(factory, 2, fewer), BlockHeaderError)
    run = block.header.sources[0].model_copy(update={"last_offset": 4})
    resigned = factory.resign(block, events=block.events[:2], event_count=2, sources=(run,))
    _fails(_with(factory, 2, resigned), TreeSizeError)
    consistent = factory.resign(resigned, tree_size=6)
    _fails(_with(factory, 2, consistent), LogRootError)


def test_a_malformed_event_in_a_block_is_refused(factory: ChainFactory) -> None:
    block = factory.assemble([{"not": "an event"}], sealed_at=None)
    assert _admission(factory, block).context["reason"] == Reason.MALFORMED


def test_an_unknown_signer_in_a_block_is_refused(factory: ChainFactory) -> None:
    block = factory.assemble([factory.event(), factory.event("stranger")])
    error = _admission(factory, block)
    assert (error.context["reason"], error.context["leaf_index"]) == (Reason.UNKNOWN_SIGNER, 11)


def test_a_duplicate_across_blocks_is_refused(factory: ChainFactory) -> None:
    replayed = factory.blocks[1].events[0]
    error = _admission(factory, factory.assemble([factory.event(), replayed]))
    assert error.context["reason"] == Reason.DUPLICATE


def test_a_duplicate_inside_a_block_is_refused(factory: ChainFactory) -> None:
    event = factory.event()
    error = _admission(factory, factory.assemble([event, event]))
    assert (error.context["reason"], error.context["leaf_index"]) == (Reason.DUPLICATE, 11)


def test_an_unauthorized_type_in_a_block_is_refused(factory: ChainFactory) -> None:
    # A billing type without a data schema: a typed one would be refused as malformed first.
    event = factory.event("publisher", "org.careledger.billing.note.v1")
    assert (
        _admission(factory, factory.assemble([event])).context["reason"] == Reason.UNAUTHORIZED_TYPE
    )


def test_the_topic_recorded_in_the_runs_is_the_one_admission_checks(factory: ChainFactory) -> None:
    misplaced = factory.submit(factory.event("publisher"), topic="records.events")
    assert (
        _admission(factory, factory.assemble([misplaced])).context["reason"]
        == Reason.UNAUTHORIZED_TYPE
    )


def test_a_revoked_publisher_is_refused_after_the_sealed_revocation(factory: ChainFactory) -> None:
    revoke = factory.identity_event(
        identity.PUBLISHER_REVOKED, identity.PublisherRevoked(did=factory.did("publisher"))
    )
    factory.seal([revoke])
    error = _admission(factory, factory.assemble([factory.event("publisher")]))
    assert error.context["reason"] == Reason.REVOKED_SIGNER
    assert error.context["height"] == 5


def test_events_after_a_revocation_in_the_same_block_are_refused(factory: ChainFactory) -> None:
    revoke = factory.identity_event(
        identity.PUBLISHER_REVOKED, identity.PublisherRevoked(did=factory.did("publisher"))
    )
    block = factory.assemble([factory.event("publisher"), revoke, factory.event("publisher")])
    error = _admission(factory, block)
    assert (error.context["reason"], error.context["leaf_index"]) == (Reason.REVOKED_SIGNER, 12)


def test_a_publisher_is_unknown_before_its_registration_in_the_same_block(
    factory: ChainFactory,
) -> None:
    grant = identity.PublisherRegistered(
        did=factory.did("publisher-2"),
        name="p2",
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
    )
    early = factory.event("publisher-2")
    block = factory.assemble([early, factory.identity_event(identity.PUBLISHER_REGISTERED, grant)])
    assert _admission(factory, block).context["reason"] == Reason.UNKNOWN_SIGNER


def test_credential_expiry_is_judged_at_the_blocks_sealed_at(factory: ChainFactory) -> None:
    registration = identity.PractitionerRegistered(
        did=factory.did("practitioner"),
        issuer=factory.did("authority"),
        credential="ab" * 32,
        role="physician",
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2026-01-01T00:00:10Z",
    )
    factory.seal([factory.identity_event(identity.PRACTITIONER_REGISTERED, registration)])
    note = factory.event("practitioner")
    in_time = factory.assemble([note], sealed_at=GENESIS_TIME + timedelta(seconds=10))
    _verify([*factory.blocks, in_time])
    late = factory.assemble([note], sealed_at=GENESIS_TIME + timedelta(seconds=11))
    assert _admission(factory, late).context["reason"] == Reason.REVOKED_SIGNER


# --- offsets ---------------------------------------------------------------------------------


def _runs(*runs: tuple[str, int, int, int]) -> tuple[SourceRange, ...]:
    return tuple(
        SourceRange(topic=t, partition=p, first_offset=a, last_offset=b) for t, p, a, b in runs
    )


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        (((CLINICAL_EVENTS, 0, 5, 7),), "go back"),  # overlaps block 2's 3..5
        (((CLINICAL_EVENTS, 0, 2, 4),), "go back"),  # goes back
        (((CLINICAL_EVENTS, 0, 6, 7),), "event_count"),  # too few
        (((CLINICAL_EVENTS, 0, 6, 7), (CLINICAL_EVENTS, 0, 7, 7)), "go back"),  # overlap inside
        ((("ledger.rejected", 0, 0, 2),), "input topic"),
        (((CLINICAL_EVENTS, 0, 6, 7), (CLINICAL_EVENTS, 0, 8, 8)), "merged"),
    ],
)
def test_source_runs_must_move_every_partition_forward(
    factory: ChainFactory, runs: tuple[tuple[str, int, int, int], ...], message: str
) -> None:
    forged = factory.resign(factory.blocks[3], sources=_runs(*runs))
    error = _fails([*factory.blocks[:3], forged], SourceOffsetError)
    assert message in str(error)


def test_a_gap_between_runs_is_a_rejected_event_and_verifies(factory: ChainFactory) -> None:
    factory.submit(factory.event())  # read at offset 9, then rejected: never sealed
    factory.seal([factory.event(), factory.event()])
    assert factory.blocks[-1].header.sources == _runs((CLINICAL_EVENTS, 0, 10, 11))
    factory.seal([factory.submit(factory.event(), partition=1), factory.event()])
    _verify(factory.blocks)


def test_a_failed_block_leaves_the_verifier_unchanged(factory: ChainFactory) -> None:
    verifier = ChainVerifier()
    for block in factory.blocks[:3]:
        verifier.verify_block(block)
    state = verifier.state
    good = factory.blocks[3]
    bad = good.model_copy(update={"events": (good.events[0], good.events[2], good.events[1])})
    with pytest.raises(LogRootError):
        verifier.verify_block(bad)
    assert verifier.state is state
    verifier.verify_block(good)  # its events were not recorded as seen by the failed attempt


def test_a_forged_block_from_bytes_is_a_format_error(factory: ChainFactory) -> None:
    blobs = factory.serialized()
    blobs[2] = blobs[2].replace(b'"header":{', b'"header":{"extra":1,')
    with pytest.raises(BlockFormatError):
        verify_chain(blobs)
