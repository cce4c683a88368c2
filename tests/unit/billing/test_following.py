"""Following the chain: `ChainReader` checks each `ledger.blocks` message as every chain
follower does and hands the blocks to the engine, which bills their consultations and stores
the position with them; identity events change who billing bills for."""

from __future__ import annotations

from typing import Any

import pytest

from services.billing.following import ChainReader, Directory, Verdict
from shared.admission import Role
from shared.block import block_to_json
from shared.events.identity import PRACTITIONER_REGISTERED, PractitionerRegistered
from shared.follower import BlockFollower, FollowerState
from tests.unit.billing.conftest import World, clear_outbox
from tests.unit.core.chainfactory import ChainFactory

TOPIC = "ledger.blocks"


class Stream:
    """The world's chain as the block stream delivers it: `ledger.blocks` offset n is block n."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.reader = self.new_reader()

    def new_reader(self) -> ChainReader:
        return ChainReader(
            genesis_event=self.world.chain.genesis_event,
            handler=self.world.engine,
            metrics=self.world.metrics,
            topic=TOPIC,
        )

    def seal(self, *events: dict[str, Any]) -> int:
        """Seal the events (not read yet); the block's offset."""
        self.world.chain.seal(events)
        return self.world.height

    def read(self, offset: int, reader: ChainReader | None = None) -> Verdict:
        value = block_to_json(self.world.chain.blocks[offset])
        return (reader or self.reader).read(value, offset).verdict


@pytest.fixture
def stream(deployed: World) -> Stream:
    return Stream(deployed)


def outcomes(world: World) -> list[str]:
    return [t for t in world.types() if t.startswith("invoice.")]


def test_a_block_s_consultations_are_billed_and_its_position_stored(stream: Stream) -> None:
    world = stream.world
    clear_outbox(world)
    offset = stream.seal(world.consultation("enc-1"), world.consultation("enc-2"))
    assert stream.read(offset) is Verdict.APPLIED
    assert outcomes(world) == ["invoice.issued", "invoice.issued"]
    position = world.engine.position()
    assert position is not None
    assert (position.height, position.offset) == (offset, offset)
    assert world.directory.current()[1] == offset
    assert world.metrics.height == offset


def test_a_redelivered_block_is_ignored_and_bills_nothing(stream: Stream) -> None:
    world = stream.world
    offset = stream.seal(world.consultation("enc-1"))
    assert stream.read(offset) is Verdict.APPLIED
    before = world.events()
    assert stream.read(offset) is Verdict.IGNORED
    # A restarted reader resumes from the stored position: older blocks are copies too.
    restarted = stream.new_reader()
    assert stream.read(offset - 1, restarted) is Verdict.IGNORED
    assert stream.read(offset, restarted) is Verdict.IGNORED
    assert world.events() == before
    assert world.metrics.consultations[("invoiced", "")] == 1


def test_a_restart_resumes_after_the_last_block_billed(stream: Stream) -> None:
    world = stream.world
    first = stream.seal(world.consultation("enc-1"))
    assert stream.read(first) is Verdict.APPLIED
    second = stream.seal(world.consultation("enc-2"))
    restarted = stream.new_reader()
    assert stream.read(second, restarted) is Verdict.APPLIED
    assert world.store.invoice_for_encounter("enc-2") is not None


def test_identity_events_mid_block_change_the_registry_for_what_follows(
    stream: Stream,
) -> None:
    world = stream.world
    newcomer = world.did("newcomer")
    registered = PractitionerRegistered(
        did=newcomer,
        issuer=world.did("authority"),
        credential="ab" * 32,
        role="physician",
        valid_from="2026-01-01T00:00:00Z",
    )
    offset = stream.seal(
        world.consultation("enc-1", practitioner=newcomer),
        world.chain.identity_event(PRACTITIONER_REGISTERED, registered),
        world.consultation("enc-2", practitioner=newcomer),
    )
    clear_outbox(world)
    assert stream.read(offset) is Verdict.APPLIED
    assert outcomes(world) == ["invoice.rejected", "invoice.issued"]
    assert world.events()[0]["data"]["reason"] == "unknown_practitioner"
    registry, height = world.directory.current()
    assert Role.PRACTITIONER in registry.roles_of(newcomer)
    assert height == offset
    # The registry is stored with the position: a restart bills with it.
    loaded = Directory.load(world.store, world.chain.config)
    assert Role.PRACTITIONER in loaded.current()[0].roles_of(newcomer)
    assert loaded.current()[1] == offset


def test_blocks_missing_are_looked_for_once_then_a_fault(stream: Stream) -> None:
    world = stream.world
    stream.seal(world.consultation("enc-1"))
    gap = stream.seal(world.consultation("enc-2"))
    assert stream.read(gap) is Verdict.REWIND
    # Read again from the start: the copies are ignored, the missing block comes.
    assert stream.read(0) is Verdict.IGNORED
    assert stream.read(gap - 1) is Verdict.APPLIED
    assert stream.read(gap) is Verdict.APPLIED
    later = stream.seal(world.consultation("enc-3"))
    stream.seal(world.consultation("enc-4"))
    assert stream.read(later + 1) is Verdict.REWIND
    assert stream.read(later + 1) is Verdict.FAULT  # still missing at the same head
    assert stream.reader.failed is not None
    assert f"offset {later + 1} of {TOPIC}" in stream.reader.failed
    assert stream.read(later) is Verdict.FAULT  # nothing after a fault is applied
    assert world.store.invoice_for_encounter("enc-3") is None
    assert world.metrics.faults == 1


def test_a_block_that_fails_verification_stops_following(stream: Stream) -> None:
    world = stream.world
    offset = stream.seal(world.consultation("enc-1"))
    block = world.chain.blocks[offset]
    forged = block.model_copy(update={"signature": world.chain.blocks[offset - 1].signature})
    reading = stream.reader.read(block_to_json(forged), offset)
    assert reading.verdict is Verdict.FAULT
    assert reading.reason is not None
    assert "fails verification" in reading.reason
    assert stream.read(offset) is Verdict.FAULT
    assert world.store.invoice_for_encounter("enc-1") is None


def test_source_runs_that_place_no_event_are_a_fault_and_store_nothing(stream: Stream) -> None:
    world = stream.world
    offset = stream.seal(world.consultation("enc-1"), world.consultation("enc-2"))
    block = world.chain.blocks[offset]
    run = block.header.sources[0].model_copy(update={"last_offset": 0})
    forged = world.chain.resign(block, sources=(run,))
    before = world.engine.position()
    assert stream.reader.read(block_to_json(forged), offset).verdict is Verdict.FAULT
    assert world.engine.position() == before
    assert world.store.invoice_for_encounter("enc-1") is None


def test_a_stored_state_of_another_chain_is_a_fault_at_the_stored_position(
    deployed: World,
) -> None:
    world = deployed
    other = ChainFactory(chain_id="another-chain")
    follower = BlockFollower(genesis_event=other.genesis_event)
    follower.follow(other.blocks[0])
    assert follower.state is not None
    with world.database.transaction() as tx:
        world.store.save_position(
            tx, position=follower.state.to_json_value(), height=0, registry=None
        )
    reader = Stream(world).reader
    reading = reader.read(block_to_json(world.chain.blocks[1]), 1)
    assert reading.verdict is Verdict.FAULT
    assert reading.reason is not None
    assert "the stored position" in reading.reason


class FailingOnce:
    """The engine's store down for one call of `apply`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.failures = 1

    def position(self) -> FollowerState | None:
        return self.world.engine.position()

    def apply(self, block: Any, state: FollowerState) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database down")
        self.world.engine.apply(block, state)


def test_a_block_not_stored_is_read_again_from_the_stored_position(deployed: World) -> None:
    world = deployed
    handler = FailingOnce(world)
    reader = ChainReader(
        genesis_event=world.chain.genesis_event, handler=handler, metrics=world.metrics, topic=TOPIC
    )
    world.chain.seal([world.consultation("enc-1")])
    value = block_to_json(world.chain.blocks[-1])
    with pytest.raises(ConnectionError):
        reader.read(value, world.height)
    assert world.store.invoice_for_encounter("enc-1") is None
    assert reader.read(value, world.height).verdict is Verdict.APPLIED  # the stream's retry
    assert world.store.invoice_for_encounter("enc-1") is not None
