"""The records store's tables as its queries see them (the migrations create them), and how
the stored values become rows and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Row

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

__all__ = [
    "access_row",
    "accesses_table",
    "authorities_table",
    "consent_row",
    "consents_table",
    "follower_table",
    "head_row",
    "heads_table",
    "mark_row",
    "metadata",
    "patients_table",
    "practitioner_row",
    "practitioners_table",
    "read_access",
    "read_consent",
    "read_head",
    "read_mark",
    "read_practitioner",
    "read_version",
    "read_wrap",
    "sealed_table",
    "stored_moment",
    "version_row",
    "versions_table",
    "wrap_row",
    "wraps_table",
]

_ID = BigInteger().with_variant(Integer(), "sqlite")


def _moment(name: str, *, nullable: bool = False) -> Column[object]:
    # Aware on PostgreSQL; SQLite keeps the wall time only, so the adapter writes UTC.
    return Column(name, DateTime(timezone=True), nullable=nullable)


metadata = MetaData()
#: Mirror the migrations; queries use these, migrations do not.
heads_table = Table(
    "records_heads",
    metadata,
    Column("record_id", String(64), primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("author", String(256), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("version", Integer(), nullable=False),
    _moment("created_at"),
    Column("custody_key", LargeBinary(), nullable=True),
    Column("salt", LargeBinary(), nullable=True),
    _moment("erased_at", nullable=True),
    Column("erased_by", String(32), nullable=True),
    Column("erase_event_id", String(64), nullable=True),
    Index("ix_records_heads_patient", "patient"),
)
versions_table = Table(
    "records_versions",
    metadata,
    Column("record_id", String(64), nullable=False),
    Column("version", Integer(), nullable=False),
    Column("author", String(256), nullable=False),
    _moment("created_at"),
    Column("nonce", LargeBinary(), nullable=True),
    Column("ciphertext", LargeBinary(), nullable=True),
    Column("ciphertext_hash", String(64), nullable=False),
    Column("commitment", String(64), nullable=False),
    Column("envelope_signature", Text(), nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    PrimaryKeyConstraint("record_id", "version", name="pk_records_versions"),
)
wraps_table = Table(
    "records_wraps",
    metadata,
    Column("record_id", String(64), nullable=False),
    Column("recipient", String(256), nullable=False),
    Column("sealed_key", LargeBinary(), nullable=False),
    Column("consent_id", String(64), nullable=True),
    PrimaryKeyConstraint("record_id", "recipient", name="pk_records_wraps"),
    Index("ix_records_wraps_consent_id", "consent_id"),
)
consents_table = Table(
    "records_consents",
    metadata,
    Column("consent_id", String(64), primary_key=True),
    Column("patient", String(64), nullable=False),
    Column("grantee", String(256), nullable=False),
    Column("resource_types", Text(), nullable=False),
    Column("purpose", String(16), nullable=False),
    _moment("expires"),
    _moment("granted_at"),
    Column("event_id", String(64), nullable=False, unique=True),
    _moment("revoked_at", nullable=True),
    Column("revoke_event_id", String(64), nullable=True),
    Index("ix_records_consents_patient", "patient"),
    Index("ix_records_consents_grantee", "grantee"),
)
accesses_table = Table(
    "records_accesses",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False, unique=True),
    _moment("at"),
    Column("patient", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("role", String(32), nullable=False),
    Column("actor", String(256), nullable=True),
    Column("record_id", String(64), nullable=True),
    Column("version", Integer(), nullable=True),
    Column("consent_id", String(64), nullable=True),
    Column("reason_sealed", LargeBinary(), nullable=True),
    Index("ix_records_accesses_patient", "patient"),
    sqlite_autoincrement=True,
)
practitioners_table = Table(
    "records_practitioners",
    metadata,
    Column("did", String(256), primary_key=True),
    Column("since", BigInteger(), nullable=False),
    Column("issuer", String(256), nullable=False),
    Column("credential", String(64), nullable=False),
    _moment("valid_from"),
    _moment("valid_until", nullable=True),
    Column("revoked", BigInteger(), nullable=True),
)
authorities_table = Table(
    "records_authorities",
    metadata,
    Column("did", String(256), primary_key=True),
    Column("since", BigInteger(), nullable=False),
)
patients_table = Table(
    "records_patients",
    metadata,
    Column("pseudonym", String(64), primary_key=True),
    Column("since", BigInteger(), nullable=False),
)
sealed_table = Table(
    "records_sealed",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("height", BigInteger(), nullable=False),
    Column("commitment", String(64), nullable=True),
)
follower_table = Table(
    "records_follower",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("position", Text(), nullable=False),
)


def stored_moment(moment: datetime) -> datetime:
    # SQLite stores the wall time without its offset: write UTC so reading back is exact.
    if moment.tzinfo is None:
        raise ValueError("the records store keeps aware datetimes only")
    return moment.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite returns naive datetimes; they were written in UTC.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _maybe_aware(moment: datetime | None) -> datetime | None:
    return None if moment is None else _aware(moment)


def head_row(head: RecordHead) -> dict[str, object]:
    erasure = head.erasure
    return {
        "record_id": head.record_id,
        "patient": head.patient,
        "author": head.author,
        "resource_type": head.resource_type,
        "version": head.version,
        "created_at": stored_moment(head.created_at),
        "custody_key": head.custody_key,
        "salt": head.salt,
        "erased_at": None if erasure is None else stored_moment(erasure.at),
        "erased_by": None if erasure is None else erasure.by.value,
        "erase_event_id": None if erasure is None else erasure.event_id,
    }


def read_head(row: Row[Any]) -> RecordHead:
    values = row._mapping
    erasure = None
    if values["erased_at"] is not None:
        erasure = Erasure(
            at=_aware(values["erased_at"]),
            by=ActorRole(values["erased_by"]),
            event_id=values["erase_event_id"],
        )
    return RecordHead(
        record_id=values["record_id"],
        patient=values["patient"],
        author=values["author"],
        resource_type=values["resource_type"],
        version=int(values["version"]),
        created_at=_aware(values["created_at"]),
        custody_key=values["custody_key"],
        salt=values["salt"],
        erasure=erasure,
    )


def version_row(version: RecordVersion) -> dict[str, object]:
    return {
        "record_id": version.record_id,
        "version": version.version,
        "author": version.author,
        "created_at": stored_moment(version.created_at),
        "nonce": version.nonce,
        "ciphertext": version.ciphertext,
        "ciphertext_hash": version.ciphertext_hash,
        "commitment": version.commitment,
        "envelope_signature": version.envelope_signature,
        "event_id": version.event_id,
    }


def read_version(row: Row[Any]) -> RecordVersion:
    values = dict(row._mapping)
    values["created_at"] = _aware(values["created_at"])
    values["version"] = int(values["version"])
    return RecordVersion(**values)


def wrap_row(wrap: WrappedKey) -> dict[str, object]:
    return {
        "record_id": wrap.record_id,
        "recipient": wrap.recipient,
        "sealed_key": wrap.sealed_key,
        "consent_id": wrap.consent_id,
    }


def read_wrap(row: Row[Any]) -> WrappedKey:
    return WrappedKey(**row._mapping)


def consent_row(consent: Consent) -> dict[str, object]:
    revoked_at = consent.revoked_at
    return {
        "consent_id": consent.consent_id,
        "patient": consent.patient,
        "grantee": consent.grantee,
        "resource_types": json.dumps(list(consent.resource_types)),
        "purpose": consent.purpose.value,
        "expires": stored_moment(consent.expires),
        "granted_at": stored_moment(consent.granted_at),
        "event_id": consent.event_id,
        "revoked_at": None if revoked_at is None else stored_moment(revoked_at),
        "revoke_event_id": consent.revoke_event_id,
    }


def read_consent(row: Row[Any]) -> Consent:
    values = row._mapping
    return Consent(
        consent_id=values["consent_id"],
        patient=values["patient"],
        grantee=values["grantee"],
        resource_types=tuple(json.loads(values["resource_types"])),
        purpose=Purpose(values["purpose"]),
        expires=_aware(values["expires"]),
        granted_at=_aware(values["granted_at"]),
        event_id=values["event_id"],
        revoked_at=_maybe_aware(values["revoked_at"]),
        revoke_event_id=values["revoke_event_id"],
    )


def access_row(entry: AccessEntry) -> dict[str, object]:
    return {
        "event_id": entry.event_id,
        "at": stored_moment(entry.at),
        "patient": entry.patient,
        "action": entry.action.value,
        "outcome": entry.outcome.value,
        "purpose": entry.purpose.value,
        "role": entry.role.value,
        "actor": entry.actor,
        "record_id": entry.record_id,
        "version": entry.version,
        "consent_id": entry.consent_id,
        "reason_sealed": entry.reason_sealed,
    }


def read_access(row: Row[Any]) -> AccessEntry:
    values = row._mapping
    version = values["version"]
    return AccessEntry(
        event_id=values["event_id"],
        at=_aware(values["at"]),
        patient=values["patient"],
        action=AccessAction(values["action"]),
        outcome=AccessOutcome(values["outcome"]),
        purpose=Purpose(values["purpose"]),
        role=ActorRole(values["role"]),
        actor=values["actor"],
        record_id=values["record_id"],
        version=None if version is None else int(version),
        consent_id=values["consent_id"],
        reason_sealed=values["reason_sealed"],
    )


def practitioner_row(practitioner: Practitioner) -> dict[str, object]:
    valid_until = practitioner.valid_until
    return {
        "did": practitioner.did,
        "since": practitioner.since,
        "issuer": practitioner.issuer,
        "credential": practitioner.credential,
        "valid_from": stored_moment(practitioner.valid_from),
        "valid_until": None if valid_until is None else stored_moment(valid_until),
        "revoked": practitioner.revoked,
    }


def read_practitioner(row: Row[Any]) -> Practitioner:
    values = row._mapping
    revoked = values["revoked"]
    return Practitioner(
        did=values["did"],
        since=int(values["since"]),
        issuer=values["issuer"],
        credential=values["credential"],
        valid_from=_aware(values["valid_from"]),
        valid_until=_maybe_aware(values["valid_until"]),
        revoked=None if revoked is None else int(revoked),
    )


def mark_row(mark: SealedMark) -> dict[str, object]:
    return {"event_id": mark.event_id, "height": mark.height, "commitment": mark.commitment}


def read_mark(row: Row[Any]) -> SealedMark:
    values = row._mapping
    return SealedMark(
        event_id=values["event_id"], height=int(values["height"]), commitment=values["commitment"]
    )
