"""Properties of the chain verifier: random valid chains verify, and any single change fails."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.block import Block, ChainError, SourceOffsetError
from shared.chain import ChainVerifier, verify_chain
from shared.events import identity
from shared.topics import CLINICAL_EVENTS
from tests.unit.core.chainfactory import ChainFactory

ACTIONS = (
    "publisher",
    "publisher-other-partition",
    "records",
    "billing",
    "rejected",
    "register",
    "revoke",
    "publisher-2",
)


def _grow(factory: ChainFactory, blocks: list[list[str]]) -> None:
    """Interpret random actions as a valid chain: impossible ones become plain events."""
    registered = revoked = False
    for actions in blocks:
        items: list[Any] = []
        for action in actions:
            if action == "rejected":
                factory.submit(factory.event())  # an offset read, refused, and never sealed
            elif action == "register" and not registered:
                registered = True
                grant = identity.PublisherRegistered(
                    did=factory.did("publisher-2"),
                    name="p2",
                    topic=CLINICAL_EVENTS,
                    types=("org.careledger.clinical.*",),
                )
                items.append(factory.identity_event(identity.PUBLISHER_REGISTERED, grant))
            elif action == "revoke" and registered and not revoked:
                revoked = True
                gone = identity.PublisherRevoked(did=factory.did("publisher-2"))
                items.append(factory.identity_event(identity.PUBLISHER_REVOKED, gone))
            elif action == "publisher-2" and registered and not revoked:
                items.append(factory.event("publisher-2"))
            elif action in {"records", "billing"}:
                items.append(factory.event(action, f"org.careledger.{action}.entry.made.v1"))
            elif action == "publisher-other-partition":
                items.append(factory.submit(factory.event(), partition=1))
            else:
                items.append(factory.event())
        factory.seal(items or [factory.event()])  # a block is never empty


@given(st.lists(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=6), max_size=5))
def test_random_valid_chains_verify(blocks: list[list[str]]) -> None:
    factory = ChainFactory()
    _grow(factory, blocks)
    head = verify_chain(factory.serialized(), trusted_genesis=factory.genesis_event)
    assert head == factory.state.chain_head
    assert head.height == len(blocks)


# One fixed chain for the mutation properties: building it per example would dominate the run.
_FACTORY = ChainFactory()
_grow(
    _FACTORY,
    [
        ["publisher", "publisher-other-partition", "records"],
        ["register", "publisher-2", "rejected", "publisher"],
        ["billing", "publisher", "revoke", "publisher-other-partition"],
        ["publisher", "publisher", "records"],
    ],
)
_CHAIN = _FACTORY.serialized()


def test_the_fixed_chain_is_valid() -> None:
    verify_chain(_CHAIN)


@given(st.data())
def test_any_flipped_bit_in_any_block_is_detected(data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(_CHAIN) - 1), label="block")
    blob = bytearray(_CHAIN[index])
    position = data.draw(st.integers(0, len(blob) - 1), label="byte")
    blob[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    chain = [*_CHAIN[:index], bytes(blob), *_CHAIN[index + 1 :]]
    with pytest.raises(ChainError):
        verify_chain(chain)


def _swap(block: Block, i: int, j: int) -> Block:
    events = list(block.events)
    events[i], events[j] = events[j], events[i]
    return block.model_copy(update={"events": tuple(events)})


@given(st.data())
def test_any_change_to_the_events_of_a_block_is_detected(data: st.DataObject) -> None:
    height = data.draw(st.integers(1, len(_FACTORY.blocks) - 1), label="height")
    block = _FACTORY.blocks[height]
    count = len(block.events)
    i = data.draw(st.integers(0, count - 1), label="event")
    kind = data.draw(st.sampled_from(["swap", "drop", "duplicate", "foreign", "data"]))
    if kind == "swap":
        j = data.draw(st.integers(0, count - 1).filter(lambda j: j != i), label="other")
        mutated = _swap(block, i, j)
    elif kind == "drop":
        mutated = block.model_copy(update={"events": block.events[:i] + block.events[i + 1 :]})
    elif kind == "duplicate":
        mutated = block.model_copy(update={"events": (*block.events, block.events[i])})
    elif kind == "foreign":
        other = _FACTORY.blocks[1 + height % (len(_FACTORY.blocks) - 1)].events[0]
        events = (*block.events[:i], other, *block.events[i + 1 :])
        mutated = block.model_copy(update={"events": events})
    else:
        event = block.events[i]
        mutated_event = {**event, "data": {**event["data"], "x": data.draw(st.integers())}}
        events = (*block.events[:i], mutated_event, *block.events[i + 1 :])
        mutated = block.model_copy(update={"events": events})
    _assert_detected(height, mutated)


@given(st.data())
def test_any_invalid_header_the_sealer_signs_is_detected(data: st.DataObject) -> None:
    height = data.draw(st.integers(1, len(_FACTORY.blocks) - 1), label="height")
    block = _FACTORY.blocks[height]
    header = block.header
    field = data.draw(
        st.sampled_from(
            [
                "height",
                "prev_hash",
                "tree_size",
                "log_root",
                "event_count",
                "sealed_at",
                "chain_id",
                "version",
            ]
        )
    )
    delta = data.draw(st.integers(1, 5), label="delta")
    options: dict[str, dict[str, Any]] = {
        "height": {"height": header.height + delta},
        "prev_hash": {"prev_hash": data.draw(st.binary(min_size=32, max_size=32)).hex()},
        "tree_size": {"tree_size": header.tree_size + delta},
        "log_root": {"log_root": data.draw(st.binary(min_size=32, max_size=32)).hex()},
        "event_count": {"event_count": header.event_count + delta},
        "sealed_at": {"sealed_at": "2025-12-31T23:59:59Z"},
        "chain_id": {"chain_id": header.chain_id + "x"},
        "version": {"version": 1 + delta},
    }
    changes = options[field]
    if changes.get(field) == getattr(header, field):  # a random hash equal to the real one
        return
    _assert_detected(height, _FACTORY.resign(block, **changes))


@pytest.mark.parametrize("height", range(2, 5))
def test_runs_that_overlap_earlier_blocks_are_detected(height: int) -> None:
    verifier = ChainVerifier()
    for earlier in _FACTORY.blocks[:height]:
        verifier.verify_block(earlier)
    assert verifier.state is not None
    block = _FACTORY.blocks[height]
    runs = list(block.header.sources)
    i, run = next(
        (i, run)
        for i, run in enumerate(runs)
        if (run.topic, run.partition) in verifier.state.last_offsets
    )
    last = verifier.state.last_offsets[(run.topic, run.partition)]
    runs[i] = run.model_copy(update={"first_offset": last, "last_offset": last + run.size - 1})
    with pytest.raises(SourceOffsetError):
        verifier.verify_block(_FACTORY.resign(block, sources=tuple(runs)))


def _assert_detected(height: int, mutated: Block) -> None:
    verifier = ChainVerifier()
    for block in _FACTORY.blocks[:height]:
        verifier.verify_block(block)
    with pytest.raises(ChainError):
        verifier.verify_block(mutated)
