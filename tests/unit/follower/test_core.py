"""The pure block follower over real signed chains: what it returns, what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.block import (
    Block,
    BlockHashError,
    BlockSignatureError,
    block_to_json,
    read_block,
    seal_block,
)
from shared.canonical import canonicalize
from shared.chain import (
    BlockHeaderError,
    BlockLinkError,
    ChainStateError,
    GenesisBlockError,
    LogRootError,
    TreeSizeError,
)
from shared.follower import (
    BlockFollower,
    EquivocationError,
    FollowedBlock,
    FollowerState,
    MissingBlocksError,
    SealedEventError,
)
from shared.merkle import leaf_hash
from tests.unit.core.chainfactory import ChainFactory, key_for


@pytest.fixture
def factory() -> ChainFactory:
    chain = ChainFactory()
    chain.seal_many(blocks=4, events_per_block=3)
    return chain


def _follower(factory: ChainFactory, upto: int | None = None) -> BlockFollower:
    follower = BlockFollower(genesis_event=factory.genesis_event)
    for block in factory.blocks[: None if upto is None else upto + 1]:
        follower.follow(block)
    return follower


def _consistent(factory: ChainFactory, block: Block, events: list[dict[str, Any]]) -> Block:
    """`block` holding `events` instead, with a header that commits to them, sealer-signed."""
    previous = _state_before(factory, block.header.height)
    tree = previous.log()
    tree.extend(leaf_hash(canonicalize(event)) for event in events)
    return factory.resign(
        block,
        events=events,
        event_count=len(events),
        tree_size=tree.size,
        log_root=tree.root().hex(),
    )


def _state_before(factory: ChainFactory, height: int) -> FollowerState:
    state = _follower(factory, upto=height - 1).state
    assert state is not None
    return state


def test_every_block_is_returned_with_its_events_heights_and_leaf_indexes(
    factory: ChainFactory,
) -> None:
    follower = BlockFollower(genesis_event=factory.genesis_event)
    followed = [follower.follow(block) for block in factory.blocks]

    assert [f.height for f in followed if f] == [0, 1, 2, 3, 4]
    assert [f.block_hash for f in followed if f] == [b.block_hash for b in factory.blocks]
    sealed = [event for f in followed if f for event in f.events]
    assert [event.leaf_index for event in sealed] == list(range(13))
    assert sealed[0].type == "org.careledger.ledger.genesis.v1"
    assert sealed[0].signer == factory.did("admin")
    for block, result in zip(factory.blocks, followed, strict=True):
        assert result is not None
        assert [dict(e.event) for e in result.events] == list(block.events)
        assert {(e.source, e.id, e.type, e.signer) for e in result.events} == {
            (e["source"], e["id"], e["type"], e["signer"]) for e in block.events
        }
        assert {e.height for e in result.events} == {block.header.height}
    state = follower.state
    assert state is not None
    assert (state.height, state.head_hash) == (4, factory.state.head_hash)
    assert state.log().root().hex() == factory.state.head.log_root


def test_an_identical_copy_of_the_head_or_an_older_block_is_ignored(
    factory: ChainFactory,
) -> None:
    follower = _follower(factory, upto=3)
    before = follower.state

    assert follower.follow(factory.blocks[3]) is None
    assert follower.follow(factory.blocks[1]) is None
    assert follower.follow(factory.blocks[0]) is None
    assert follower.state == before
    assert isinstance(follower.follow(factory.blocks[4]), FollowedBlock)


def test_a_different_sealer_signed_block_at_the_head_height_is_equivocation(
    factory: ChainFactory,
) -> None:
    follower = _follower(factory, upto=2)
    other = factory.resign(factory.blocks[2], sealed_at="2026-01-01T00:00:02.5Z")

    with pytest.raises(EquivocationError) as caught:
        follower.follow(other)

    assert caught.value.expected == factory.blocks[2].block_hash
    assert caught.value.computed == other.block_hash
    assert caught.value.context["height"] == 2


def test_a_different_block_at_the_head_not_signed_by_the_sealer_is_a_forgery(
    factory: ChainFactory,
) -> None:
    follower = _follower(factory, upto=2)
    header = factory.blocks[2].header.model_copy(update={"sealed_at": "2026-01-01T00:00:02.5Z"})
    forged = seal_block(header, factory.blocks[2].events, key_for("stranger"))

    with pytest.raises(BlockSignatureError):
        follower.follow(forged)


def test_a_block_signed_by_another_key_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    block = factory.blocks[3]
    forged = seal_block(block.header, block.events, key_for("stranger"))

    with pytest.raises(BlockSignatureError) as caught:
        follower.follow(forged)
    assert caught.value.context == {"sealer": factory.did("sealer"), "height": 3}


def test_a_block_hash_that_is_not_the_headers_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    block = factory.blocks[3]
    lying = block.model_copy(update={"block_hash": factory.blocks[2].block_hash})

    with pytest.raises(BlockHashError) as caught:
        follower.follow(lying)
    assert caught.value.computed == block.block_hash


def test_a_broken_prev_hash_link_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    forged = factory.resign(factory.blocks[3], prev_hash=factory.blocks[1].block_hash)

    with pytest.raises(BlockLinkError) as caught:
        follower.follow(forged)
    assert not isinstance(caught.value, MissingBlocksError)
    assert caught.value.expected == factory.blocks[2].block_hash


def test_a_gap_in_heights_is_refused_as_missing_blocks(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=1)

    with pytest.raises(MissingBlocksError) as caught:
        follower.follow(factory.blocks[3])
    assert (caught.value.expected, caught.value.computed) == (2, 3)


def test_the_first_block_must_be_the_trusted_genesis(factory: ChainFactory) -> None:
    with pytest.raises(MissingBlocksError):
        BlockFollower(genesis_event=factory.genesis_event).follow(factory.blocks[1])
    other = ChainFactory(chain_id="careledger-other")
    with pytest.raises(GenesisBlockError):
        BlockFollower(genesis_event=factory.genesis_event).follow(other.blocks[0])


def test_a_wrong_log_root_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    forged = factory.resign(factory.blocks[3], log_root=factory.blocks[2].header.log_root)

    with pytest.raises(LogRootError) as caught:
        follower.follow(forged)
    assert caught.value.expected == factory.blocks[2].header.log_root
    assert caught.value.computed == factory.blocks[3].header.log_root


def test_reordered_events_do_not_give_the_log_root(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    block = factory.blocks[3]
    forged = factory.resign(block, events=list(reversed(block.events)))

    with pytest.raises(LogRootError):
        follower.follow(forged)


def test_a_wrong_tree_size_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    block = factory.blocks[3]
    forged = factory.resign(block, tree_size=block.header.tree_size + 1)

    with pytest.raises(TreeSizeError) as caught:
        follower.follow(forged)
    assert (caught.value.expected, caught.value.computed) == (11, 10)


def test_an_event_count_other_than_the_events_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    block = factory.blocks[3]
    forged = factory.resign(block, events=block.events[:2])

    with pytest.raises(BlockHeaderError) as caught:
        follower.follow(forged)
    assert caught.value.context["field"] == "event_count"


def test_another_chain_id_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    forged = factory.resign(factory.blocks[3], chain_id="careledger-other")

    with pytest.raises(BlockHeaderError) as caught:
        follower.follow(forged)
    assert caught.value.context["field"] == "chain_id"
    assert caught.value.expected == "careledger-test"


def test_a_sealed_event_without_envelope_attributes_is_refused(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    event = dict(factory.blocks[3].events[0])
    del event["signer"]
    forged = _consistent(factory, factory.blocks[3], [event])

    with pytest.raises(SealedEventError) as caught:
        follower.follow(forged)
    assert caught.value.computed == ["signer"]
    assert caught.value.context == {"height": 3, "leaf_index": 7}


def test_event_signatures_are_trusted_to_the_sealer_not_checked(factory: ChainFactory) -> None:
    # The documented trust decision: the validators, not the follower, re-check admission.
    follower = _follower(factory, upto=2)
    event = dict(factory.blocks[3].events[0])
    event["signature"] = factory.blocks[3].events[1]["signature"]
    admitted_anyway = _consistent(factory, factory.blocks[3], [event])

    followed = follower.follow(admitted_anyway)

    assert followed is not None
    assert [e.id for e in followed.events] == [event["id"]]


def test_a_refused_block_leaves_the_state_as_it_was(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=2)
    before = follower.state
    with pytest.raises(LogRootError):
        follower.follow(factory.resign(factory.blocks[3], log_root="00" * 32))

    assert follower.state == before
    assert follower.follow(factory.blocks[3]) is not None


def test_a_restored_state_continues_exactly_as_the_original(factory: ChainFactory) -> None:
    straight = _follower(factory, upto=1)
    state = _follower(factory, upto=1).state
    assert state is not None
    saved = json.loads(json.dumps(state.to_json_value()))
    restored = BlockFollower(
        genesis_event=factory.genesis_event, state=FollowerState.from_json_value(saved)
    )

    assert restored.state == straight.state
    for block in factory.blocks[1:]:
        assert restored.follow(block) == straight.follow(block)
    assert restored.state == straight.state
    with pytest.raises(EquivocationError):
        restored.follow(factory.resign(factory.blocks[4], sealed_at="2026-01-01T00:00:09Z"))


def test_the_offset_is_carried_through_serialisation(factory: ChainFactory) -> None:
    state = _follower(factory, upto=2).state
    assert state is not None
    with_offset = FollowerState(state.head, state.head_hash, state.frontier, offset=41)

    assert FollowerState.from_json_value(with_offset.to_json_value()) == with_offset


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(frontier=v["frontier"][::-1]), "log_root"),
        (lambda v: v.update(frontier=v["frontier"][1:]), "frontier"),
        (lambda v: v.update(version=2), "version"),
        (lambda v: v.update(offset=-1), "offset"),
        (lambda v: v["head"].update(height="3"), "height"),
        (lambda v: v.pop("head"), "head"),
    ],
)
def test_a_tampered_saved_state_does_not_restore(
    factory: ChainFactory, change: Any, message: str
) -> None:
    state = _follower(factory, upto=2).state
    assert state is not None
    saved = json.loads(json.dumps(state.to_json_value()))
    change(saved)

    with pytest.raises(ChainStateError, match=message):
        FollowerState.from_json_value(saved)


def test_a_state_of_another_chain_is_refused(factory: ChainFactory) -> None:
    other = ChainFactory(chain_id="careledger-other")
    state = _follower(other).state

    with pytest.raises(ChainStateError) as caught:
        BlockFollower(genesis_event=factory.genesis_event, state=state)
    assert caught.value.computed == "careledger-other"


def test_the_leaves_read_from_a_block_are_hashed_as_they_are(factory: ChainFactory) -> None:
    with_leaves = BlockFollower(genesis_event=factory.genesis_event)
    without = BlockFollower(genesis_event=factory.genesis_event)
    for written in factory.serialized():
        block, leaves = read_block(written)
        assert leaves is not None
        assert with_leaves.follow(block, leaves=leaves) == without.follow(block)
    assert with_leaves.state == without.state


def test_leaves_that_do_not_match_the_events_are_a_caller_s_error(factory: ChainFactory) -> None:
    follower = _follower(factory, upto=1)
    block, leaves = read_block(block_to_json(factory.blocks[2]))
    assert leaves is not None
    with pytest.raises(ValueError, match="one leaf per event"):
        follower.follow(block, leaves=leaves[1:])
