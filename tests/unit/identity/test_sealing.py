"""Sealed heights from real blocks: the follower's blocks set `since_height`, with its state."""

from __future__ import annotations

from services.identity.sealing import SealedHeights
from shared.follower import BlockFollower, FollowerState
from shared.store import MemoryTransaction
from tests.unit.identity.conftest import World

Handler = SealedHeights[MemoryTransaction]


def follow_all(world: World, handler: Handler, follower: BlockFollower) -> None:
    for block in world.chain.blocks:
        followed = follower.follow(block)
        if followed is not None:
            state = follower.state
            assert isinstance(state, FollowerState)
            handler.apply(followed, state)


def test_the_height_of_each_sealed_change_is_recorded_with_the_position(world: World) -> None:
    handler: SealedHeights[MemoryTransaction] = SealedHeights(
        uow=world.database,
        journal=world.journal,
        signer=world.did("identity"),
        source=world.service.source,
    )
    assert handler.position() is None
    follower = BlockFollower(genesis_event=world.chain.genesis_event)
    admin, publisher = world.chain.config.admin, world.did("publisher-2")
    world.service.register_publisher(
        admin, did=publisher, name="Clinic", topic="clinical.events", types=("org.careledger.*",)
    )
    world.chain.seal([world.chain.event(), *world.events()])  # height 1
    world.service.register_practitioner(world.did("practitioner"), world.credential())
    pending = world.events()[1:]
    follow_all(world, handler, follower)
    world.chain.seal(pending)  # height 2
    follow_all(world, handler, follower)

    described = world.service.describe(admin, publisher)["roles"]
    assert [(r["role"], r["since_height"], r["status"]) for r in described] == [
        ("publisher", 1, "active")
    ]
    practitioner = world.service.describe(admin, world.did("practitioner"))["roles"][0]
    assert practitioner["since_height"] == 2
    saved = handler.position()
    assert saved is not None
    assert saved.height == 2
    assert saved.head_hash == world.chain.blocks[-1].block_hash

    # Applying the same block again (a crash before reading on) changes nothing.
    again = BlockFollower(genesis_event=world.chain.genesis_event, state=None)
    follow_all(world, handler, again)
    assert world.service.describe(admin, publisher)["roles"][0]["since_height"] == 1


def test_events_of_another_signer_or_source_are_not_taken_for_ours(world: World) -> None:
    handler: SealedHeights[MemoryTransaction] = SealedHeights(
        uow=world.database,
        journal=world.journal,
        signer=world.did("identity"),
        source="careledger:identity:another-chain",
    )
    world.service.register_patient(world.did("stranger"))
    world.chain.seal(world.events())
    follow_all(world, handler, BlockFollower(genesis_event=world.chain.genesis_event))
    (role,) = world.service.describe(world.did("stranger"), world.did("stranger"))["roles"]
    assert role["since_height"] is None
