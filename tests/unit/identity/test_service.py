"""The identity use cases on memory adapters: rules, events, idempotence, the directory."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.identity.errors import ForbiddenError, NotFoundError, RevokedDidError
from shared.admission import Role, apply_sealed_event, registry_from_genesis
from shared.credentials import CredentialError, add_proof, credential_digest
from shared.envelope import parse_event_object, verify_event
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    IDENTITY_SCHEMAS,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PUBLISHER_REGISTERED,
    PUBLISHER_REVOKED,
)
from shared.pseudonym import patient_pseudonym
from tests.unit.identity.conftest import PSEUDONYM_KEY, World

CLINICAL = ("org.careledger.clinical.*",)


def roles(world: World, did: str, caller: str | None = None) -> dict[str, dict[str, Any]]:
    answer = world.service.describe(caller or world.chain.config.admin, did)
    assert answer["did"] == did
    return {role["role"]: role for role in answer["roles"]}


def test_every_change_is_one_signed_event_admission_accepts(world: World) -> None:
    admin = world.chain.config.admin
    board = world.did("stranger")
    world.service.register_authority(admin, did=board, name="Medical Board of Somewhere")
    world.service.register_publisher(
        admin, did=world.did("publisher-2"), name="Clinic", topic="clinical.events", types=CLINICAL
    )
    world.service.register_practitioner(world.did("practitioner"), world.credential())
    world.service.revoke_credential(world.did("authority"), credential_digest(world.credential()))
    world.service.revoke_publisher(admin, did=world.did("publisher"))
    world.service.register_patient(world.did("validator-1"))
    events = world.events()
    assert [event["type"] for event in events] == [
        AUTHORITY_REGISTERED,
        PUBLISHER_REGISTERED,
        PRACTITIONER_REGISTERED,
        PRACTITIONER_REVOKED,
        PUBLISHER_REVOKED,
        PATIENT_REGISTERED,
    ]
    assert len(world.notified) == len(events)
    for event in events:
        parsed = parse_event_object(event)
        verify_event(parsed)
        assert parsed.signer == world.did("identity")
        assert event["source"] == world.service.source
        IDENTITY_SCHEMAS[parsed.type].model_validate(event["data"])
    block = world.chain.seal(events)  # the real admission rules, as the sealer runs them
    assert block.header.event_count == len(events)


def test_sealed_changes_take_effect_in_the_registry_admission_reads(world: World) -> None:
    admin = world.chain.config.admin
    publisher = world.did("publisher-2")
    world.service.register_publisher(
        admin, did=publisher, name="Clinic", topic="clinical.events", types=CLINICAL
    )
    world.service.register_practitioner(world.did("authority"), world.credential())
    world.service.revoke_publisher(admin, did=world.did("publisher"))
    registry = registry_from_genesis(world.chain.config)
    for event in world.events():
        registry = apply_sealed_event(registry, parse_event_object(event), height=1)
    assert registry.roles_of(publisher)[Role.PUBLISHER].topic == "clinical.events"
    assert Role.PRACTITIONER in registry.roles_of(world.did("practitioner"))
    assert registry.roles_of(world.did("publisher"))[Role.PUBLISHER].revoked_at == 1


def test_a_practitioner_registers_once_and_the_repeat_answers_the_same(world: World) -> None:
    credential = world.credential()
    first = world.service.register_practitioner(world.did("practitioner"), credential)
    again = world.service.register_practitioner(world.chain.config.admin, credential)
    assert first.created
    assert not again.created
    assert again.body == first.body
    assert first.body["data"]["credential"] == credential_digest(credential)
    assert len(world.events()) == 1
    view = roles(world, world.did("practitioner"))["practitioner"]
    assert view["status"] == "pending"
    assert view["since_height"] is None
    world.seal_everything(7)
    view = roles(world, world.did("practitioner"))["practitioner"]
    assert (view["status"], view["since_height"]) == ("active", 7)
    assert view["practitioner_role"] == "physician"
    world.clock.advance(days=365)
    assert roles(world, world.did("practitioner"))["practitioner"]["status"] == "expired"


def test_only_the_subject_the_issuer_or_the_admin_may_present_a_credential(world: World) -> None:
    with pytest.raises(ForbiddenError):
        world.service.register_practitioner(world.did("stranger"), world.credential())
    assert world.events() == []


def resign(world: World, credential: dict[str, Any], issuer: str = "authority") -> dict[str, Any]:
    unsigned = {name: value for name, value in credential.items() if name != "proof"}
    return add_proof(unsigned, key=world.chain.keys[issuer], created="2026-01-01T00:00:00Z")


def failure(world: World, credential: dict[str, Any]) -> str:
    with pytest.raises(CredentialError) as raised:
        world.service.register_practitioner(world.chain.config.admin, credential)
    return raised.value.reason.value


def test_each_bad_credential_is_refused_with_its_reason(world: World) -> None:
    tampered = copy.deepcopy(world.credential())
    tampered["credentialSubject"]["specialty"] = "208D00000X"
    assert failure(world, tampered) == "bad_proof"
    assert failure(world, world.credential(issuer="stranger")) == "untrusted_issuer"
    bad_npi = copy.deepcopy(world.credential())
    bad_npi["credentialSubject"]["npi"] = "1234567890"
    assert failure(world, resign(world, bad_npi)) == "bad_npi"
    expired = world.credential(valid_until="2026-03-01T00:00:00Z")
    assert failure(world, expired) == "expired"
    assert failure(world, {"credentialSubject": 1}) == "malformed"
    assert world.events() == []


def test_a_revoked_credential_cannot_register_again(world: World) -> None:
    credential = world.credential()
    world.service.register_practitioner(world.did("practitioner"), credential)
    revoked = world.service.revoke_credential(world.did("authority"), credential)
    assert revoked.created
    assert revoked.body["data"] == {
        "did": world.did("practitioner"),
        "issuer": world.did("authority"),
        "credential": credential_digest(credential),
    }
    assert failure(world, credential) == "revoked"
    repeat = world.service.revoke_credential(world.did("authority"), credential_digest(credential))
    assert not repeat.created
    assert repeat.body == revoked.body
    assert roles(world, world.did("practitioner"))["practitioner"]["status"] == "revoked"
    assert [e["type"] for e in world.events()] == [PRACTITIONER_REGISTERED, PRACTITIONER_REVOKED]


def test_only_the_issuer_revokes_and_only_known_credentials(world: World) -> None:
    credential = world.credential()
    with pytest.raises(NotFoundError):
        world.service.revoke_credential(world.did("authority"), credential)
    world.service.register_practitioner(world.did("practitioner"), credential)
    for caller in (world.chain.config.admin, world.did("practitioner")):
        with pytest.raises(ForbiddenError, match="issued"):
            world.service.revoke_credential(caller, credential)
    assert len(world.events()) == 1


def test_a_registered_authority_is_trusted_once_its_registration_is_sealed(world: World) -> None:
    board = world.did("stranger")
    credential = world.credential(issuer="stranger")
    answer = world.service.register_authority(world.chain.config.admin, did=board, name="Board")
    assert answer.created
    assert failure(world, credential) == "untrusted_issuer"  # not sealed yet
    world.seal_everything(3)
    assert world.service.register_practitioner(board, credential).created
    repeat = world.service.register_authority(world.chain.config.admin, did=board, name="Board")
    assert repeat.body == answer.body
    assert not repeat.created
    genesis = world.service.register_authority(
        world.chain.config.admin, did=world.did("authority"), name="Demo"
    )
    assert genesis.body["event"] is None
    assert not genesis.created
    with pytest.raises(ForbiddenError):
        world.service.register_authority(board, did=world.did("publisher-2"), name="Self-made")


def test_publishers_are_registered_updated_and_revoked_for_good(world: World) -> None:
    admin, did = world.chain.config.admin, world.did("publisher-2")
    first = world.service.register_publisher(
        admin, did=did, name="Clinic", topic="clinical.events", types=CLINICAL
    )
    repeat = world.service.register_publisher(
        admin, did=did, name="Clinic", topic="clinical.events", types=CLINICAL
    )
    assert (first.created, repeat.created, repeat.body == first.body) == (True, False, True)
    exact = ("org.careledger.clinical.consultation.completed.v1",)
    assert world.service.register_publisher(
        admin, did=did, name="Clinic", topic="clinical.events", types=exact
    ).created
    revoked = world.service.revoke_publisher(admin, did=did)
    assert revoked.created
    assert world.service.revoke_publisher(admin, did=did).body == revoked.body
    with pytest.raises(RevokedDidError):
        world.service.register_publisher(
            admin, did=did, name="Clinic", topic="clinical.events", types=CLINICAL
        )
    with pytest.raises(NotFoundError):
        world.service.revoke_publisher(admin, did=world.did("stranger"))
    with pytest.raises(ForbiddenError):
        world.service.revoke_publisher(did, did=world.did("publisher"))
    assert roles(world, did)["publisher"]["status"] == "revoked"
    assert len(world.events()) == 3


def test_a_genesis_publisher_can_be_revoked(world: World) -> None:
    did = world.did("publisher")
    assert roles(world, did)["publisher"] | {"types": None} == {
        "role": "publisher",
        "status": "active",
        "since_height": 0,
        "until": None,
        "name": "publisher-demo",
        "topic": "clinical.events",
        "types": None,
    }
    world.service.revoke_publisher(world.chain.config.admin, did=did)
    world.seal_everything(5)
    view = roles(world, did)["publisher"]
    assert (view["status"], view["since_height"], view["until"]) == ("revoked", 0, 5)


def test_a_patient_registers_with_a_pseudonym_only_and_is_disclosed_to_few(world: World) -> None:
    patient = world.did("stranger")
    first = world.service.register_patient(patient)
    again = world.service.register_patient(patient)
    pseudonym = patient_pseudonym(PSEUDONYM_KEY, patient)
    assert first.body["data"] == {"pseudonym": pseudonym}
    assert (first.created, again.created, again.body == first.body) == (True, False, True)
    (event,) = world.events()
    assert event["subject"] == pseudonym
    assert patient not in str(event)
    assert roles(world, patient, caller=patient)["patient"]["pseudonym"] == pseudonym
    assert "patient" in roles(world, patient)  # the admin
    with pytest.raises(NotFoundError):
        world.service.describe(world.did("authority"), patient)
    with pytest.raises(NotFoundError):
        world.service.describe(patient, world.did("publisher-2"))


def test_a_practitioner_who_is_also_a_patient_shows_only_the_public_role(world: World) -> None:
    did = world.did("practitioner")
    world.service.register_patient(did)
    world.service.register_practitioner(did, world.credential())
    seen_by_other = roles(world, did, caller=world.did("authority"))
    assert set(seen_by_other) == {"practitioner"}
    assert set(roles(world, did, caller=did)) == {"practitioner", "patient"}


def test_the_verification_report_names_each_check(world: World) -> None:
    good = world.service.verify_credential(world.credential())
    assert good["verified"] is True
    assert good["reason"] is None
    bad = world.service.verify_credential(world.credential(issuer="stranger"))
    assert bad["verified"] is False
    assert bad["reason"] == "untrusted_issuer"
    assert {check["check"] for check in bad["checks"]} == {c["check"] for c in good["checks"]}
