"""The done-when story of the records issue, on memory adapters: write, refuse, consent, read,
revoke, refuse again, break-glass, erase; every step an audited event."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from services.records.errors import ConsentRequiredError, ErasedError
from shared.events.records import RECORD_ACCESSED, RECORD_CREATED
from tests.unit.records.conftest import CANARY, World, observation


def test_the_consent_story(world: World) -> None:
    world.register_practitioner("practitioner")
    world.register_practitioner("second")
    world.register_patient("patient")
    patient, author, second = world.did("patient"), world.did("practitioner"), world.did("second")

    written = world.service.create_record(author, patient=patient, resource=observation())
    record = written["record"]
    assert written["event"]["type"] == RECORD_CREATED

    mine = world.reader.read(patient, record)
    assert mine["resource"]["code"]["text"] == CANARY
    assert mine["access"]["role"] == "patient"
    with pytest.raises(ConsentRequiredError):
        world.reader.read(second, record)

    granted = world.service.grant_consent(
        patient,
        grantee=second,
        resource_types=["Observation"],
        purpose="TREAT",  # type: ignore[arg-type]
        expires=world.clock.now + timedelta(days=30),
    )
    assert granted["records_shared"] == 1
    assert world.reader.read(second, record)["access"]["role"] == "grantee"

    world.service.revoke_consent(patient, granted["consent"]["consent"])
    with pytest.raises(ConsentRequiredError):
        world.reader.read(second, record)

    glass = world.reader.break_glass(second, record, reason="unconscious in the ER")
    assert glass["access"]["break_glass"] is True

    world.seal_everything(height=5)
    disclosures = world.reader.disclosures(patient, patient)["disclosures"]
    assert [(d["action"], d["outcome"]) for d in disclosures] == [
        ("read", "allowed"),
        ("read", "denied"),
        ("consent_granted", "allowed"),
        ("read", "allowed"),
        ("consent_revoked", "allowed"),
        ("read", "denied"),
        ("break_glass", "allowed"),
    ]
    assert disclosures[-1]["reason"] == "unconscious in the ER"
    assert all(d["sealed_height"] == 5 for d in disclosures)
    assert world.reader.read(patient, record)["integrity"]["checked_against"] == "chain"

    world.service.erase(patient, record)
    with pytest.raises(ErasedError):
        world.reader.read(patient, record)

    events = world.events()
    assert sum(e["type"] == RECORD_ACCESSED for e in events) == 9
    assert CANARY not in json.dumps(events)
    assert "unconscious" not in json.dumps(events)
    assert patient not in json.dumps(events)
