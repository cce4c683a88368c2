"""Reading a followed block: its consultations from `clinical.events`, each with the registry
at its own place in the chain (the pure `core.consultations`)."""

from __future__ import annotations

from typing import Any

import pytest

from services.billing.core.consultations import consultations_of
from shared.admission import Role, SignerRegistry, registry_from_genesis
from shared.block import Block, SourceOffsetError, SourceRange
from shared.events import identity
from shared.events.billing import CONSULTATION_COMPLETED
from shared.follower import BlockFollower, FollowedBlock
from shared.topics import RECORDS_EVENTS
from tests.unit.billing.conftest import CREDENTIAL, practitioner_registered
from tests.unit.core.chainfactory import ChainFactory

NOTE = "org.careledger.clinical.note.signed.v1"


class Chain:
    """A chain and a follower of it; `read` seals a block and reads it."""

    def __init__(self) -> None:
        self.factory = ChainFactory()
        self.follower = BlockFollower(genesis_event=self.factory.genesis_event)
        self.genesis = self.follower.follow(self.factory.blocks[0])
        self.registry = registry_from_genesis(self.factory.config)

    def consultation(self, n: int) -> dict[str, Any]:
        return self.factory.event("publisher", CONSULTATION_COMPLETED, {"encounter_id": f"e{n}"})

    def note(self) -> dict[str, Any]:
        return self.factory.event("publisher", NOTE, {"text": "no PHI"})

    def revocation(self) -> dict[str, Any]:
        revoked = identity.PractitionerRevoked(
            did=self.factory.did("practitioner"),
            issuer=self.factory.did("authority"),
            credential=CREDENTIAL,
        )
        return self.factory.identity_event(identity.PRACTITIONER_REVOKED, revoked)

    def follow(self, block: Block) -> FollowedBlock:
        followed = self.follower.follow(block)
        assert followed is not None
        return followed

    def standing(self, registry: SignerRegistry) -> str:
        found = registry.roles_of(self.factory.did("practitioner")).get(Role.PRACTITIONER)
        if found is None:
            return "none"
        return "revoked" if found.revoked_at is not None else "in force"


@pytest.fixture
def chain() -> Chain:
    return Chain()


def test_the_genesis_block_has_no_consultations(chain: Chain) -> None:
    assert chain.genesis is not None
    read = consultations_of(chain.genesis, chain.factory.blocks[0].header, chain.registry)
    assert read.consultations == ()
    assert read.registry is chain.registry
    assert read.elsewhere == 0


def test_only_consultations_are_read_in_leaf_order_with_their_place(chain: Chain) -> None:
    events = [
        chain.note(),
        chain.consultation(1),
        chain.note(),
        chain.note(),
        chain.consultation(2),
    ]
    block = chain.factory.seal(events)
    read = consultations_of(chain.follow(block), block.header, chain.registry)
    assert [(c.id, c.leaf_index, c.height) for c in read.consultations] == [
        (events[1]["id"], 2, 1),
        (events[4]["id"], 5, 1),
    ]
    assert [c.data for c in read.consultations] == [{"encounter_id": "e1"}, {"encounter_id": "e2"}]
    assert read.consultations[0].source == events[1]["source"]
    assert read.registry is chain.registry  # no identity event: the very same registry


def test_identity_events_change_the_registry_from_their_place_in_the_block(chain: Chain) -> None:
    events = [
        chain.consultation(1),
        practitioner_registered(chain.factory),
        chain.consultation(2),
        chain.revocation(),
        chain.consultation(3),
    ]
    block = chain.factory.seal(events)
    read = consultations_of(chain.follow(block), block.header, chain.registry)
    assert [chain.standing(c.registry) for c in read.consultations] == [
        "none",
        "in force",
        "revoked",
    ]
    assert chain.standing(read.registry) == "revoked"


def test_a_consultation_read_from_another_topic_is_not_billing_s(chain: Chain) -> None:
    # A sealer that let it through: `assemble` skips admission (validators would refuse it).
    other = chain.factory.submit(chain.consultation(1), topic=RECORDS_EVENTS)
    block = chain.factory.assemble([other, chain.consultation(2)])
    read = consultations_of(chain.follow(block), block.header, chain.registry)
    assert [c.data for c in read.consultations] == [{"encounter_id": "e2"}]
    assert read.elsewhere == 1


def test_source_runs_that_do_not_place_every_event_are_refused(chain: Chain) -> None:
    block = chain.factory.seal([chain.consultation(1), chain.consultation(2)])
    short = SourceRange(topic="clinical.events", partition=0, first_offset=0, last_offset=0)
    forged = chain.factory.resign(block, sources=(short,))
    with pytest.raises(SourceOffsetError):
        consultations_of(chain.follow(forged), forged.header, chain.registry)
