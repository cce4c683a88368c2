"""Ports of the records service: the vault of encrypted records, consents, the audit trail,
and what the service has learned from the chain.

Reads take the caller's transaction when they decide a change (so the decision and the write
see the same state), or none for a plain query of committed state. Every changing method
takes the transaction it writes in; the outbox message of the change goes into the same one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

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

TxT = TypeVar("TxT")
TxT_contra = TypeVar("TxT_contra", contravariant=True)


class RecordVault(Protocol[TxT_contra]):
    """Encrypted records: heads, immutable versions, and data keys wrapped to recipients."""

    def lock(self, tx: TxT_contra) -> None:
        """Serialise changes: call first in every changing transaction."""
        ...

    def add_record(self, tx: TxT_contra, head: RecordHead, first: RecordVersion) -> None:
        """Store a new record with its version 1 (`head.version` is 1)."""
        ...

    def add_version(self, tx: TxT_contra, version: RecordVersion) -> None:
        """Store the next version (exactly head.version + 1) and make it the head's latest."""
        ...

    def head(self, record_id: str, tx: TxT_contra | None = None) -> RecordHead | None: ...

    def version(
        self, record_id: str, version: int, tx: TxT_contra | None = None
    ) -> RecordVersion | None: ...

    def records_of(self, patient: str, tx: TxT_contra | None = None) -> Sequence[RecordHead]:
        """The patient's records (by pseudonym), erased ones included, oldest first."""
        ...

    def add_wraps(self, tx: TxT_contra, wraps: Iterable[WrappedKey]) -> int:
        """Store wrapped keys; a (record, recipient) pair already wrapped is left alone.
        Returns how many were new."""
        ...

    def wrapped_key(
        self, record_id: str, recipient: str, tx: TxT_contra | None = None
    ) -> WrappedKey | None: ...

    def drop_wraps(self, tx: TxT_contra, consent_id: str) -> int:
        """Delete the wrapped keys a consent grant made; returns how many."""
        ...

    def shred(self, tx: TxT_contra, record_id: str, erasure: Erasure) -> None:
        """Crypto-shred: delete the custody key, the salt, every wrapped key, and every
        version's nonce and ciphertext (the hashes stay); mark the head erased."""
        ...

    def forget_deleted(self) -> bool:
        """After a committed shred or dropped wraps: make the deleted bytes unrecoverable
        from the store's own files where the store can (SQLite: out of the write-ahead log),
        so a copy of the files taken later holds no destroyed key. False if they remain
        there for now (the next call, or the store's own checkpoint, removes them)."""
        ...


class ConsentBook(Protocol[TxT_contra]):
    """Patients' consents, revoked ones included."""

    def add_consent(self, tx: TxT_contra, consent: Consent) -> None: ...

    def revoke_consent(self, tx: TxT_contra, consent: Consent) -> None:
        """Store the revocation (`consent.revoked_at` and `revoke_event_id` are set)."""
        ...

    def consent(self, consent_id: str, tx: TxT_contra | None = None) -> Consent | None: ...

    def consents_of(self, patient: str, tx: TxT_contra | None = None) -> Sequence[Consent]:
        """The patient's consents (by pseudonym), oldest first."""
        ...

    def consents_for(self, grantee: str, tx: TxT_contra | None = None) -> Sequence[Consent]:
        """The consents naming this grantee, oldest first."""
        ...


class AuditTrail(Protocol[TxT_contra]):
    """Every access the service audited (each is also a sealed `RecordAccessed` event)."""

    def add_access(self, tx: TxT_contra, entry: AccessEntry) -> None: ...

    def disclosures(self, patient: str) -> Sequence[AccessEntry]:
        """The patient's accesses, oldest first."""
        ...


class ChainView(Protocol[TxT_contra]):
    """What the chain follower learned: practitioners and patients (from sealed identity
    events), the heights of the service's own sealed events, and its position."""

    def practitioner(self, did: str, tx: TxT_contra | None = None) -> Practitioner | None: ...

    def patient_registered(self, pseudonym: str, tx: TxT_contra | None = None) -> bool: ...

    def authorities(self, tx: TxT_contra | None = None) -> frozenset[str]:
        """The licensing authorities registered by sealed identity events (genesis ones are
        not stored: genesis names them)."""
        ...

    def sealed(self, event_ids: Collection[str]) -> Mapping[str, SealedMark]:
        """The marks of those of `event_ids` that are sealed."""
        ...

    def apply_block(
        self,
        tx: TxT_contra,
        *,
        practitioners: Sequence[Practitioner],
        authorities: Mapping[str, int],
        patients: Mapping[str, int],
        marks: Sequence[SealedMark],
        position: Mapping[str, Any],
    ) -> None:
        """Store one followed block's effects and the follower's position.

        `practitioners` replace the stored standing of their DIDs; `authorities` and
        `patients` map newly registered DIDs / pseudonyms to their height (one already known
        keeps its first height);
        a mark already stored is left alone (idempotent).
        """
        ...

    def position(self) -> Mapping[str, Any] | None:
        """The follower position saved last, or None before the first block."""
        ...


class RecordsMetrics(Protocol):
    """What the service counts; labels are actions, outcomes and resource types, never ids."""

    def written(self, resource_type: str, created: bool) -> None: ...

    def accessed(self, action: str, outcome: str) -> None: ...

    def integrity_failed(self) -> None: ...


class NoRecordsMetrics:
    def written(self, resource_type: str, created: bool) -> None:
        pass

    def accessed(self, action: str, outcome: str) -> None:
        pass

    def integrity_failed(self) -> None:
        pass
