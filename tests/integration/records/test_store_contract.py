"""The records store contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import inspect

from services.records.adapters.memory import MemoryRecordsStore
from services.records.adapters.sql import SqlRecordsStore, migrate_records_store
from services.records.adapters.sql_tables import metadata
from services.records.core.model import (
    AccessEntry,
    Consent,
    Erasure,
    Practitioner,
    RecordHead,
    RecordVersion,
    SealedMark,
    WrappedKey,
)
from shared.events.records import AccessAction, AccessOutcome, ActorRole, Purpose
from shared.store import MemoryDatabase
from tests.integration.store.backends import BACKENDS, reopen, sql_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
DURABLE_PARAMS = [param for param in PARAMS if param.values[0] != "memory"]
# Not UTC, with microseconds: what is read back must equal what was stored.
T0 = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
PATIENT, OTHER_PATIENT = "aa" * 32, "bb" * 32
AUTHOR, GRANTEE = "did:key:z6MkAuthor", "did:key:z6MkGrantee"
R1 = "00000000-0000-4000-8000-000000000001"
R2 = "00000000-0000-4000-8000-000000000002"
C1 = "00000000-0000-4000-8000-00000000000c"
C2 = "00000000-0000-4000-8000-00000000000d"
R9 = "00000000-0000-4000-8000-000000000009"
C9 = "00000000-0000-4000-8000-0000000000c9"
CT, BIG = b"\x00ct", bytes(range(256)) * 4096  # up to 1 MiB of ciphertext
PURPOSE = Purpose.PATIENT_REQUEST
MARK = SealedMark("ev-1", 1, "c" * 64)


class Units(Protocol):
    def transaction(self) -> AbstractContextManager[Any]: ...


Backend = tuple[Any, Units]


@pytest.fixture(params=PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryDatabase()
        yield MemoryRecordsStore(database=memory), memory
        return
    with sql_database(request.param, tmp_path) as (database, _):
        migrate_records_store(database)
        migrate_records_store(database)  # idempotent
        yield SqlRecordsStore(database=database), database


def head(record_id: str = R1, *, patient: str = PATIENT, at: datetime = T0) -> RecordHead:
    return RecordHead(
        record_id=record_id,
        patient=patient,
        author=AUTHOR,
        resource_type="Observation",
        version=1,
        created_at=at,
        custody_key=b"custody-" + record_id.encode(),
        salt=b"salt-" + record_id.encode(),
    )


def version(record_id: str = R1, number: int = 1, *, ciphertext: bytes = CT) -> RecordVersion:
    return RecordVersion(
        record_id=record_id,
        version=number,
        author=AUTHOR,
        created_at=T0 + timedelta(minutes=number),
        nonce=b"n" * 24,
        ciphertext=ciphertext,
        ciphertext_hash="c" * 64,
        commitment=f"{number:064x}",
        envelope_signature="sig-" + record_id,
        event_id=f"ev-{record_id}-{number}",
    )


def consent(consent_id: str = C1, *, patient: str = PATIENT, at: datetime = T0) -> Consent:
    return Consent(
        consent_id=consent_id,
        patient=patient,
        grantee=GRANTEE if patient == PATIENT else AUTHOR,
        resource_types=("Observation", "Condition"),
        purpose=Purpose.TREATMENT,
        expires=at + timedelta(days=30),
        granted_at=at,
        event_id="ev-" + consent_id,
    )


def access(event_id: str, *, patient: str = PATIENT, at: datetime = T0) -> AccessEntry:
    return AccessEntry(
        event_id=event_id,
        at=at,
        patient=patient,
        action=AccessAction.BREAK_GLASS,
        outcome=AccessOutcome.ALLOWED,
        purpose=Purpose.EMERGENCY_TREATMENT,
        role=ActorRole.PRACTITIONER,
        actor=AUTHOR,
        record_id=R1,
        version=2,
        consent_id=C1,
        reason_sealed=b"\x01sealed reason",
    )


def practitioner(did: str = AUTHOR, *, since: int = 3, revoked: int | None = None) -> Practitioner:
    return Practitioner(
        did=did,
        since=since,
        issuer="did:key:z6MkBoard",
        credential="d" * 64,
        valid_from=T0 - timedelta(days=365),
        valid_until=T0 + timedelta(days=365),
        revoked=revoked,
    )


SMALL_BLOCK: dict[str, Any] = {
    "practitioners": [practitioner()],
    "authorities": {"did:b": 1},
    "patients": {PATIENT: 1},
    "marks": [MARK],
}


def block(store: Any, tx: Any, **changes: Any) -> None:
    effects: dict[str, Any] = {
        "practitioners": [],
        "authorities": {},
        "patients": {},
        "marks": [],
        "position": {"height": 1},
    }
    store.apply_block(tx, **(effects | changes))


def add_record(backend: Backend, record: RecordHead, first: RecordVersion) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.add_record(tx, record, first)


def test_an_empty_store_has_nothing(backend: Backend) -> None:
    store, _ = backend
    assert store.head(R1) is None
    assert store.version(R1, 1) is None
    assert list(store.records_of(PATIENT)) == []
    assert store.wrapped_key(R1, GRANTEE) is None
    assert store.consent(C1) is None
    assert list(store.consents_of(PATIENT)) == []
    assert list(store.consents_for(GRANTEE)) == []
    assert list(store.disclosures(PATIENT)) == []
    assert store.practitioner(AUTHOR) is None
    assert not store.patient_registered(PATIENT)
    assert store.authorities() == frozenset()
    assert dict(store.sealed(["ev"])) == {}
    assert store.position() is None


def test_records_and_versions_round_trip_oldest_first(backend: Backend) -> None:
    store, units = backend
    later, earlier = head(R1, at=T0 + timedelta(hours=1)), head(R2)
    first, second = version(R1), version(R1, 2, ciphertext=BIG)
    add_record(backend, later, first)
    add_record(backend, earlier, version(R2))
    add_record(backend, head(R9, patient=OTHER_PATIENT), version(R9))
    with units.transaction() as tx:
        store.lock(tx)
        store.add_version(tx, second)
    assert store.head(R1) == replace(later, version=2)
    assert store.head(R1).created_at == T0 + timedelta(hours=1)
    assert store.version(R1, 1) == first
    assert store.version(R1, 2) == second
    assert store.version(R1, 2).ciphertext == BIG
    assert store.version(R1, 3) is None
    assert list(store.records_of(PATIENT)) == [earlier, replace(later, version=2)]
    with units.transaction() as tx:  # reads inside a transaction see the same
        assert store.head(R2, tx) == earlier
        assert store.version(R1, 1, tx) == first
        assert [h.record_id for h in store.records_of(PATIENT, tx)] == [R2, R1]


def test_a_version_must_follow_the_latest_one(backend: Backend) -> None:
    store, units = backend
    add_record(backend, head(), version())
    for wrong in (version(R1, 1), version(R1, 3), version(R2, 2)):
        with pytest.raises(ValueError), units.transaction() as tx:  # noqa: PT011
            store.add_version(tx, replace(wrong, event_id="other"))
    with pytest.raises(ValueError), units.transaction() as tx:  # noqa: PT011
        store.add_record(tx, replace(head(R2), version=2), version(R2, 2))
    assert store.head(R1) == head()
    assert store.version(R1, 3) is None
    assert store.head(R2) is None


def test_a_record_id_and_an_event_id_are_stored_once(backend: Backend) -> None:
    store, units = backend
    add_record(backend, head(), version())
    with pytest.raises(Exception):  # noqa: B017,PT011 - IntegrityError or ValueError
        add_record(backend, head(), replace(version(), event_id="fresh"))
    with pytest.raises(Exception):  # noqa: B017,PT011 - the same event id
        add_record(backend, head(R2), replace(version(R2), event_id=version().event_id))
    with pytest.raises(Exception), units.transaction() as tx:  # noqa: B017,PT011
        store.add_version(tx, replace(version(R1, 2), event_id=version().event_id))
    assert store.head(R2) is None
    assert store.version(R1, 2) is None
    assert list(store.records_of(PATIENT)) == [head()]


def test_wraps_are_added_once_per_record_and_recipient(backend: Backend) -> None:
    store, units = backend
    mine = WrappedKey(R1, AUTHOR, b"sealed-for-author")
    theirs = WrappedKey(R1, GRANTEE, b"sealed-for-grantee", consent_id=C1)
    with units.transaction() as tx:
        assert store.add_wraps(tx, [mine, theirs, replace(mine, sealed_key=b"dup")]) == 2
        assert store.add_wraps(tx, []) == 0
    with units.transaction() as tx:
        again = [replace(theirs, sealed_key=b"other"), WrappedKey(R2, GRANTEE, b"k2", C1)]
        assert store.add_wraps(tx, again) == 1
    assert store.wrapped_key(R1, AUTHOR) == mine
    assert store.wrapped_key(R1, GRANTEE) == theirs  # left alone
    assert store.wrapped_key(R2, GRANTEE, None) == WrappedKey(R2, GRANTEE, b"k2", C1)
    assert store.wrapped_key(R2, AUTHOR) is None
    with units.transaction() as tx:
        assert store.wrapped_key(R1, GRANTEE, tx) == theirs
        assert store.drop_wraps(tx, C1) == 2
        assert store.drop_wraps(tx, C2) == 0
    assert store.wrapped_key(R1, GRANTEE) is None
    assert store.wrapped_key(R2, GRANTEE) is None
    assert store.wrapped_key(R1, AUTHOR) == mine


def test_shredding_leaves_hashes_and_no_key_or_ciphertext(backend: Backend) -> None:
    store, units = backend
    add_record(backend, head(), version(ciphertext=BIG))
    add_record(backend, head(R2), version(R2))
    erasure = Erasure(at=T0 + timedelta(days=1), by=ActorRole.PATIENT, event_id="ev-erase")
    with units.transaction() as tx:
        store.lock(tx)
        store.add_version(tx, version(R1, 2))
        store.add_wraps(tx, [WrappedKey(R1, AUTHOR, b"k1"), WrappedKey(R1, GRANTEE, b"k2", C1)])
        store.add_wraps(tx, [WrappedKey(R2, AUTHOR, b"k3")])
    with units.transaction() as tx:
        store.lock(tx)
        store.shred(tx, R1, erasure)
    erased = store.head(R1)
    assert erased == replace(head(), version=2, custody_key=None, salt=None, erasure=erasure)
    assert erased.erased
    assert erased.erasure.by is ActorRole.PATIENT
    for number in (1, 2):
        kept = replace(version(R1, number), nonce=None, ciphertext=None)
        assert store.version(R1, number) == kept  # hashes, commitment and signature stay
    assert store.wrapped_key(R1, AUTHOR) is None
    assert store.wrapped_key(R1, GRANTEE) is None
    with units.transaction() as tx:  # nothing is left to drop: the wraps rows are gone
        assert store.drop_wraps(tx, C1) == 0
    assert list(store.records_of(PATIENT)) == [erased, head(R2)]  # same time: by id
    # The other record is untouched, and an erased record takes no new version.
    assert store.head(R2) == head(R2)
    assert store.wrapped_key(R2, AUTHOR) == WrappedKey(R2, AUTHOR, b"k3")
    with pytest.raises(ValueError), units.transaction() as tx:  # noqa: PT011
        store.add_version(tx, version(R1, 3))
    with pytest.raises(ValueError), units.transaction() as tx:  # noqa: PT011
        store.shred(tx, "00000000-0000-4000-8000-0000000000ff", erasure)


def test_consents_filter_order_and_revoke(backend: Backend) -> None:
    store, units = backend
    later = consent(C1, at=T0 + timedelta(hours=1))
    earlier = replace(consent(C2), resource_types=())
    elsewhere = consent(C9, patient=OTHER_PATIENT)  # granted to AUTHOR
    with units.transaction() as tx:
        store.lock(tx)
        for item in (later, earlier, elsewhere):
            store.add_consent(tx, item)
    assert store.consent(C1) == later
    assert store.consent(C2).resource_types == ()
    assert store.consent(C1).purpose is Purpose.TREATMENT
    assert list(store.consents_of(PATIENT)) == [earlier, later]
    assert list(store.consents_for(GRANTEE)) == [earlier, later]
    assert list(store.consents_for(AUTHOR)) == [elsewhere]
    assert list(store.consents_of(OTHER_PATIENT)) == [elsewhere]
    revoked = replace(later, revoked_at=T0 + timedelta(hours=2), revoke_event_id="ev-revoke")
    with units.transaction() as tx:
        assert store.consent(C1, tx) == later
        store.revoke_consent(tx, revoked)
    assert store.consent(C1) == revoked
    assert not store.consent(C1).in_force(T0 + timedelta(hours=3))
    assert list(store.consents_of(PATIENT, None)) == [earlier, revoked]
    with pytest.raises(Exception), units.transaction() as tx:  # noqa: B017,PT011
        store.add_consent(tx, replace(later, revoked_at=None))
    with pytest.raises(ValueError), units.transaction() as tx:  # noqa: PT011
        store.revoke_consent(tx, replace(revoked, consent_id=R9))  # no such consent
    assert store.consent(C1) == revoked


def test_disclosures_are_the_patients_accesses_in_order(backend: Backend) -> None:
    store, units = backend
    first = access("a1", at=T0 + timedelta(hours=5))  # listed in the order recorded
    plain = AccessEntry(
        "a2", T0, PATIENT, AccessAction.EXPORT, AccessOutcome.DENIED, PURPOSE, ActorRole.PATIENT
    )
    other = access("a3", patient=OTHER_PATIENT)
    with units.transaction() as tx:
        store.add_access(tx, first)
        store.add_access(tx, other)
    with units.transaction() as tx:
        store.add_access(tx, plain)
    assert list(store.disclosures(PATIENT)) == [first, plain]
    assert list(store.disclosures(OTHER_PATIENT)) == [other]
    got = store.disclosures(PATIENT)[0]
    assert got.action is AccessAction.BREAK_GLASS
    assert (got.outcome, got.role) == (AccessOutcome.ALLOWED, ActorRole.PRACTITIONER)
    with pytest.raises(Exception), units.transaction() as tx:  # noqa: B017,PT011
        store.add_access(tx, replace(plain, patient=OTHER_PATIENT))
    assert list(store.disclosures(OTHER_PATIENT)) == [other]


def test_applying_a_block_is_idempotent_and_keeps_first_heights(backend: Backend) -> None:
    store, units = backend
    marks = [SealedMark("ev-1", 5, "c" * 64), SealedMark("ev-2", 5)]
    effects: dict[str, Any] = {
        "practitioners": [practitioner()],
        "authorities": {"did:key:z6MkBoard": 4},
        "patients": {PATIENT: 5},
        "marks": marks,
        "position": {"height": 5, "head": "h5", "offsets": {"b": 2, "a": 1}},
    }
    for _ in range(2):
        with units.transaction() as tx:
            store.lock(tx)
            block(store, tx, **effects)
        assert store.practitioner(AUTHOR) == practitioner()
        assert store.authorities() == frozenset({"did:key:z6MkBoard"})
        assert store.patient_registered(PATIENT)
        assert dict(store.sealed(["ev-1", "ev-2", "ev-3"])) == {m.event_id: m for m in marks}
        assert store.position() == effects["position"]
    revoked = practitioner(revoked=9)
    with units.transaction() as tx:
        assert store.practitioner(AUTHOR, tx) == practitioner()
        assert store.patient_registered(PATIENT, tx)
        assert not store.patient_registered(OTHER_PATIENT, tx)
        assert store.authorities(tx) == frozenset({"did:key:z6MkBoard"})
        block(
            store,
            tx,
            practitioners=[practitioner(GRANTEE, since=8), revoked],
            authorities={"did:key:z6MkBoard": 9, "did:key:z6MkOther": 9},
            patients={PATIENT: 9, OTHER_PATIENT: 9},
            marks=[SealedMark("ev-1", 9, "e" * 64), SealedMark("ev-3", 9)],
            position={"height": 9},
        )
    assert store.practitioner(AUTHOR) == revoked  # the standing is replaced
    assert not store.practitioner(AUTHOR).active(T0)
    assert store.practitioner(GRANTEE, None) == practitioner(GRANTEE, since=8)
    assert store.authorities(None) == frozenset({"did:key:z6MkBoard", "did:key:z6MkOther"})
    assert store.patient_registered(OTHER_PATIENT, None)
    assert dict(store.sealed({"ev-1", "ev-3"})) == {
        "ev-1": marks[0],  # a stored mark is left alone
        "ev-3": SealedMark("ev-3", 9),
    }
    assert dict(store.sealed([])) == {}
    assert store.position() == {"height": 9}


def test_a_rolled_back_transaction_leaves_nothing(backend: Backend) -> None:
    store, units = backend
    add_record(backend, head(R2), version(R2))
    with units.transaction() as tx:
        store.add_wraps(tx, [WrappedKey(R2, GRANTEE, b"k", C2)])

    def write_then_fail() -> None:
        with units.transaction() as tx:
            store.lock(tx)
            store.add_record(tx, head(), version())
            store.add_version(tx, version(R1, 2))
            store.add_wraps(tx, [WrappedKey(R1, GRANTEE, b"k")])
            store.drop_wraps(tx, C2)
            store.shred(tx, R2, Erasure(T0, ActorRole.ADMIN, "ev-erase"))
            store.add_consent(tx, consent())
            store.add_access(tx, access("a1"))
            block(store, tx, **SMALL_BLOCK)
            raise RuntimeError("the outbox write failed")

    with pytest.raises(RuntimeError):
        write_then_fail()
    assert store.head(R1) is None
    assert store.version(R1, 1) is None
    assert store.wrapped_key(R1, GRANTEE) is None
    assert store.head(R2) == head(R2)
    assert store.version(R2, 1) == version(R2)
    assert store.wrapped_key(R2, GRANTEE) == WrappedKey(R2, GRANTEE, b"k", C2)
    assert store.consent(C1) is None
    assert list(store.disclosures(PATIENT)) == []
    assert store.practitioner(AUTHOR) is None
    assert store.authorities() == frozenset()
    assert not store.patient_registered(PATIENT)
    assert dict(store.sealed(["ev-1"])) == {}
    assert store.position() is None


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_store_survives_a_reopen(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, args):
        migrate_records_store(database)
        store = SqlRecordsStore(database=database)
        wrap = WrappedKey(R1, GRANTEE, b"k", C1)
        with database.transaction() as tx:
            store.lock(tx)
            store.add_record(tx, head(), version(ciphertext=BIG))
            store.add_wraps(tx, [wrap])
            store.add_consent(tx, consent())
            store.add_access(tx, access("a1"))
            block(store, tx, **SMALL_BLOCK)
        with reopen(args) as again:
            reread = SqlRecordsStore(database=again)
            assert reread.head(R1) == head()
            assert reread.version(R1, 1) == version(ciphertext=BIG)
            assert reread.wrapped_key(R1, GRANTEE) == wrap
            assert reread.consent(C1) == consent()
            assert list(reread.disclosures(PATIENT)) == [access("a1")]
            assert reread.practitioner(AUTHOR) == practitioner()
            assert reread.authorities() == frozenset({"did:b"})
            assert reread.patient_registered(PATIENT)
            assert dict(reread.sealed(["ev-1"])) == {"ev-1": MARK}
            assert reread.position() == {"height": 1}
            assert reread.head(R1).created_at.tzinfo is not None


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_naive_datetimes_are_refused(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        migrate_records_store(database)
        store = SqlRecordsStore(database=database)
        with pytest.raises(ValueError, match="aware"), database.transaction() as tx:
            store.add_consent(tx, consent(at=datetime(2026, 11, 25)))
        assert store.consent(C1) is None


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_table_definitions_mirror_the_migrations(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        migrate_records_store(database)
        with database.read() as connection:
            found = inspect(connection)
            for table in metadata.sorted_tables:
                columns = {column["name"] for column in found.get_columns(table.name)}
                assert columns == {column.name for column in table.columns}
                indexes = {index["name"] for index in found.get_indexes(table.name)}
                assert {index.name for index in table.indexes} <= indexes
