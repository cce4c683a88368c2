"""Following the chain: sealed identity events change who billing bills for, at a height."""

from __future__ import annotations

from typing import Any

import pytest

from services.billing.engine import BillingEngine
from services.billing.following import ChainFollowing, Directory
from shared.admission import Role
from shared.events.identity import (
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PractitionerRegistered,
    PractitionerRevoked,
)
from shared.follower import BlockFollower, FollowedBlock, FollowerState
from shared.store import MemoryTransaction
from tests.unit.billing.conftest import CREDENTIAL, World, clear_outbox


class Follow:
    """A follower of the world's chain applying each block to billing's `ChainFollowing`,
    with an engine that bills from the directory it keeps."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.directory = Directory.load(world.store, world.chain.config)
        self.handler: ChainFollowing[MemoryTransaction] = ChainFollowing(
            uow=world.database, chain=world.store, directory=self.directory
        )
        self.engine: BillingEngine[MemoryTransaction] = BillingEngine(
            uow=world.database,
            book=world.store,
            ledger=world.ledger,
            directory=self.directory,
            metrics=world.metrics,
            notify=lambda: None,
        )
        self.follower = BlockFollower(genesis_event=world.chain.genesis_event)
        self.follower.follow(world.chain.blocks[0])

    def seal(self, events: list[dict[str, Any]]) -> tuple[FollowedBlock, FollowerState]:
        followed = self.follower.follow(self.world.chain.seal(events))
        state = self.follower.state
        assert followed is not None
        assert state is not None
        self.handler.apply(followed, state)
        return followed, state

    def bill(self, encounter: str) -> str:
        return self.engine.handle(self.world.consultation(encounter))


@pytest.fixture
def follow(deployed: World) -> Follow:
    return Follow(deployed)


def registered(world: World, **changes: Any) -> dict[str, Any]:
    data = {
        "did": world.did("practitioner"),
        "issuer": world.did("authority"),
        "credential": CREDENTIAL,
        "role": "physician",
        "valid_from": "2026-01-01T00:00:00Z",
        **changes,
    }
    return world.chain.identity_event(
        PRACTITIONER_REGISTERED, PractitionerRegistered.model_validate(data)
    )


def revoked(world: World) -> dict[str, Any]:
    return world.chain.identity_event(
        PRACTITIONER_REVOKED,
        PractitionerRevoked(
            did=world.did("practitioner"), issuer=world.did("authority"), credential=CREDENTIAL
        ),
    )


def test_a_directory_starts_from_genesis_at_height_0(follow: Follow) -> None:
    registry, height = follow.directory.current()
    assert height == 0
    assert Role.PRACTITIONER not in registry.roles_of(follow.world.did("practitioner"))
    assert follow.bill("enc-1") == "rejected"
    assert follow.world.events()[-1]["data"]["reason"] == "unknown_practitioner"


def test_a_sealed_registration_makes_a_practitioner_billable_at_its_height(
    follow: Follow,
) -> None:
    follow.seal([registered(follow.world)])
    registry, height = follow.directory.current()
    assert height == 1
    assert registry.roles_of(follow.world.did("practitioner"))[Role.PRACTITIONER].since == 1
    clear_outbox(follow.world)
    assert follow.bill("enc-1") == "invoiced"
    assert follow.world.events()[0]["data"]["registry_height"] == 1


def test_a_sealed_revocation_stops_billing(follow: Follow) -> None:
    follow.seal([registered(follow.world)])
    follow.seal([revoked(follow.world)])
    assert follow.directory.current()[1] == 2
    assert follow.bill("enc-1") == "rejected"
    data = follow.world.events()[-1]["data"]
    assert (data["reason"], data["registry_height"]) == ("practitioner_not_in_good_standing", 2)


def test_blocks_without_identity_changes_move_the_height_only(follow: Follow) -> None:
    follow.seal([registered(follow.world)])
    saved = follow.world.store.registry()
    follow.seal([follow.world.chain.event("publisher")])
    assert follow.directory.current()[1] == 2
    registry = follow.world.store.registry()
    assert registry is not None
    assert saved is not None
    assert registry == (saved[0], 2)


def test_identity_events_not_signed_by_the_identity_service_change_nothing(
    follow: Follow,
) -> None:
    event = follow.world.chain.event(
        "publisher",
        "org.careledger.clinical.practitioner.registered.v1",
        {"did": follow.world.did("practitioner")},
    )
    follow.seal([event])
    registry, height = follow.directory.current()
    assert height == 1
    assert Role.PRACTITIONER not in registry.roles_of(follow.world.did("practitioner"))


def test_a_block_applied_again_changes_nothing(follow: Follow) -> None:
    block, state = follow.seal([registered(follow.world)])
    before = follow.directory.current()
    follow.handler.apply(block, state)
    after = follow.directory.current()
    assert after[1] == before[1]
    assert after[0].to_json_value() == before[0].to_json_value()


def test_a_restart_loads_the_saved_registry_and_position(follow: Follow) -> None:
    follow.seal([registered(follow.world)])
    _, state = follow.seal([revoked(follow.world)])
    again = Directory.load(follow.world.store, follow.world.chain.config)
    registry, height = again.current()
    assert height == 2
    assert registry.to_json_value() == follow.directory.current()[0].to_json_value()
    restarted: ChainFollowing[MemoryTransaction] = ChainFollowing(
        uow=follow.world.database, chain=follow.world.store, directory=again
    )
    assert restarted.position() == state


def test_a_restart_before_any_registry_change_keeps_the_followed_height(follow: Follow) -> None:
    follow.seal([follow.world.chain.event("publisher")])
    follow.seal([follow.world.chain.event("publisher")])
    assert follow.world.store.registry() is None  # no block changed the registry
    registry, height = Directory.load(follow.world.store, follow.world.chain.config).current()
    assert height == 2
    assert registry.to_json_value() == follow.directory.current()[0].to_json_value()
