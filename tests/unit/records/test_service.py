"""The changing use cases: records, versions, consents and erasure, on memory adapters."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.records.errors import (
    ConflictError,
    ConsentRequiredError,
    ErasedError,
    ForbiddenError,
    InvalidRequestError,
    InvalidResourceError,
    NotFoundError,
)
from services.records.service import MAX_CONSENT
from shared.crypto import open_sealed
from shared.events.records import (
    CONSENT_GRANTED,
    CONSENT_REVOKED,
    RECORD_ACCESSED,
    RECORD_CREATED,
    RECORD_ERASED,
    RECORD_UPDATED,
    Purpose,
)
from tests.unit.records.conftest import CANARY, World, observation

UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


@pytest.fixture
def people(world: World) -> World:
    """The world with an author, a second practitioner and a registered patient."""
    world.register_practitioner("practitioner")
    world.register_practitioner("second")
    world.register_patient("patient")
    return world


def create(world: World, resource: dict[str, Any] | None = None, by: str = "practitioner") -> str:
    written = world.service.create_record(
        world.did(by), patient=world.did("patient"), resource=resource or observation()
    )
    return str(written["record"])


def grant(
    world: World,
    grantee: str = "second",
    types: tuple[str, ...] = ("Observation",),
    purpose: Purpose | str = Purpose.TREATMENT,
    expires: datetime | None = None,
) -> dict[str, Any]:
    return world.service.grant_consent(
        world.did("patient"),
        grantee=world.did(grantee),
        resource_types=types,
        purpose=purpose,  # type: ignore[arg-type]
        expires=expires or world.clock.now + timedelta(days=30),
    )


def data_key(world: World, record: str) -> bytes:
    head = world.store.head(record)
    assert head is not None
    assert head.custody_key is not None
    return open_sealed(world.key("records"), head.custody_key)


def opens_for(world: World, record: str, name: str) -> bool:
    wrapped = world.store.wrapped_key(record, world.did(name))
    if wrapped is None:
        return False
    assert open_sealed(world.key(name), wrapped.sealed_key) == data_key(world, record)
    return True


def types_of(world: World) -> list[str]:
    return [event["type"] for event in world.events()]


# --- create ---------------------------------------------------------------------------------


def test_a_practitioner_writes_version_1_for_a_registered_patient(people: World) -> None:
    written = people.service.create_record(
        people.did("practitioner"), patient=people.did("patient"), resource=observation()
    )
    (event,) = people.events()
    assert event["type"] == RECORD_CREATED
    assert written == {
        "record": event["subject"],
        "version": 1,
        "resource_type": "Observation",
        "commitment": event["data"]["commitment"],
        "event": {"source": event["source"], "id": event["id"], "type": RECORD_CREATED},
    }
    assert event["data"]["author"] == people.did("practitioner")
    assert event["data"]["patient"] == people.pseudonym("patient")
    assert event["data"]["version"] == 1
    record = written["record"]
    assert opens_for(people, record, "patient")
    assert opens_for(people, record, "practitioner")
    assert not opens_for(people, record, "second")


@pytest.mark.parametrize("standing", ["unregistered", "revoked", "expired", "not-yet-valid"])
def test_only_a_practitioner_in_good_standing_writes(world: World, standing: str) -> None:
    world.register_patient("patient")
    now = world.clock.now
    changes: dict[str, Any] = {
        "revoked": {"revoked": 3},
        "expired": {"valid_until": now - timedelta(seconds=1)},
        "not-yet-valid": {"valid_from": now + timedelta(seconds=1)},
    }.get(standing, {})
    if standing != "unregistered":
        world.register_practitioner("practitioner", **changes)
    with pytest.raises(ForbiddenError, match="write records"):
        create(world)
    assert world.events() == []


def test_a_record_is_only_written_for_a_registered_patient(world: World) -> None:
    world.register_practitioner("practitioner")
    with pytest.raises(NotFoundError, match="no registered patient"):
        create(world)
    assert world.events() == []


def test_an_invalid_resource_is_refused_without_repeating_it(people: World) -> None:
    bad = {**observation(), "status": CANARY, CANARY: CANARY}
    with pytest.raises(InvalidResourceError) as caught:
        create(people, bad)
    assert caught.value.errors
    assert CANARY not in str(caught.value)
    assert CANARY not in json.dumps(caught.value.errors)
    assert people.events() == []


def test_a_new_record_is_wrapped_to_grantees_of_consents_in_force_covering_it(
    people: World,
) -> None:
    people.register_practitioner("third")
    people.register_practitioner("fourth")
    grant(people, "second")
    grant(people, "third", types=("Condition",))
    revoked = grant(people, "fourth")["consent"]["consent"]
    people.service.revoke_consent(people.did("patient"), revoked)
    grant(people, "stranger", types=(), expires=people.clock.now + timedelta(hours=1))
    people.clock.advance(hours=2)  # the stranger's consent has expired
    record = create(people)
    assert opens_for(people, record, "second")
    wrapped = people.store.wrapped_key(record, people.did("second"))
    assert wrapped is not None
    assert wrapped.consent_id is not None
    assert not opens_for(people, record, "third")
    assert not opens_for(people, record, "fourth")
    assert not opens_for(people, record, "stranger")


# --- update ---------------------------------------------------------------------------------


def test_the_author_adds_versions_and_every_version_stays_readable(people: World) -> None:
    record = create(people)
    author, patient = people.did("practitioner"), people.did("patient")
    second = people.service.update_record(
        author, record, resource=observation("second"), base_version=1
    )
    third = people.service.update_record(author, record, resource=observation("third"))
    assert (second["version"], third["version"]) == (2, 3)
    assert types_of(people) == [RECORD_CREATED, RECORD_UPDATED, RECORD_UPDATED]
    updated = people.events()[1]
    assert updated["data"]["version"] == 2
    assert updated["data"]["commitment"] == second["commitment"]
    assert second["event"]["type"] == RECORD_UPDATED
    assert people.reader.read(patient, record, version=1)["resource"]["code"]["text"] == CANARY
    latest = people.reader.read(patient, record)
    assert (latest["version"], latest["latest_version"]) == (3, 3)
    assert latest["resource"]["code"]["text"] == "third"
    assert latest["resource"]["meta"]["versionId"] == "3"


@pytest.mark.parametrize("base", [2, 5])
def test_an_update_based_on_another_version_is_a_conflict(people: World, base: int) -> None:
    record = create(people)
    with pytest.raises(ConflictError, match="version 1"):
        people.service.update_record(
            people.did("practitioner"), record, resource=observation(), base_version=base
        )
    assert types_of(people) == [RECORD_CREATED]


def test_an_update_cannot_change_the_resource_type(people: World) -> None:
    record = create(people)
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/p"},
        "code": {"text": "x"},
    }
    with pytest.raises(InvalidRequestError, match="holds a Observation") as caught:
        people.service.update_record(people.did("practitioner"), record, resource=condition)
    assert not isinstance(caught.value, InvalidResourceError)
    assert types_of(people) == [RECORD_CREATED]


def test_an_invalid_new_version_is_refused(people: World) -> None:
    record = create(people)
    with pytest.raises(InvalidResourceError):
        people.service.update_record(
            people.did("practitioner"), record, resource={"resourceType": "Observation"}
        )


def test_a_grantee_with_consent_for_treatment_adds_a_version_and_holds_the_key(
    people: World,
) -> None:
    record = create(people)
    grant(people)
    answer = people.service.update_record(people.did("second"), record, resource=observation("b"))
    assert answer["version"] == 2
    assert people.events()[-1]["data"]["author"] == people.did("second")
    assert opens_for(people, record, "second")
    read = people.reader.read(people.did("patient"), record)
    assert read["author"] == people.did("second")


def test_a_grantee_for_another_purpose_or_a_stranger_may_not_update(people: World) -> None:
    record = create(people)
    grant(people, purpose=Purpose.PAYMENT)
    with pytest.raises(ForbiddenError, match="only the author"):
        people.service.update_record(people.did("second"), record, resource=observation())
    with pytest.raises(ForbiddenError, match="write records"):
        people.service.update_record(people.did("patient"), record, resource=observation())


def test_updating_an_unknown_record_is_not_found(people: World) -> None:
    with pytest.raises(NotFoundError):
        people.service.update_record(people.did("practitioner"), UNKNOWN, resource=observation())


# --- consent --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"types": ("Observation", "Spaceship")}, "not a record type"),
        ({"purpose": Purpose.EMERGENCY_TREATMENT}, "purpose ETREAT"),
        ({"purpose": "ETREAT"}, "purpose ETREAT"),
        ({"purpose": Purpose.PATIENT_REQUEST}, "purpose PATRQT"),
        ({"grantee": "patient"}, "always reads their own"),
        ({"expires": timedelta(0)}, "in the future"),
        ({"expires": timedelta(days=-1)}, "in the future"),
        ({"expires": MAX_CONSENT + timedelta(seconds=1)}, "within five years"),
    ],
    ids=["type", "etreat", "etreat-str", "patrqt", "self", "now", "past", "too-long"],
)
def test_an_invalid_consent_is_refused_before_anything_is_written(
    people: World, changes: dict[str, Any], message: str
) -> None:
    if "expires" in changes:
        changes["expires"] = people.clock.now + changes["expires"]
    with pytest.raises(InvalidRequestError, match=message):
        grant(people, **changes)
    assert people.events() == []
    assert people.reader.consents_of(people.did("patient")) == {"consents": []}


def test_a_consent_may_last_exactly_the_longest_allowed(people: World) -> None:
    granted = grant(people, expires=people.clock.now + MAX_CONSENT)
    assert granted["consent"]["purpose"] == "TREAT"


def test_only_a_registered_patient_grants_consent(world: World) -> None:
    with pytest.raises(ForbiddenError, match="registered patient"):
        grant(world)
    assert world.events() == []


def test_granting_wraps_the_covered_live_records_and_is_audited(people: World) -> None:
    observed = create(people)
    condition = create(
        people,
        {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, "code": {"text": "c"}},
    )
    erased = create(people)
    people.service.erase(people.did("patient"), erased)
    before = len(people.events())

    granted = grant(people, types=("Observation",))

    assert granted["records_shared"] == 1
    assert opens_for(people, observed, "second")
    assert not opens_for(people, condition, "second")
    assert not opens_for(people, erased, "second")
    consent_id = granted["consent"]["consent"]
    wrapped = people.store.wrapped_key(observed, people.did("second"))
    assert wrapped is not None
    assert wrapped.consent_id == consent_id
    granted_event, audited = people.events()[before:]
    assert granted_event["type"] == CONSENT_GRANTED
    assert granted_event["subject"] == consent_id
    assert granted_event["data"] == {
        "consent": consent_id,
        "patient": people.pseudonym("patient"),
        "grantee": people.did("second"),
        "resource_types": ["Observation"],
        "purpose": "TREAT",
        "expires": granted["consent"]["expires"],
    }
    assert audited["type"] == RECORD_ACCESSED
    assert audited["data"] == {
        "patient": people.pseudonym("patient"),
        "action": "consent_granted",
        "outcome": "allowed",
        "purpose": "TREAT",
        "role": "patient",
        "consent": consent_id,
    }
    assert granted["consent"]["grantee"] == people.did("second")
    assert granted["consent"]["revoked_at"] is None
    assert granted["event"]["id"] == granted_event["id"]


def test_a_consent_for_all_types_shares_every_record(people: World) -> None:
    create(people)
    create(
        people,
        {"resourceType": "Condition", "subject": {"reference": "Patient/p"}, "code": {"text": "c"}},
    )
    assert grant(people, types=())["records_shared"] == 2


def test_revoking_deletes_the_wrapped_keys_and_stops_reads(people: World) -> None:
    record = create(people)
    consent = grant(people)["consent"]["consent"]
    assert people.reader.read(people.did("second"), record)["access"]["role"] == "grantee"
    changed, answer = people.service.revoke_consent(people.did("patient"), consent)
    assert changed is True
    assert answer["consent"]["revoked_at"] is not None
    assert people.store.wrapped_key(record, people.did("second")) is None
    with pytest.raises(ConsentRequiredError):
        people.reader.read(people.did("second"), record)
    revoked = [e for e in people.events() if e["type"] == CONSENT_REVOKED]
    assert [e["data"] for e in revoked] == [
        {"consent": consent, "patient": people.pseudonym("patient")}
    ]
    assert answer["event"]["id"] == revoked[0]["id"]


def test_a_key_another_consent_in_force_covers_is_wrapped_again(people: World) -> None:
    record = create(people)
    first = grant(people)["consent"]["consent"]
    second = grant(people, types=())["consent"]["consent"]
    people.service.revoke_consent(people.did("patient"), first)
    wrapped = people.store.wrapped_key(record, people.did("second"))
    assert wrapped is not None
    assert wrapped.consent_id == second
    assert opens_for(people, record, "second")
    assert people.reader.read(people.did("second"), record)["access"]["consent"] == second


def test_a_key_another_consent_no_longer_in_force_covers_is_not_wrapped_again(
    people: World,
) -> None:
    record = create(people)
    first = grant(people)["consent"]["consent"]
    grant(people, types=(), expires=people.clock.now + timedelta(hours=1))
    people.clock.advance(hours=2)
    people.service.revoke_consent(people.did("patient"), first)
    assert people.store.wrapped_key(record, people.did("second")) is None


def test_revoking_twice_changes_nothing_the_second_time(people: World) -> None:
    consent = grant(people)["consent"]["consent"]
    people.service.revoke_consent(people.did("patient"), consent)
    events = people.events()
    changed, answer = people.service.revoke_consent(people.did("patient"), consent)
    assert changed is False
    assert answer["consent"]["consent"] == consent
    assert answer["consent"]["revoked_at"] is not None
    assert "event" not in answer
    assert people.events() == events


def test_a_patient_cannot_revoke_another_patients_consent_or_an_unknown_one(
    people: World,
) -> None:
    people.register_patient("other")
    consent = grant(people)["consent"]["consent"]
    with pytest.raises(NotFoundError):
        people.service.revoke_consent(people.did("other"), consent)
    with pytest.raises(NotFoundError):
        people.service.revoke_consent(people.did("second"), consent)
    with pytest.raises(NotFoundError):
        people.service.revoke_consent(people.did("patient"), UNKNOWN)
    assert CONSENT_REVOKED not in types_of(people)


# --- erasure --------------------------------------------------------------------------------


@pytest.mark.parametrize(("by", "role"), [("patient", "patient"), ("admin", "admin")])
def test_the_patient_or_the_admin_erases_a_record(people: World, by: str, role: str) -> None:
    record = create(people)
    people.service.update_record(people.did("practitioner"), record, resource=observation("b"))
    grant(people)
    caller = people.chain.config.admin if by == "admin" else people.did(by)
    before = len(people.events())
    answer = people.service.erase(caller, record)
    erased, audited = people.events()[before:]
    assert answer == {
        "record": record,
        "erased": True,
        "versions": 2,
        "event": {"source": erased["source"], "id": erased["id"], "type": RECORD_ERASED},
    }
    assert erased["data"] == {
        "record": record,
        "patient": people.pseudonym("patient"),
        "versions": 2,
        "by": role,
    }
    assert audited["data"]["action"] == "erase"
    assert audited["data"]["role"] == role
    assert audited["data"].get("actor") == (caller if by == "admin" else None)
    head = people.store.head(record)
    assert head is not None
    assert (head.custody_key, head.salt) == (None, None)
    for name in ("patient", "practitioner", "second"):
        assert people.store.wrapped_key(record, people.did(name)) is None
    for version in (1, 2):
        stored = people.store.version(record, version)
        assert stored is not None
        assert (stored.ciphertext, stored.nonce) == (None, None)


@pytest.mark.parametrize("name", ["practitioner", "second", "stranger"])
def test_nobody_else_erases(people: World, name: str) -> None:
    record = create(people)
    with pytest.raises(ForbiddenError, match="only the patient or the admin"):
        people.service.erase(people.did(name), record)
    assert types_of(people) == [RECORD_CREATED]


def test_an_erased_record_is_gone_for_reads_updates_and_erasure(people: World) -> None:
    record = create(people)
    patient = people.did("patient")
    people.service.erase(patient, record)
    events = people.events()
    with pytest.raises(ErasedError):
        people.reader.read(patient, record)
    with pytest.raises(ErasedError):
        people.reader.envelope(patient, record)
    with pytest.raises(ErasedError):
        people.reader.break_glass(people.did("second"), record, reason="emergency")
    with pytest.raises(ErasedError):
        people.service.update_record(people.did("practitioner"), record, resource=observation())
    with pytest.raises(ErasedError):
        people.service.erase(patient, record)
    with pytest.raises(ErasedError):
        people.service.erase(people.chain.config.admin, record)
    assert people.events() == events


def test_erasing_an_unknown_record_is_not_found(people: World) -> None:
    with pytest.raises(NotFoundError):
        people.service.erase(people.did("patient"), UNKNOWN)
