"""The practitioner and patient directory from real sealed identity events (admission rules)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.records.core.directory import (
    DirectoryChange,
    _practitioner,
    follow_identity,
    touched_dids,
)
from services.records.core.model import Practitioner
from shared.admission import Role, Standing
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PUBLISHER_REGISTERED,
    AuthorityRegistered,
    PatientRegistered,
    PractitionerRegistered,
    PractitionerRevoked,
    PublisherRegistered,
)
from shared.follower import BlockFollower, FollowedBlock, SealedEvent
from tests.unit.core.chainfactory import ChainFactory

CREDENTIAL = "ab" * 32
NEW_CREDENTIAL = "cd" * 32
PSEUDONYM = "e1" * 32


@dataclass
class Chain:
    """A real chain and a follower of it: each `block` seals events and follows the block."""

    factory: ChainFactory = field(default_factory=ChainFactory)
    follower: BlockFollower = field(init=False)

    def __post_init__(self) -> None:
        self.follower = BlockFollower(genesis_event=self.factory.genesis_event)
        self.follower.follow(self.factory.blocks[0])

    def did(self, name: str) -> str:
        return self.factory.did(name)

    def block(self, *events: dict[str, Any]) -> FollowedBlock:
        followed = self.follower.follow(self.factory.seal(events))
        assert followed is not None
        return followed

    def registered(
        self, did: str = "practitioner", issuer: str = "authority", credential: str = CREDENTIAL
    ) -> dict[str, Any]:
        data = PractitionerRegistered(
            did=self.did(did),
            issuer=self.did(issuer),
            credential=credential,
            role="physician",
            valid_from="2026-01-01T00:00:00Z",
            valid_until="2027-01-01T00:00:00Z",
        )
        return self.factory.identity_event(PRACTITIONER_REGISTERED, data)

    def revoked(
        self, did: str = "practitioner", issuer: str = "authority", credential: str = CREDENTIAL
    ) -> dict[str, Any]:
        data = PractitionerRevoked(
            did=self.did(did), issuer=self.did(issuer), credential=credential
        )
        return self.factory.identity_event(PRACTITIONER_REVOKED, data)

    def authority(self, did: str = "publisher-2") -> dict[str, Any]:
        data = AuthorityRegistered(did=self.did(did), name="Medical Board")
        return self.factory.identity_event(AUTHORITY_REGISTERED, data)

    def patient(self, pseudonym: str = PSEUDONYM) -> dict[str, Any]:
        return self.factory.identity_event(
            PATIENT_REGISTERED, PatientRegistered(pseudonym=pseudonym)
        )

    def follow(
        self,
        block: FollowedBlock,
        practitioners: Mapping[str, Practitioner] | None = None,
        authorities: Collection[str] = (),
    ) -> DirectoryChange:
        return follow_identity(
            block.events,
            genesis=self.factory.config,
            practitioners=practitioners or {},
            authorities=authorities,
        )


@pytest.fixture
def chain() -> Chain:
    return Chain()


def licensed(
    chain: Chain, *, since: int, issuer: str = "authority", **changes: Any
) -> Practitioner:
    standing: dict[str, Any] = {
        "did": chain.did("practitioner"),
        "since": since,
        "issuer": chain.did(issuer),
        "credential": CREDENTIAL,
        "valid_from": datetime(2026, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2027, 1, 1, tzinfo=UTC),
        **changes,
    }
    return Practitioner(**standing)


def test_a_practitioner_registered_by_a_genesis_authority_is_in_the_directory(
    chain: Chain,
) -> None:
    block = chain.block(chain.registered())
    assert block.height == 1
    assert chain.follow(block) == DirectoryChange(practitioners=(licensed(chain, since=1),))


def test_a_practitioner_registered_by_an_issuer_that_is_no_authority_is_ignored(
    chain: Chain,
) -> None:
    assert chain.follow(chain.block(chain.registered(issuer="stranger"))) == DirectoryChange()


def test_revoking_the_credential_in_force_records_the_revocation_height(chain: Chain) -> None:
    chain.block(chain.registered())
    stored = {chain.did("practitioner"): licensed(chain, since=1)}
    change = chain.follow(chain.block(chain.revoked()), stored)
    assert change.practitioners == (licensed(chain, since=1, revoked=2),)


def test_revoking_a_superseded_credential_changes_nothing(chain: Chain) -> None:
    stored = {chain.did("practitioner"): licensed(chain, since=3, credential=NEW_CREDENTIAL)}
    change = chain.follow(chain.block(chain.revoked(credential=CREDENTIAL)), stored)
    assert change == DirectoryChange()


def test_a_revocation_by_another_issuer_changes_nothing(chain: Chain) -> None:
    stored = {chain.did("practitioner"): licensed(chain, since=1)}
    assert chain.follow(chain.block(chain.revoked(issuer="stranger")), stored) == DirectoryChange()


def test_registering_a_new_credential_replaces_the_one_in_force(chain: Chain) -> None:
    chain.block(chain.patient())  # height 1
    stored = {chain.did("practitioner"): licensed(chain, since=1, revoked=1)}
    change = chain.follow(chain.block(chain.registered(credential=NEW_CREDENTIAL)), stored)
    assert change.practitioners == (licensed(chain, since=2, credential=NEW_CREDENTIAL),)


def test_a_revoked_credential_cannot_be_registered_again(chain: Chain) -> None:
    stored = {chain.did("practitioner"): licensed(chain, since=1, revoked=1)}
    assert chain.follow(chain.block(chain.registered()), stored) == DirectoryChange()


def test_an_authority_and_a_practitioner_it_licenses_in_the_same_block(chain: Chain) -> None:
    block = chain.block(chain.authority(), chain.registered(issuer="publisher-2"))
    change = chain.follow(block)
    assert change.authorities == {chain.did("publisher-2"): 1}
    assert change.practitioners == (licensed(chain, since=1, issuer="publisher-2"),)


def test_an_authority_registered_earlier_licenses_practitioners_in_later_blocks(
    chain: Chain,
) -> None:
    assert chain.follow(chain.block(chain.authority())).authorities == {chain.did("publisher-2"): 1}
    later = chain.block(chain.registered(issuer="publisher-2"))
    # Not known unless the stored authorities are passed in:
    assert chain.follow(later) == DirectoryChange()
    change = chain.follow(later, authorities={chain.did("publisher-2")})
    assert change.practitioners == (licensed(chain, since=2, issuer="publisher-2"),)
    assert change.authorities == {}  # already stored: not reported again


def test_a_genesis_authority_among_the_stored_ones_or_registered_again_is_not_new(
    chain: Chain,
) -> None:
    block = chain.block(chain.authority("authority"), chain.registered())
    change = chain.follow(block, authorities={chain.did("authority")})
    assert change.authorities == {}
    assert change.practitioners == (licensed(chain, since=1),)


def test_a_registered_patient_is_reported_with_the_height_of_its_first_registration(
    chain: Chain,
) -> None:
    block = chain.block(chain.patient(), chain.patient("f2" * 32))
    assert chain.follow(block) == DirectoryChange(patients={PSEUDONYM: 1, "f2" * 32: 1})


def test_events_of_other_types_or_other_signers_are_ignored(chain: Chain) -> None:
    publisher = PublisherRegistered(
        did=chain.did("publisher-2"),
        name="Clinic",
        topic="clinical.events",
        types=("org.careledger.clinical.*",),
    )
    block = chain.block(
        chain.factory.event(),  # a clinical event
        chain.factory.identity_event(PUBLISHER_REGISTERED, publisher),
    )
    assert chain.follow(block) == DirectoryChange()
    assert touched_dids(block.events, chain.factory.config) == set()
    forged = [
        _as_signed_by(event, chain.did("stranger"))
        for event in chain.block(chain.registered(), chain.patient(), chain.authority()).events
    ]
    assert chain.follow(FollowedBlock(3, "00" * 32, tuple(forged))) == DirectoryChange()
    assert touched_dids(forged, chain.factory.config) == set()


def test_touched_dids_are_the_practitioners_authorities_and_issuers_of_identity_events(
    chain: Chain,
) -> None:
    block = chain.block(
        chain.registered(),
        chain.revoked(issuer="stranger"),
        chain.authority(),
        chain.patient(),
    )
    assert touched_dids(block.events, chain.factory.config) == {
        chain.did("practitioner"),
        chain.did("authority"),
        chain.did("stranger"),
        chain.did("publisher-2"),
    }
    odd = SealedEvent(
        1, 0, "s", "i", PRACTITIONER_REGISTERED, chain.did("identity"), {"data": "not an object"}
    )
    assert touched_dids([odd], chain.factory.config) == set()


def test_a_practitioner_standing_without_its_credential_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks its credential"):
        _practitioner("did:key:x", Standing(role=Role.PRACTITIONER, since=1))


def _as_signed_by(event: SealedEvent, signer: str) -> SealedEvent:
    return SealedEvent(
        event.height,
        event.leaf_index,
        event.source,
        event.id,
        event.type,
        signer,
        {**event.event, "signer": signer},
    )


def test_a_did_stored_without_a_standing_counts_as_unknown(chain: Chain) -> None:
    block = chain.block(chain.registered())
    nothing: dict[str, Any] = {chain.did("practitioner"): None}
    assert chain.follow(block, nothing) == DirectoryChange(
        practitioners=(licensed(chain, since=1),)
    )
