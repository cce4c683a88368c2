"""The records store on SQLite or PostgreSQL (its own Alembic migrations)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select

from services.records.adapters.sql_tables import (
    access_row,
    accesses_table,
    authorities_table,
    consent_row,
    consents_table,
    follower_table,
    head_row,
    heads_table,
    mark_row,
    patients_table,
    practitioner_row,
    practitioners_table,
    read_access,
    read_consent,
    read_head,
    read_mark,
    read_practitioner,
    read_version,
    read_wrap,
    sealed_table,
    stored_moment,
    version_row,
    versions_table,
    wrap_row,
    wraps_table,
)
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
from shared.store import Database, migrate

RECORDS_MIGRATIONS = Path(__file__).parent / "migrations"
RECORDS_VERSION_TABLE = "careledger_records_version"
_POSITION_ROW = 1
# Expanding IN lists stay well under SQLite's and psycopg's bound-parameter limits.
_CHUNK = 500
# One advisory lock serialises records changes on PostgreSQL (SQLite has one writer anyway).
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"careledger-records-vault").digest()[:8], "big") >> 1


def migrate_records_store(database: Database) -> str | None:
    """Create or upgrade the records service's tables; call once at start-up."""
    return migrate(database, RECORDS_MIGRATIONS, version_table=RECORDS_VERSION_TABLE)


class SqlRecordsStore:
    """`RecordVault`, `ConsentBook`, `AuditTrail` and `ChainView` of `Connection` on one SQL
    database."""

    def __init__(self, *, database: Database) -> None:
        self._database = database

    def lock(self, tx: Connection) -> None:
        if tx.dialect.name == "postgresql":
            tx.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})

    # --- RecordVault ------------------------------------------------------------------

    def add_record(self, tx: Connection, head: RecordHead, first: RecordVersion) -> None:
        if head.version != 1 or first.version != 1 or first.record_id != head.record_id:
            raise ValueError("a new record is stored with its own version 1")
        tx.execute(insert(heads_table).values(head_row(head)))
        tx.execute(insert(versions_table).values(version_row(first)))

    def add_version(self, tx: Connection, version: RecordVersion) -> None:
        query = select(heads_table.c.version, heads_table.c.erased_at).where(
            heads_table.c.record_id == version.record_id
        )
        current = tx.execute(query).first()
        _check_next(version, None if current is None else (current[0], current[1] is not None))
        tx.execute(insert(versions_table).values(version_row(version)))
        tx.execute(
            update(heads_table)
            .where(heads_table.c.record_id == version.record_id)
            .values(version=version.version)
        )

    def head(self, record_id: str, tx: Connection | None = None) -> RecordHead | None:
        query = select(heads_table).where(heads_table.c.record_id == record_id)
        return next((read_head(row) for row in self._rows(query, tx)), None)

    def version(
        self, record_id: str, version: int, tx: Connection | None = None
    ) -> RecordVersion | None:
        query = select(versions_table).where(
            versions_table.c.record_id == record_id, versions_table.c.version == version
        )
        return next((read_version(row) for row in self._rows(query, tx)), None)

    def records_of(self, patient: str, tx: Connection | None = None) -> Sequence[RecordHead]:
        query = (
            select(heads_table)
            .where(heads_table.c.patient == patient)
            .order_by(heads_table.c.created_at, heads_table.c.record_id)
        )
        return [read_head(row) for row in self._rows(query, tx)]

    def add_wraps(self, tx: Connection, wraps: Iterable[WrappedKey]) -> int:
        wanted: dict[tuple[str, str], WrappedKey] = {}
        for wrap in wraps:  # the first of a pair given twice wins, as a stored one does
            wanted.setdefault((wrap.record_id, wrap.recipient), wrap)
        if not wanted:
            return 0
        # Selecting what exists, in the transaction that inserts, works alike on SQLite and
        # PostgreSQL; the lock (or SQLite's single writer) keeps it from racing.
        records = sorted({record_id for record_id, _ in wanted})
        query = select(wraps_table.c.record_id, wraps_table.c.recipient).where(
            wraps_table.c.record_id.in_(bindparam("records", expanding=True))
        )
        stored: set[tuple[str, str]] = set()
        for part in _chunks(records):
            stored.update((row[0], row[1]) for row in tx.execute(query, {"records": part}))
        new = [wrap_row(wrap) for pair, wrap in wanted.items() if pair not in stored]
        if new:
            tx.execute(insert(wraps_table), new)
        return len(new)

    def wrapped_key(
        self, record_id: str, recipient: str, tx: Connection | None = None
    ) -> WrappedKey | None:
        query = select(wraps_table).where(
            wraps_table.c.record_id == record_id, wraps_table.c.recipient == recipient
        )
        return next((read_wrap(row) for row in self._rows(query, tx)), None)

    def drop_wraps(self, tx: Connection, consent_id: str) -> int:
        dropped = tx.execute(delete(wraps_table).where(wraps_table.c.consent_id == consent_id))
        return int(dropped.rowcount)

    def forget_deleted(self) -> bool:
        """SQLite: checkpoint the write-ahead log into the database file, where
        `secure_delete` zeroed the deleted bytes, and truncate it; until then the WAL keeps
        the frames written before the deletion (the keys themselves). False if a reader
        kept the checkpoint from completing within the busy timeout. PostgreSQL: nothing
        this process can do (dead tuples until VACUUM, the WAL archive; docs/deploy.md),
        so True."""
        if self._database.dialect != "sqlite":
            return True
        connection = self._database.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                # Outside any transaction (the connection is in autocommit mode): SQLite
                # refuses to checkpoint inside one.
                busy, _, _ = cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()
        return not busy

    def shred(self, tx: Connection, record_id: str, erasure: Erasure) -> None:
        erased = tx.execute(
            update(heads_table)
            .where(heads_table.c.record_id == record_id)
            .values(
                custody_key=None,
                salt=None,
                erased_at=stored_moment(erasure.at),
                erased_by=erasure.by.value,
                erase_event_id=erasure.event_id,
            )
        ).rowcount
        if not erased:
            raise ValueError(f"no record {record_id} to erase")
        tx.execute(delete(wraps_table).where(wraps_table.c.record_id == record_id))
        tx.execute(
            update(versions_table)
            .where(versions_table.c.record_id == record_id)
            .values(nonce=None, ciphertext=None)
        )

    # --- ConsentBook ------------------------------------------------------------------

    def add_consent(self, tx: Connection, consent: Consent) -> None:
        tx.execute(insert(consents_table).values(consent_row(consent)))

    def revoke_consent(self, tx: Connection, consent: Consent) -> None:
        if consent.revoked_at is None or consent.revoke_event_id is None:
            raise ValueError("a revocation needs its time and event id")
        revoked = tx.execute(
            update(consents_table)
            .where(consents_table.c.consent_id == consent.consent_id)
            .values(
                revoked_at=stored_moment(consent.revoked_at),
                revoke_event_id=consent.revoke_event_id,
            )
        ).rowcount
        if not revoked:
            raise ValueError(f"no consent {consent.consent_id} to revoke")

    def consent(self, consent_id: str, tx: Connection | None = None) -> Consent | None:
        query = select(consents_table).where(consents_table.c.consent_id == consent_id)
        return next((read_consent(row) for row in self._rows(query, tx)), None)

    def consents_of(self, patient: str, tx: Connection | None = None) -> Sequence[Consent]:
        return self._consents(consents_table.c.patient == patient, tx)

    def consents_for(self, grantee: str, tx: Connection | None = None) -> Sequence[Consent]:
        return self._consents(consents_table.c.grantee == grantee, tx)

    # --- AuditTrail -------------------------------------------------------------------

    def add_access(self, tx: Connection, entry: AccessEntry) -> None:
        tx.execute(insert(accesses_table).values(access_row(entry)))

    def disclosures(self, patient: str) -> Sequence[AccessEntry]:
        query = (
            select(accesses_table)
            .where(accesses_table.c.patient == patient)
            .order_by(accesses_table.c.seq)
        )
        return [read_access(row) for row in self._rows(query, None)]

    # --- ChainView --------------------------------------------------------------------

    def practitioner(self, did: str, tx: Connection | None = None) -> Practitioner | None:
        query = select(practitioners_table).where(practitioners_table.c.did == did)
        return next((read_practitioner(row) for row in self._rows(query, tx)), None)

    def patient_registered(self, pseudonym: str, tx: Connection | None = None) -> bool:
        query = select(patients_table.c.pseudonym).where(patients_table.c.pseudonym == pseudonym)
        return bool(self._rows(query, tx))

    def authorities(self, tx: Connection | None = None) -> frozenset[str]:
        return frozenset(row[0] for row in self._rows(select(authorities_table.c.did), tx))

    def sealed(self, event_ids: Collection[str]) -> Mapping[str, SealedMark]:
        query = select(sealed_table).where(
            sealed_table.c.event_id.in_(bindparam("ids", expanding=True))
        )
        found: dict[str, SealedMark] = {}
        with self._database.read() as connection:
            for part in _chunks(sorted(set(event_ids))):
                for row in connection.execute(query, {"ids": part}):
                    mark = read_mark(row)
                    found[mark.event_id] = mark
        return found

    def apply_block(
        self,
        tx: Connection,
        *,
        practitioners: Sequence[Practitioner],
        authorities: Mapping[str, int],
        patients: Mapping[str, int],
        marks: Sequence[SealedMark],
        position: Mapping[str, Any],
    ) -> None:
        for practitioner in practitioners:  # in order: a later standing of a DID wins
            row = practitioner_row(practitioner)
            replaced = tx.execute(
                update(practitioners_table)
                .where(practitioners_table.c.did == practitioner.did)
                .values(row)
            ).rowcount
            if not replaced:
                tx.execute(insert(practitioners_table).values(row))
        self._add_new(tx, authorities_table.c.did, authorities)
        self._add_new(tx, patients_table.c.pseudonym, patients)
        fresh: dict[str, SealedMark] = {}
        for mark in marks:  # a mark given twice keeps its first height, as a stored one does
            fresh.setdefault(mark.event_id, mark)
        sealed = self._present(tx, sealed_table.c.event_id, fresh)
        new_marks = [mark_row(mark) for key, mark in fresh.items() if key not in sealed]
        if new_marks:
            tx.execute(insert(sealed_table), new_marks)
        self._save_position(tx, position)

    def position(self) -> Mapping[str, Any] | None:
        query = select(follower_table.c.position).where(follower_table.c.id == _POSITION_ROW)
        with self._database.read() as connection:
            stored = connection.execute(query).scalar_one_or_none()
        if stored is None:
            return None
        value: dict[str, Any] = json.loads(stored)
        return value

    # --- helpers ----------------------------------------------------------------------

    def _save_position(self, tx: Connection, position: Mapping[str, Any]) -> None:
        text_value = json.dumps(dict(position), sort_keys=True)
        updated = tx.execute(
            update(follower_table)
            .where(follower_table.c.id == _POSITION_ROW)
            .values(position=text_value)
        ).rowcount
        if not updated:
            tx.execute(insert(follower_table).values(id=_POSITION_ROW, position=text_value))

    def _add_new(self, tx: Connection, key: Any, heights: Mapping[str, int]) -> None:
        # One already registered keeps the height it was first registered at.
        known = self._present(tx, key, heights)
        new = [
            {key.name: name, "since": height}
            for name, height in heights.items()
            if name not in known
        ]
        if new:
            tx.execute(insert(key.table), new)

    @staticmethod
    def _present(tx: Connection, column: Any, keys: Iterable[str]) -> set[str]:
        query = select(column).where(column.in_(bindparam("keys", expanding=True)))
        found: set[str] = set()
        for part in _chunks(sorted(keys)):
            found.update(row[0] for row in tx.execute(query, {"keys": part}))
        return found

    def _consents(self, where: Any, tx: Connection | None) -> list[Consent]:
        query = (
            select(consents_table)
            .where(where)
            .order_by(consents_table.c.granted_at, consents_table.c.consent_id)
        )
        return [read_consent(row) for row in self._rows(query, tx)]

    def _rows(self, query: Select[Any], tx: Connection | None) -> list[Row[Any]]:
        if tx is not None:
            return list(tx.execute(query))
        with self._database.read() as connection:
            return list(connection.execute(query))


def _check_next(version: RecordVersion, current: tuple[int, bool] | None) -> None:
    # A bug guard: the service checks the version (and erasure) before it writes.
    if current is None:
        raise ValueError(f"no record {version.record_id} to add a version to")
    latest, erased = current
    if erased:
        raise ValueError(f"record {version.record_id} is erased")
    if version.version != latest + 1:
        raise ValueError(f"version {version.version} does not follow version {latest}")


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]
