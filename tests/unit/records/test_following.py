"""Following the chain: the service's own sealed events, the directory, and the position."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.records.core.events import records_source
from services.records.core.model import Practitioner, SealedMark
from services.records.following import ChainFollowing
from shared.events.identity import (
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PatientRegistered,
    PractitionerRegistered,
    PractitionerRevoked,
)
from shared.events.records import (
    CONSENT_GRANTED,
    RECORD_ACCESSED,
    RECORD_CREATED,
    RECORD_UPDATED,
    Purpose,
)
from shared.follower import BlockFollower, FollowedBlock, FollowerState, SealedEvent
from shared.store import MemoryTransaction
from tests.unit.records.conftest import World, observation

CREDENTIAL = "ab" * 32


class Follow:
    """A follower of the world's chain, applying each block to a `ChainFollowing`."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.handler: ChainFollowing[MemoryTransaction] = ChainFollowing(
            uow=world.database,
            chain=world.store,
            genesis=world.chain.config,
            signer=world.did("records"),
            source=records_source(world.chain.chain_id),
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


@pytest.fixture
def follow(world: World) -> Follow:
    return Follow(world)


def identity(world: World, event_type: str, data: Any) -> dict[str, Any]:
    return world.chain.identity_event(event_type, data)


def practitioner_registered(world: World) -> dict[str, Any]:
    return identity(
        world,
        PRACTITIONER_REGISTERED,
        PractitionerRegistered(
            did=world.did("practitioner"),
            issuer=world.did("authority"),
            credential=CREDENTIAL,
            role="physician",
            valid_from="2026-01-01T00:00:00Z",
        ),
    )


def write_and_read(world: World) -> str:
    """A record written, updated and read; a consent granted: four kinds of events."""
    world.register_practitioner("practitioner")
    world.register_patient("patient")
    patient, author = world.did("patient"), world.did("practitioner")
    record: str = world.service.create_record(author, patient=patient, resource=observation())[
        "record"
    ]
    world.service.update_record(author, record, resource=observation("v2"))
    world.reader.read(patient, record)
    world.service.grant_consent(
        patient,
        grantee=world.did("stranger"),
        resource_types=[],
        purpose=Purpose.TREATMENT,
        expires=world.clock.now + timedelta(days=1),
    )
    return record


def test_nothing_is_saved_before_the_first_block(follow: Follow) -> None:
    assert follow.handler.position() is None


def test_own_events_are_marked_with_their_height_and_versions_with_their_commitment(
    world: World, follow: Follow
) -> None:
    record = write_and_read(world)
    events = world.events()
    follow.seal([world.chain.event()])  # height 1: nothing of ours
    _, state = follow.seal(events)  # height 2
    marks = world.store.sealed([e["id"] for e in events])
    by_type = {e["type"]: marks[e["id"]] for e in events}
    assert set(by_type) == {RECORD_CREATED, RECORD_UPDATED, RECORD_ACCESSED, CONSENT_GRANTED}
    for event in events:
        commitment = event["data"].get("commitment")
        if event["type"] in {RECORD_CREATED, RECORD_UPDATED}:
            assert isinstance(commitment, str)
        assert marks[event["id"]] == SealedMark(event["id"], 2, commitment)
    assert by_type[RECORD_ACCESSED].commitment is None
    assert by_type[CONSENT_GRANTED].commitment is None

    saved = follow.handler.position()
    assert saved is not None
    assert (saved.height, saved.head_hash) == (2, state.head_hash)
    assert saved == state
    # The sealed commitment is what a read is now checked against:
    answer = world.reader.read(world.did("patient"), record)
    assert answer["integrity"]["checked_against"] == "chain"
    assert answer["integrity"]["sealed_height"] == 2


def test_events_of_another_signer_or_another_source_are_not_taken_for_ours(
    world: World, follow: Follow
) -> None:
    write_and_read(world)
    (created, *_) = world.events()
    _, state = follow.seal([world.chain.event()])
    elsewhere = SealedEvent(
        1,
        1,
        "careledger:records:other",
        created["id"],
        RECORD_CREATED,
        world.did("records"),
        created,
    )
    forged = SealedEvent(
        1, 2, created["source"], "another-id", RECORD_CREATED, world.did("stranger"), created
    )
    follow.handler.apply(FollowedBlock(1, state.head_hash, (elsewhere, forged)), state)
    assert world.store.sealed([created["id"], "another-id"]) == {}


def test_the_directory_follows_identity_events_with_their_heights(
    world: World, follow: Follow
) -> None:
    pseudonym = world.pseudonym("patient")
    follow.seal([world.chain.event()])
    follow.seal(
        [
            practitioner_registered(world),
            identity(world, PATIENT_REGISTERED, PatientRegistered(pseudonym=pseudonym)),
        ]
    )
    practitioner = world.store.practitioner(world.did("practitioner"))
    assert practitioner == Practitioner(
        did=world.did("practitioner"),
        since=2,
        issuer=world.did("authority"),
        credential=CREDENTIAL,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=None,
    )
    assert world.store.patient_registered(pseudonym)

    # A later revocation is judged against the stored standing:
    revoked = PractitionerRevoked(
        did=world.did("practitioner"), issuer=world.did("authority"), credential=CREDENTIAL
    )
    follow.seal([identity(world, PRACTITIONER_REVOKED, revoked)])
    assert world.store.practitioner(world.did("practitioner")) == replace(practitioner, revoked=3)


def test_applying_the_same_block_twice_leaves_the_same_state(world: World, follow: Follow) -> None:
    write_and_read(world)
    events = world.events()
    block, state = follow.seal([practitioner_registered(world), *events])
    ids = [e["id"] for e in events]
    marks = dict(world.store.sealed(ids))
    practitioner = world.store.practitioner(world.did("practitioner"))

    follow.handler.apply(block, state)

    assert world.store.sealed(ids) == marks
    assert world.store.practitioner(world.did("practitioner")) == practitioner
    assert follow.handler.position() == state
