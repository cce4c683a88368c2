"""The disclosing use cases: reads, break-glass, envelopes, export, lists, and integrity checks."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import pytest

from services.records.cipher import RecordCipher
from services.records.core.envelope import (
    Envelope,
    associated_data,
    commitment_matches,
    verify_envelope,
)
from services.records.core.model import SealedMark
from services.records.errors import (
    ConsentRequiredError,
    ForbiddenError,
    IntegrityError,
    InvalidRequestError,
    NotFoundError,
)
from services.records.ledger import RecordsLedger
from services.records.reading import RecordReader
from shared.crypto import aead_decrypt, b64url_decode, open_sealed
from shared.envelope import uuid7
from shared.events.records import RECORD_ACCESSED, RECORD_CREATED, RECORD_UPDATED, Purpose
from tests.unit.records.conftest import (
    CANARY,
    PSEUDONYM_KEY,
    World,
    counting_random,
    observation,
)

UNKNOWN = "00000000-0000-4000-8000-0000000000ff"


@pytest.fixture
def people(world: World) -> World:
    world.register_practitioner("practitioner")
    world.register_practitioner("second")
    world.register_patient("patient")
    return world


def create(world: World, text: str = CANARY) -> str:
    written = world.service.create_record(
        world.did("practitioner"), patient=world.did("patient"), resource=observation(text)
    )
    return str(written["record"])


def grant(world: World, purpose: Purpose = Purpose.TREATMENT) -> str:
    granted = world.service.grant_consent(
        world.did("patient"),
        grantee=world.did("second"),
        resource_types=("Observation",),
        purpose=purpose,
        expires=world.clock.now + timedelta(days=30),
    )
    return str(granted["consent"]["consent"])


def accesses(world: World) -> list[dict[str, Any]]:
    return [e["data"] for e in world.events() if e["type"] == RECORD_ACCESSED]


# --- read -----------------------------------------------------------------------------------


def test_the_patient_reads_and_the_read_is_audited(people: World) -> None:
    record = create(people)
    answer = people.reader.read(people.did("patient"), record)
    created, accessed = people.events()
    assert answer["resource"]["code"]["text"] == CANARY
    assert answer["resource"]["id"] == record
    assert (answer["version"], answer["latest_version"]) == (1, 1)
    assert answer["author"] == people.did("practitioner")
    assert answer["event"] == {
        "source": created["source"],
        "id": created["id"],
        "type": RECORD_CREATED,
    }
    assert answer["integrity"] == {
        "commitment": created["data"]["commitment"],
        "ciphertext": created["data"]["ciphertext"],
        "checked_against": "signed_event",
        "sealed_height": None,
    }
    assert answer["access"] == {
        "role": "patient",
        "purpose": "PATRQT",
        "break_glass": False,
        "consent": None,
        "event": {"source": accessed["source"], "id": accessed["id"], "type": RECORD_ACCESSED},
    }
    assert accessed["data"] == {
        "patient": people.pseudonym("patient"),
        "action": "read",
        "outcome": "allowed",
        "purpose": "PATRQT",
        "role": "patient",
        "record": record,
        "version": 1,
    }


def test_once_sealed_a_read_is_checked_against_the_chain(people: World) -> None:
    record = create(people)
    people.seal_everything(height=4)
    integrity = people.reader.read(people.did("patient"), record)["integrity"]
    assert (integrity["checked_against"], integrity["sealed_height"]) == ("chain", 4)


def test_the_author_and_a_consented_grantee_read(people: World) -> None:
    record = create(people)
    author = people.reader.read(people.did("practitioner"), record)
    assert (author["access"]["role"], author["access"]["purpose"]) == ("author", "TREAT")
    consent = grant(people)
    grantee = people.reader.read(people.did("second"), record)
    assert (grantee["access"]["role"], grantee["access"]["consent"]) == ("grantee", consent)
    assert accesses(people)[-1]["consent"] == consent
    assert accesses(people)[-1]["actor"] == people.did("second")


def test_a_refused_read_is_audited_and_committed_then_403(people: World) -> None:
    record = create(people)
    with pytest.raises(ConsentRequiredError):
        people.reader.read(people.did("second"), record)
    with pytest.raises(ConsentRequiredError):
        people.reader.read(people.did("stranger"), record)
    denied = accesses(people)
    assert [(d["outcome"], d["role"], d["actor"]) for d in denied] == [
        ("denied", "practitioner", people.did("second")),
        ("denied", "other", people.did("stranger")),
    ]
    assert all("version" not in d for d in denied)
    listed = people.reader.disclosures(people.did("patient"), people.did("patient"))
    assert [d["outcome"] for d in listed["disclosures"]] == ["denied", "denied"]


def test_a_read_for_another_purpose_than_the_consent_is_refused(people: World) -> None:
    record = create(people)
    grant(people, Purpose.PAYMENT)
    with pytest.raises(ConsentRequiredError):
        people.reader.read(people.did("second"), record)
    answer = people.reader.read(people.did("second"), record, purpose=Purpose.PAYMENT)
    assert answer["access"]["purpose"] == "HPAYMT"


def test_a_read_of_an_old_version_and_of_a_missing_one(people: World) -> None:
    record = create(people)
    people.service.update_record(people.did("practitioner"), record, resource=observation("v2"))
    first = people.reader.read(people.did("patient"), record, version=1)
    assert first["resource"]["code"]["text"] == CANARY
    assert (first["version"], first["latest_version"]) == (1, 2)
    latest = people.reader.read(people.did("patient"), record)
    assert latest["event"]["type"] == RECORD_UPDATED
    before = people.events()
    with pytest.raises(NotFoundError, match="versions 1 to 2"):
        people.reader.read(people.did("patient"), record, version=3)
    assert people.events() == before
    with pytest.raises(NotFoundError):
        people.reader.read(people.did("patient"), UNKNOWN)


# --- break-glass ----------------------------------------------------------------------------


def test_break_glass_is_allowed_flagged_and_its_reason_shown_only_to_the_patient(
    people: World,
) -> None:
    record = create(people)
    answer = people.reader.break_glass(people.did("second"), record, reason="ER: Jane Doe")
    assert answer["resource"]["code"]["text"] == CANARY
    assert answer["access"]["break_glass"] is True
    assert (answer["access"]["role"], answer["access"]["purpose"]) == ("practitioner", "ETREAT")
    assert accesses(people)[-1]["action"] == "break_glass"
    assert "Jane Doe" not in json.dumps(people.events())
    (entry,) = people.reader.disclosures(people.did("patient"), people.did("patient"))[
        "disclosures"
    ]
    assert (entry["break_glass"], entry["reason"]) == (True, "ER: Jane Doe")
    assert entry["actor"] == people.did("second")


def test_break_glass_without_standing_is_refused_and_audited_without_a_reason_not(
    people: World,
) -> None:
    record = create(people)
    people.register_practitioner("revoked", revoked=2)
    with pytest.raises(InvalidRequestError, match="reason"):
        people.reader.break_glass(people.did("second"), record, reason="  ")
    with pytest.raises(InvalidRequestError, match="reason"):
        people.reader.break_glass(people.did("stranger"), record, reason="")
    assert accesses(people) == []  # an unusable request is no access attempt
    with pytest.raises(ForbiddenError, match="break the glass"):
        people.reader.break_glass(people.did("stranger"), record, reason="emergency")
    with pytest.raises(ForbiddenError, match="break the glass"):
        people.reader.break_glass(people.did("revoked"), record, reason="emergency")
    with pytest.raises(ForbiddenError, match="break the glass"):
        people.reader.break_glass(people.did("patient"), record, reason="emergency")
    denied = [(a["action"], a["outcome"], a["role"], a.get("actor")) for a in accesses(people)]
    assert denied == [
        ("break_glass", "denied", "other", people.did("stranger")),
        ("break_glass", "denied", "practitioner", people.did("revoked")),
        ("break_glass", "denied", "patient", None),  # the record's patient is never named
    ]
    assert all(a["purpose"] == "ETREAT" and a["record"] == record for a in accesses(people))


# --- envelope -------------------------------------------------------------------------------


def test_the_patient_gets_the_envelope_with_their_wrapped_key_and_can_check_it(
    people: World,
) -> None:
    record = create(people)
    answer = people.reader.envelope(people.did("patient"), record)
    document = answer["envelope"]
    key = open_sealed(people.key("patient"), b64url_decode(answer["wrapped_key"]))
    content = aead_decrypt(
        key,
        b64url_decode(document["nonce"]),
        b64url_decode(answer["ciphertext"]),
        associated_data(record, 1),
    )
    assert json.loads(content)["code"]["text"] == CANARY
    created = people.events()[0]
    assert document["commitment"] == created["data"]["commitment"]
    assert commitment_matches(b64url_decode(answer["salt"]), content, document["commitment"])
    assert document["signer"] == people.did("records")
    envelope = Envelope.from_document(document)
    verify_envelope(envelope, b64url_decode(document["signature"]), document["signer"])
    audited = accesses(people)[-1]
    assert (audited["action"], audited["outcome"], audited["version"]) == ("read", "allowed", 1)
    assert answer["access_event"]["id"] == people.events()[-1]["id"]
    assert answer["event"]["id"] == created["id"]


def test_a_grantee_gets_the_envelope_and_the_key_opens_for_them(people: World) -> None:
    record = create(people)
    grant(people)
    answer = people.reader.envelope(people.did("second"), record)
    assert open_sealed(people.key("second"), b64url_decode(answer["wrapped_key"]))


def test_break_glass_gives_no_envelope_without_a_wrapped_key(people: World) -> None:
    record = create(people)
    people.reader.break_glass(people.did("second"), record, reason="emergency")
    with pytest.raises(ConsentRequiredError):
        people.reader.envelope(people.did("second"), record)
    assert accesses(people)[-1]["outcome"] == "denied"


def test_an_envelope_of_a_missing_version_is_not_found(people: World) -> None:
    record = create(people)
    with pytest.raises(NotFoundError):
        people.reader.envelope(people.did("patient"), record, version=2)


# --- the patient's own views ----------------------------------------------------------------


def test_export_is_a_fhir_bundle_of_the_live_records_audited_as_an_export(people: World) -> None:
    kept = create(people, "kept")
    gone = create(people, "gone")
    people.service.update_record(people.did("practitioner"), kept, resource=observation("v2"))
    people.service.erase(people.did("patient"), gone)
    answer = people.reader.export(people.did("patient"), people.did("patient"))
    bundle = answer["bundle"]
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "collection")
    assert [e["fullUrl"] for e in bundle["entry"]] == [f"urn:uuid:{kept}"]
    assert bundle["entry"][0]["resource"]["code"]["text"] == "v2"
    exported = people.events()[-1]
    assert exported["data"] == {
        "patient": people.pseudonym("patient"),
        "action": "export",
        "outcome": "allowed",
        "purpose": "PATRQT",
        "role": "patient",
    }
    assert answer["event"]["id"] == exported["id"]


@pytest.mark.parametrize("view", ["export", "disclosures", "records_of"])
def test_only_the_patient_sees_their_own_views(people: World, view: str) -> None:
    create(people)
    method = getattr(people.reader, view)
    for caller in ("practitioner", "second", "stranger"):
        with pytest.raises(ForbiddenError, match="only the patient"):
            method(people.did(caller), people.did("patient"))


def test_records_of_lists_the_records_without_content_erased_ones_included(
    people: World,
) -> None:
    first = create(people)
    second = create(people)
    people.service.erase(people.did("patient"), second)
    listed = people.reader.records_of(people.did("patient"), people.did("patient"))["records"]
    assert [(r["record"], r["version"], r["erased"]) for r in listed] == [
        (first, 1, False),
        (second, 1, True),
    ]
    assert CANARY not in json.dumps(listed)
    assert listed[0]["author"] == people.did("practitioner")


def test_consents_of_lists_the_callers_consents_revoked_ones_included(people: World) -> None:
    consent = grant(people)
    people.service.revoke_consent(people.did("patient"), consent)
    (listed,) = people.reader.consents_of(people.did("patient"))["consents"]
    assert listed["consent"] == consent
    assert listed["revoked_at"] is not None
    assert people.reader.consents_of(people.did("second")) == {"consents": []}


def test_disclosures_show_the_sealed_height_once_sealed(people: World) -> None:
    record = create(people)
    people.reader.read(people.did("practitioner"), record)
    before = people.reader.disclosures(people.did("patient"), people.did("patient"))
    assert [d["sealed_height"] for d in before["disclosures"]] == [None]
    people.seal_everything(height=9)
    (entry,) = people.reader.disclosures(people.did("patient"), people.did("patient"))[
        "disclosures"
    ]
    assert entry["sealed_height"] == 9
    assert (entry["role"], entry["actor"], entry["record"]) == (
        "author",
        people.did("practitioner"),
        record,
    )
    assert entry["reason"] is None


# --- integrity ------------------------------------------------------------------------------


@dataclass
class RecordingMetrics:
    """A `RecordsMetrics` that remembers what it was told."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def written(self, resource_type: str, created: bool) -> None:
        self.calls.append(("written", resource_type, created))

    def accessed(self, action: str, outcome: str) -> None:
        self.calls.append(("accessed", action, outcome))

    def integrity_failed(self) -> None:
        self.calls.append(("integrity_failed",))


def watched_reader(world: World, metrics: RecordingMetrics) -> RecordReader[Any]:
    """A reader over the world's store whose ledger reports to `metrics`."""
    key = world.chain.keys["records"]
    cipher = RecordCipher(key=key, random_bytes=counting_random())
    event_ids = itertools.count(1_000_000)
    ledger: RecordsLedger[Any] = RecordsLedger(
        vault=world.store,
        chain=world.store,
        audit=world.store,
        outbox=world.outbox,
        cipher=cipher,
        key=key,
        genesis=world.chain.config,
        pseudonym_key=PSEUDONYM_KEY,
        new_event_id=lambda now: uuid7(
            int(now.timestamp() * 1000), next(event_ids).to_bytes(10, "big")
        ),
        metrics=metrics,
    )
    return RecordReader(
        uow=world.database,
        ledger=ledger,
        vault=world.store,
        consents=world.store,
        audit=world.store,
        chain=world.store,
        cipher=cipher,
        clock=world.clock,
        new_id=lambda: "00000000-0000-4000-8000-00000000abcd",
    )


def test_a_read_is_counted(people: World) -> None:
    metrics = RecordingMetrics()
    record = create(people)
    watched_reader(people, metrics).read(people.did("patient"), record)
    assert metrics.calls == [("accessed", "read", "allowed")]


def test_a_corrupted_ciphertext_is_never_served_and_is_counted(people: World) -> None:
    metrics = RecordingMetrics()
    reader = watched_reader(people, metrics)
    record = create(people)
    state = people.store._state  # the fake's stored state: what a disk fault would change
    stored = state.versions[record, 1]
    flipped = bytes([stored.ciphertext[0] ^ 1]) + stored.ciphertext[1:]  # type: ignore[index]
    state.versions[record, 1] = replace(stored, ciphertext=flipped)
    before = people.events()
    with pytest.raises(IntegrityError, match="does not match its hash"):
        reader.read(people.did("patient"), record)
    with pytest.raises(IntegrityError):
        reader.export(people.did("patient"), people.did("patient"))
    assert metrics.calls == [("integrity_failed",), ("integrity_failed",)]
    assert people.events() == before  # nothing was disclosed, so nothing is audited


def test_a_version_whose_sealed_commitment_differs_is_never_served(people: World) -> None:
    metrics = RecordingMetrics()
    reader = watched_reader(people, metrics)
    record = create(people)
    created = people.events()[0]
    with people.database.transaction() as tx:
        people.store.apply_block(
            tx,
            practitioners=[],
            authorities={},
            patients={},
            marks=[SealedMark(created["id"], 3, "00" * 32)],
            position={"height": 3},
        )
    with pytest.raises(IntegrityError, match="differs from the sealed one"):
        reader.read(people.did("patient"), record)
    assert metrics.calls == [("integrity_failed",)]


def test_a_sealed_mark_without_a_commitment_falls_back_to_the_signed_event(
    people: World,
) -> None:
    record = create(people)
    created = people.events()[0]
    with people.database.transaction() as tx:
        people.store.apply_block(
            tx,
            practitioners=[],
            authorities={},
            patients={},
            marks=[SealedMark(created["id"], 3)],
            position={"height": 3},
        )
    integrity = people.reader.read(people.did("patient"), record)["integrity"]
    assert (integrity["checked_against"], integrity["sealed_height"]) == ("signed_event", 3)


def test_an_export_without_live_records_is_an_empty_bundle(people: World) -> None:
    assert (
        people.reader.export(people.did("patient"), people.did("patient"))["bundle"]["entry"] == []
    )


def test_a_grantee_for_payment_holding_a_wrapped_key_gets_the_envelope(people: World) -> None:
    record = create(people)
    grant(people, Purpose.PAYMENT)
    assert people.store.wrapped_key(record, people.did("second")) is not None
    people.reader.read(people.did("second"), record, purpose=Purpose.PAYMENT)
    answer = people.reader.envelope(people.did("second"), record, purpose=Purpose.PAYMENT)
    assert open_sealed(people.key("second"), b64url_decode(answer["wrapped_key"]))
