"""The records events the service signs: source, subject, type, schemas, and never any PHI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.records.core.events import RecordsEvent, records_source, sign_records_event
from shared.envelope import parse_event_object, verify_event
from shared.events import EventData
from shared.events.records import (
    CONSENT_GRANTED,
    CONSENT_REVOKED,
    RECORD_ACCESSED,
    RECORD_CREATED,
    RECORD_ERASED,
    RECORD_UPDATED,
    AccessAction,
    AccessOutcome,
    ActorRole,
    ConsentGranted,
    ConsentRevoked,
    Purpose,
    RecordAccessed,
    RecordCreated,
    RecordErased,
    RecordUpdated,
)
from tests.unit.core.chainfactory import key_for
from tests.unit.records.conftest import CANARY, World, observation

KEY = key_for("records")
AUTHOR = key_for("practitioner").did
RECORD = "00000000-0000-4000-8000-000000000001"
CONSENT = "00000000-0000-4000-8000-000000000002"
PATIENT = "a1" * 32
TIME = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EVENT_ID = "01900000-0000-7000-8000-000000000001"

VERSION: dict[str, Any] = {
    "record": RECORD,
    "resource_type": "Observation",
    "author": AUTHOR,
    "patient": PATIENT,
    "commitment": "cd" * 32,
    "ciphertext": "ef" * 32,
}


def sign(data: EventData, subject: str = RECORD) -> RecordsEvent:
    return sign_records_event(
        data, subject=subject, key=KEY, chain_id="careledger-test", event_id=EVENT_ID, time=TIME
    )


def test_the_source_names_the_records_service_of_the_chain() -> None:
    assert records_source("careledger-test") == "careledger:records:careledger-test"


@pytest.mark.parametrize(
    ("data", "event_type"),
    [
        (RecordCreated(version=1, **VERSION), RECORD_CREATED),
        (RecordUpdated(version=2, **VERSION), RECORD_UPDATED),
        (
            RecordErased(record=RECORD, patient=PATIENT, versions=2, by=ActorRole.ADMIN),
            RECORD_ERASED,
        ),
        (
            ConsentGranted(
                consent=CONSENT,
                patient=PATIENT,
                grantee=AUTHOR,
                resource_types=("Observation",),
                purpose=Purpose.TREATMENT,
                expires="2026-07-01T00:00:00Z",
            ),
            CONSENT_GRANTED,
        ),
        (ConsentRevoked(consent=CONSENT, patient=PATIENT), CONSENT_REVOKED),
        (
            RecordAccessed(
                patient=PATIENT,
                action=AccessAction.READ,
                outcome=AccessOutcome.DENIED,
                purpose=Purpose.TREATMENT,
                role=ActorRole.OTHER,
                actor=AUTHOR,
                record=RECORD,
            ),
            RECORD_ACCESSED,
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, EventData) else "",
)
def test_each_data_class_is_signed_as_its_type_with_source_and_subject(
    data: EventData, event_type: str
) -> None:
    signed = sign(data, subject="the-subject")
    event = signed.event
    assert (signed.type, signed.event_id, signed.source) == (
        event_type,
        EVENT_ID,
        "careledger:records:careledger-test",
    )
    assert event["type"] == event_type
    assert event["source"] == "careledger:records:careledger-test"
    assert event["subject"] == "the-subject"
    assert event["id"] == EVENT_ID
    assert event["time"] == "2026-06-01T12:00:00.000000Z"
    assert event["signer"] == KEY.did
    assert event["data"] == data.model_dump(mode="json", exclude_none=True)
    verify_event(parse_event_object(event))  # a valid signature by the service
    assert signed.reference() == {
        "source": "careledger:records:careledger-test",
        "id": EVENT_ID,
        "type": event_type,
    }


def test_absent_optional_members_are_left_out_of_the_data() -> None:
    accessed = RecordAccessed(
        patient=PATIENT,
        action=AccessAction.EXPORT,
        outcome=AccessOutcome.ALLOWED,
        purpose=Purpose.PATIENT_REQUEST,
        role=ActorRole.PATIENT,
    )
    data = sign(accessed, subject=PATIENT).event["data"]
    assert data == {
        "patient": PATIENT,
        "action": "export",
        "outcome": "allowed",
        "purpose": "PATRQT",
        "role": "patient",
    }


def test_the_patient_is_never_named_as_an_actor() -> None:
    with pytest.raises(ValidationError, match="actor is named unless"):
        RecordAccessed(
            patient=PATIENT,
            action=AccessAction.READ,
            outcome=AccessOutcome.ALLOWED,
            purpose=Purpose.PATIENT_REQUEST,
            role=ActorRole.PATIENT,
            actor=AUTHOR,
        )


@pytest.mark.parametrize("role", [r for r in ActorRole if r is not ActorRole.PATIENT])
def test_every_other_role_must_name_its_actor(role: ActorRole) -> None:
    with pytest.raises(ValidationError, match="actor is named unless"):
        RecordAccessed(
            patient=PATIENT,
            action=AccessAction.READ,
            outcome=AccessOutcome.ALLOWED,
            purpose=Purpose.TREATMENT,
            role=role,
        )


@pytest.mark.parametrize("version", [0, 2, 3])
def test_a_created_record_is_version_1(version: int) -> None:
    with pytest.raises(ValidationError):
        RecordCreated(version=version, **VERSION)


@pytest.mark.parametrize("version", [0, 1])
def test_an_updated_record_is_version_2_or_later(version: int) -> None:
    with pytest.raises(ValidationError):
        RecordUpdated(version=version, **VERSION)
    assert RecordUpdated(version=7, **VERSION).version == 7


def test_data_that_no_longer_matches_its_schema_is_not_signed() -> None:
    data = RecordCreated(version=1, **VERSION)
    broken = data.model_copy(update={"version": 2})  # model_copy skips validation
    with pytest.raises(ValidationError):
        sign(broken)


def test_no_event_of_a_record_write_holds_content_or_the_patients_did(world: World) -> None:
    world.register_practitioner("practitioner")
    world.register_practitioner("second")
    world.register_patient("patient")
    patient, author = world.did("patient"), world.did("practitioner")
    written = world.service.create_record(author, patient=patient, resource=observation())
    record = written["record"]
    world.service.update_record(
        author, record, resource=observation(CANARY + "-v2"), base_version=1
    )
    world.service.grant_consent(
        patient,
        grantee=world.did("second"),
        resource_types=[],
        purpose=Purpose.TREATMENT,
        expires=world.clock.now + timedelta(days=1),
    )
    world.reader.read(world.did("second"), record)
    world.service.erase(patient, record)

    events = world.events()
    assert [e["type"] for e in events] == [
        RECORD_CREATED,
        RECORD_UPDATED,
        CONSENT_GRANTED,
        RECORD_ACCESSED,
        RECORD_ACCESSED,
        RECORD_ERASED,
        RECORD_ACCESSED,
    ]
    text = json.dumps(events)
    assert CANARY not in text
    assert "8867-4" not in text  # nothing from inside the resource either
    assert patient not in text
    assert all(e["signer"] == world.did("records") for e in events)
    consent = events[2]["subject"]
    assert [e["subject"] for e in events] == [
        record,
        record,
        consent,
        consent,
        record,
        record,
        record,
    ]
