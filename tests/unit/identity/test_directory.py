"""The directory fold and the access rules, cross-checked against shared.admission's registry."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.identity.core.access import (
    may_see_patient,
    require_admin,
    require_issuer,
    require_practitioner_caller,
    trusted_authorities,
)
from services.identity.core.directory import JournalEntry, RoleStatus, patient_roles, roles_of
from services.identity.core.events import IdentityChange, identity_source, sign_change
from services.identity.errors import ForbiddenError
from shared.admission import Role, apply_sealed_event, registry_from_genesis
from shared.envelope import parse_event_object, verify_event
from shared.events import EventData
from shared.events.identity import (
    IDENTITY_SCHEMAS,
    AuthorityRegistered,
    PatientRegistered,
    PractitionerRegistered,
    PractitionerRevoked,
    PublisherRegistered,
    PublisherRevoked,
)
from tests.unit.core.chainfactory import ChainFactory

NOW = datetime(2026, 6, 1, tzinfo=UTC)
DIGEST = "0f" * 32
OTHER_DIGEST = "1e" * 32


@pytest.fixture
def chain() -> ChainFactory:
    return ChainFactory()


def change(chain: ChainFactory, data: EventData, subject: str, n: int) -> IdentityChange:
    return sign_change(
        data,
        subject=subject,
        key=chain.keys["identity"],
        chain_id=chain.chain_id,
        event_id=f"0190a0a0-0000-7000-8000-{n:012d}",
        time=NOW,
    )


def journal_of(changes: Sequence[tuple[IdentityChange, int | None]]) -> list[JournalEntry]:
    return [JournalEntry(c.event_id, c.type, c.subject, c.data, h) for c, h in changes]


def test_signed_changes_are_valid_events_of_the_identity_service(chain: ChainFactory) -> None:
    did = chain.did("publisher-2")
    made = change(chain, PublisherRevoked(did=did), did, 1)
    parsed = parse_event_object(made.event)
    verify_event(parsed)
    assert parsed.signer == chain.did("identity")
    assert made.event["source"] == identity_source(chain.chain_id)
    assert made.event["subject"] == did
    IDENTITY_SCHEMAS[parsed.type].model_validate(made.event["data"])


def test_the_fold_matches_admission_for_publishers_and_practitioners(chain: ChainFactory) -> None:
    publisher, practitioner = chain.did("publisher-2"), chain.did("practitioner")
    authority = chain.did("authority")
    grant = PublisherRegistered(
        did=publisher, name="Clinic", topic="clinical.events", types=("org.careledger.clinical.*",)
    )
    license_data = PractitionerRegistered(
        did=practitioner,
        issuer=authority,
        credential=DIGEST,
        role="physician",
        valid_from="2026-01-01T00:00:00Z",
        valid_until="2027-01-01T00:00:00Z",
    )
    changes = [
        (change(chain, grant, publisher, 1), 2),
        (change(chain, license_data, practitioner, 2), 3),
        (change(chain, PublisherRevoked(did=publisher), publisher, 3), 5),
        (change(chain, grant, publisher, 4), 6),  # a revoked DID stays revoked
        (
            change(
                chain,
                PractitionerRevoked(did=practitioner, issuer=authority, credential=OTHER_DIGEST),
                practitioner,
                5,
            ),
            7,
        ),
    ]
    registry = registry_from_genesis(chain.config)
    for made, height in changes:
        registry = apply_sealed_event(registry, parse_event_object(made.event), height=height)
    journal = journal_of(changes)

    views = {v.role: v for v in roles_of(chain.config, publisher, journal)}
    standing = registry.roles_of(publisher)[Role.PUBLISHER]
    assert views["publisher"].status(NOW) is RoleStatus.REVOKED
    assert (
        (views["publisher"].since_height, views["publisher"].until)
        == (
            standing.since,
            standing.revoked_at,
        )
        == (2, 5)
    )

    views = {v.role: v for v in roles_of(chain.config, practitioner, journal)}
    standing = registry.roles_of(practitioner)[Role.PRACTITIONER]
    assert standing.revoked_at is None  # the revocation named another credential
    assert views["practitioner"].status(NOW) is RoleStatus.ACTIVE
    assert views["practitioner"].since_height == standing.since == 3
    assert views["practitioner"].as_dict(NOW)["practitioner_role"] == "physician"
    assert views["practitioner"].status(NOW + timedelta(days=400)) is RoleStatus.EXPIRED
    assert not standing.in_force(NOW + timedelta(days=400))


def test_genesis_roles_have_height_zero_and_pending_changes_no_height(chain: ChainFactory) -> None:
    admin = roles_of(chain.config, chain.config.admin, [])
    assert [(v.role, v.since_height, v.status(NOW)) for v in admin] == [
        ("admin", 0, RoleStatus.ACTIVE)
    ]
    publisher = chain.did("publisher")
    pending = journal_of([(change(chain, PublisherRevoked(did=publisher), publisher, 1), None)])
    (view,) = roles_of(chain.config, publisher, pending)
    assert view.as_dict(NOW) | {"types": None} == {
        "role": "publisher",
        "status": "revoked",
        "since_height": 0,
        "until": None,
        "name": "publisher-demo",
        "topic": "clinical.events",
        "types": None,
    }
    authority = chain.did("stranger")
    registered = journal_of(
        [(change(chain, AuthorityRegistered(did=authority, name="Board"), authority, 2), None)]
    )
    (view,) = roles_of(chain.config, authority, registered)
    assert view.status(NOW) is RoleStatus.PENDING
    assert roles_of(chain.config, chain.did("practitioner"), registered) == []


def test_a_patient_is_found_by_pseudonym_only(chain: ChainFactory) -> None:
    pseudonym = "ab" * 32
    journal = journal_of([(change(chain, PatientRegistered(pseudonym=pseudonym), pseudonym, 1), 4)])
    (view,) = patient_roles(journal, pseudonym)
    assert view.as_dict(NOW) == {
        "role": "patient",
        "status": "active",
        "since_height": 4,
        "until": None,
        "pseudonym": pseudonym,
    }
    assert patient_roles(journal, "cd" * 32) == []


def test_registered_authorities_are_trusted_once_sealed(chain: ChainFactory) -> None:
    board, late = chain.did("stranger"), chain.did("publisher-2")
    journal = journal_of(
        [
            (change(chain, AuthorityRegistered(did=board, name="Board"), board, 1), 3),
            (change(chain, AuthorityRegistered(did=late, name="Late"), late, 2), None),
        ]
    )
    assert trusted_authorities(chain.config, journal) == {chain.did("authority"), board}


def test_who_may_do_what(chain: ChainFactory) -> None:
    admin, stranger = chain.config.admin, chain.did("stranger")
    subject, issuer = chain.did("practitioner"), chain.did("authority")
    require_admin(chain.config, admin, "register a publisher")
    with pytest.raises(ForbiddenError, match="admin"):
        require_admin(chain.config, stranger, "register a publisher")
    for caller in (subject, issuer, admin):
        require_practitioner_caller(chain.config, caller, subject=subject, issuer=issuer)
    with pytest.raises(ForbiddenError):
        require_practitioner_caller(chain.config, stranger, subject=subject, issuer=issuer)
    require_issuer(issuer, issuer)
    with pytest.raises(ForbiddenError):
        require_issuer(admin, issuer)
    assert may_see_patient(chain.config, subject, subject)
    assert may_see_patient(chain.config, admin, subject)
    assert not may_see_patient(chain.config, issuer, subject)
