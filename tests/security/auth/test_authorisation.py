"""Authorisation attacks on the records use cases (memory adapters, fake clock): each refused
with 403 and audited by a `RecordAccessed` event with outcome `denied` in the outbox, in the
same transaction, carrying pseudonyms and ids only (test_real_processes.py follows the same
refusals through to sealed, final blocks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from services.records.errors import ConsentRequiredError, ForbiddenError
from shared.events.records import RECORD_ACCESSED, Purpose, RecordAccessed
from tests.unit.records.conftest import CANARY, World, build_world, observation


@dataclass
class Story:
    world: World
    record: str

    def denied(self) -> list[dict[str, Any]]:
        return [
            event["data"]
            for event in self.world.events()
            if event["type"] == RECORD_ACCESSED and event["data"]["outcome"] == "denied"
        ]


def story() -> Story:
    world = build_world()
    for name in ("author", "second"):
        world.register_practitioner(name)
    for name in ("patient", "other-patient"):
        world.register_patient(name)
    written = world.service.create_record(
        world.did("author"), patient=world.did("patient"), resource=observation(CANARY)
    )
    return Story(world, str(written["record"]))


def grant_and_withdraw(s: Story) -> None:
    granted = s.world.service.grant_consent(
        s.world.did("patient"),
        grantee=s.world.did("second"),
        resource_types=(),
        purpose=Purpose.TREATMENT,
        expires=s.world.clock.now + timedelta(days=1),
    )
    consent = granted["consent"]["consent"]
    assert s.world.reader.read(s.world.did("second"), s.record)["access"]["role"] == "grantee"
    s.world.service.revoke_consent(s.world.did("patient"), consent)


def revoke_author(s: Story) -> None:
    s.world.register_practitioner("author", revoked=2)


@dataclass(frozen=True)
class Attack:
    name: str
    prepare: Callable[[Story], None]
    attempt: Callable[[Story], object]
    error: type[Exception]
    audited: tuple[str, str, str]  # action, role, who (a key name, or "" for the patient)


def nothing(_: Story) -> None:
    return None


ATTACKS = [
    Attack(
        "practitioner without consent",
        nothing,
        lambda s: s.world.reader.read(s.world.did("second"), s.record),
        ConsentRequiredError,
        ("read", "practitioner", "second"),
    ),
    Attack(
        "practitioner without consent, envelope",
        nothing,
        lambda s: s.world.reader.envelope(s.world.did("second"), s.record),
        ConsentRequiredError,
        ("read", "practitioner", "second"),
    ),
    Attack(
        "another patient reads the record",
        nothing,
        lambda s: s.world.reader.read(s.world.did("other-patient"), s.record),
        ConsentRequiredError,
        ("read", "other", "other-patient"),
    ),
    Attack(
        "another patient exports the patient's records",
        nothing,
        lambda s: s.world.reader.export(s.world.did("other-patient"), s.world.did("patient")),
        ForbiddenError,
        ("export", "other", "other-patient"),
    ),
    Attack(
        "a grantee after the consent was withdrawn",
        grant_and_withdraw,
        lambda s: s.world.reader.read(s.world.did("second"), s.record),
        ConsentRequiredError,
        ("read", "practitioner", "second"),
    ),
    Attack(
        "a revoked practitioner reads the record they wrote",
        revoke_author,
        lambda s: s.world.reader.read(s.world.did("author"), s.record),
        ForbiddenError,
        ("read", "practitioner", "author"),
    ),
    Attack(
        "a revoked practitioner breaks the glass",
        revoke_author,
        lambda s: s.world.reader.break_glass(s.world.did("author"), s.record, reason="ER"),
        ForbiddenError,
        ("break_glass", "practitioner", "author"),
    ),
    Attack(
        "a non-practitioner breaks the glass",
        nothing,
        lambda s: s.world.reader.break_glass(s.world.did("other-patient"), s.record, reason="x"),
        ForbiddenError,
        ("break_glass", "other", "other-patient"),
    ),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda attack: attack.name)
def test_each_refusal_is_403_and_audited_as_denied_without_phi(attack: Attack) -> None:
    s = story()
    attack.prepare(s)
    before = len(s.denied())
    with pytest.raises(attack.error) as refused:
        attack.attempt(s)
    assert isinstance(refused.value, ForbiddenError)  # 403 in the API (error_status)
    (event,) = s.denied()[before:]
    action, role, who = attack.audited
    assert (event["action"], event["role"], event.get("actor")) == (
        action,
        role,
        s.world.did(who),
    )
    assert event["patient"] == s.world.pseudonym("patient")
    RecordAccessed.model_validate(event)  # the sealed schema: admission would take it
    text = json.dumps(s.world.events())
    assert CANARY not in text
    assert s.world.did("patient") not in text  # the patient is a pseudonym only


def test_a_revoked_practitioner_still_reads_as_the_patient_of_their_own_records() -> None:
    s = story()
    world = s.world
    world.register_patient("author")
    own = world.service.create_record(
        world.did("second"), patient=world.did("author"), resource=observation("own")
    )
    revoke_author(s)
    answer = world.reader.read(world.did("author"), str(own["record"]))
    assert answer["access"]["role"] == "patient"


def test_an_export_for_an_unknown_did_is_refused_and_not_put_on_the_chain() -> None:
    s = story()
    with pytest.raises(ForbiddenError):
        s.world.reader.export(s.world.did("other-patient"), s.world.did("nobody-registered"))
    assert s.denied() == []


def test_another_patients_lists_are_refused_and_disclose_nothing() -> None:
    """The record list and the accounting of disclosures hold no content: refused (403),
    not audited (they are not accesses to a record)."""
    s = story()
    world = s.world
    for listing in (world.reader.records_of, world.reader.disclosures):
        with pytest.raises(ForbiddenError, match="only the patient"):
            listing(world.did("other-patient"), world.did("patient"))
    assert s.denied() == []
