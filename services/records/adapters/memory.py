"""The records store in memory: staged in the unit of work, applied at commit."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

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
from shared.store import MemoryDatabase, MemoryTransaction


@dataclass
class _State:
    """Everything stored; values are frozen, so copying the containers copies the state."""

    heads: dict[str, RecordHead] = field(default_factory=dict)
    versions: dict[tuple[str, int], RecordVersion] = field(default_factory=dict)
    wraps: dict[tuple[str, str], WrappedKey] = field(default_factory=dict)
    consents: dict[str, Consent] = field(default_factory=dict)
    accesses: list[AccessEntry] = field(default_factory=list)
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    authorities: dict[str, int] = field(default_factory=dict)
    patients: dict[str, int] = field(default_factory=dict)
    sealed: dict[str, SealedMark] = field(default_factory=dict)
    position: dict[str, Any] | None = None

    def copy(self) -> _State:
        return _State(
            heads=dict(self.heads),
            versions=dict(self.versions),
            wraps=dict(self.wraps),
            consents=dict(self.consents),
            accesses=list(self.accesses),
            practitioners=dict(self.practitioners),
            authorities=dict(self.authorities),
            patients=dict(self.patients),
            sealed=dict(self.sealed),
            position=self.position,
        )


class MemoryRecordsStore:
    """`RecordVault`, `ConsentBook`, `AuditTrail` and `ChainView` of `MemoryTransaction`, for
    unit tests and the contract suite."""

    def __init__(self, *, database: MemoryDatabase) -> None:
        self._database = database
        self._state = _State()

    def lock(self, tx: MemoryTransaction) -> None:
        self._database.check(tx)  # the memory database runs one transaction at a time

    # --- RecordVault ------------------------------------------------------------------

    def add_record(self, tx: MemoryTransaction, head: RecordHead, first: RecordVersion) -> None:
        staged = self._staged(tx)
        if head.version != 1 or first.version != 1 or first.record_id != head.record_id:
            raise ValueError("a new record is stored with its own version 1")
        if head.record_id in staged.heads:
            raise ValueError(f"record {head.record_id} exists")
        _check_version_event(staged, first)
        staged.heads[head.record_id] = head
        staged.versions[first.record_id, first.version] = first

    def add_version(self, tx: MemoryTransaction, version: RecordVersion) -> None:
        staged = self._staged(tx)
        head = staged.heads.get(version.record_id)
        # A bug guard: the service checks the version (and erasure) before it writes.
        if head is None:
            raise ValueError(f"no record {version.record_id} to add a version to")
        if head.erased:
            raise ValueError(f"record {version.record_id} is erased")
        if version.version != head.version + 1:
            raise ValueError(f"version {version.version} does not follow version {head.version}")
        _check_version_event(staged, version)
        staged.versions[version.record_id, version.version] = version
        staged.heads[head.record_id] = replace(head, version=version.version)

    # Reads see committed state: the memory database runs one transaction at a time, and a
    # use case reads before it writes, so `tx` adds nothing to see.
    def head(
        self,
        record_id: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> RecordHead | None:
        with self._database.read():
            return self._state.heads.get(record_id)

    def version(
        self,
        record_id: str,
        version: int,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> RecordVersion | None:
        with self._database.read():
            return self._state.versions.get((record_id, version))

    def records_of(
        self,
        patient: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[RecordHead]:
        with self._database.read():
            heads = [head for head in self._state.heads.values() if head.patient == patient]
        return sorted(heads, key=lambda head: (head.created_at, head.record_id))

    def add_wraps(self, tx: MemoryTransaction, wraps: Iterable[WrappedKey]) -> int:
        staged = self._staged(tx)
        new = 0
        for wrap in wraps:
            pair = (wrap.record_id, wrap.recipient)
            if pair not in staged.wraps:
                staged.wraps[pair] = wrap
                new += 1
        return new

    def wrapped_key(
        self,
        record_id: str,
        recipient: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> WrappedKey | None:
        with self._database.read():
            return self._state.wraps.get((record_id, recipient))

    def drop_wraps(self, tx: MemoryTransaction, consent_id: str) -> int:
        staged = self._staged(tx)
        dropped = [pair for pair, wrap in staged.wraps.items() if wrap.consent_id == consent_id]
        for pair in dropped:
            del staged.wraps[pair]
        return len(dropped)

    def forget_deleted(self) -> bool:
        """Nothing to do: deleted entries are gone with their references."""
        return True

    def shred(self, tx: MemoryTransaction, record_id: str, erasure: Erasure) -> None:
        staged = self._staged(tx)
        head = staged.heads.get(record_id)
        if head is None:
            raise ValueError(f"no record {record_id} to erase")
        staged.heads[record_id] = replace(head, custody_key=None, salt=None, erasure=erasure)
        for pair in [pair for pair in staged.wraps if pair[0] == record_id]:
            del staged.wraps[pair]
        for key, version in staged.versions.items():
            if key[0] == record_id:
                staged.versions[key] = replace(version, nonce=None, ciphertext=None)

    # --- ConsentBook ------------------------------------------------------------------

    def add_consent(self, tx: MemoryTransaction, consent: Consent) -> None:
        staged = self._staged(tx)
        if consent.consent_id in staged.consents or any(
            stored.event_id == consent.event_id for stored in staged.consents.values()
        ):
            raise ValueError(f"consent {consent.consent_id} or event {consent.event_id} exists")
        staged.consents[consent.consent_id] = consent

    def revoke_consent(self, tx: MemoryTransaction, consent: Consent) -> None:
        staged = self._staged(tx)
        if consent.revoked_at is None or consent.revoke_event_id is None:
            raise ValueError("a revocation needs its time and event id")
        stored = staged.consents.get(consent.consent_id)
        if stored is None:
            raise ValueError(f"no consent {consent.consent_id} to revoke")
        staged.consents[consent.consent_id] = replace(
            stored, revoked_at=consent.revoked_at, revoke_event_id=consent.revoke_event_id
        )

    def consent(
        self,
        consent_id: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Consent | None:
        with self._database.read():
            return self._state.consents.get(consent_id)

    def consents_of(
        self,
        patient: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[Consent]:
        with self._database.read():
            found = [c for c in self._state.consents.values() if c.patient == patient]
        return sorted(found, key=lambda consent: (consent.granted_at, consent.consent_id))

    def consents_for(
        self,
        grantee: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Sequence[Consent]:
        with self._database.read():
            found = [c for c in self._state.consents.values() if c.grantee == grantee]
        return sorted(found, key=lambda consent: (consent.granted_at, consent.consent_id))

    # --- AuditTrail -------------------------------------------------------------------

    def add_access(self, tx: MemoryTransaction, entry: AccessEntry) -> None:
        staged = self._staged(tx)
        if any(stored.event_id == entry.event_id for stored in staged.accesses):
            raise ValueError(f"access {entry.event_id} exists")
        staged.accesses.append(entry)

    def disclosures(self, patient: str) -> Sequence[AccessEntry]:
        with self._database.read():
            return [entry for entry in self._state.accesses if entry.patient == patient]

    # --- ChainView --------------------------------------------------------------------

    def practitioner(
        self,
        did: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> Practitioner | None:
        with self._database.read():
            return self._state.practitioners.get(did)

    def patient_registered(
        self,
        pseudonym: str,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> bool:
        with self._database.read():
            return pseudonym in self._state.patients

    def authorities(
        self,
        tx: MemoryTransaction | None = None,  # noqa: ARG002 - see above
    ) -> frozenset[str]:
        with self._database.read():
            return frozenset(self._state.authorities)

    def sealed(self, event_ids: Collection[str]) -> Mapping[str, SealedMark]:
        with self._database.read():
            marks = self._state.sealed
            return {event_id: marks[event_id] for event_id in event_ids if event_id in marks}

    def apply_block(
        self,
        tx: MemoryTransaction,
        *,
        practitioners: Sequence[Practitioner],
        authorities: Mapping[str, int],
        patients: Mapping[str, int],
        marks: Sequence[SealedMark],
        position: Mapping[str, Any],
    ) -> None:
        staged = self._staged(tx)
        for practitioner in practitioners:  # in order: a later standing of a DID wins
            staged.practitioners[practitioner.did] = practitioner
        for did, height in authorities.items():  # the first registration's height stays
            staged.authorities.setdefault(did, height)
        for pseudonym, height in patients.items():
            staged.patients.setdefault(pseudonym, height)
        for mark in marks:
            staged.sealed.setdefault(mark.event_id, mark)
        staged.position = dict(position)

    def position(self) -> Mapping[str, Any] | None:
        with self._database.read():
            return self._state.position

    def _staged(self, tx: MemoryTransaction) -> _State:
        # Writes go to a copy of the committed state, made at the transaction's first write
        # and swapped in at commit: checks see the transaction's own earlier writes, and a
        # rollback just drops the copy. The swap cannot fail, so commit is all-or-nothing.
        self._database.check(tx)
        return tx.scratch(self, lambda: self._stage(tx))

    def _stage(self, tx: MemoryTransaction) -> _State:
        staged = self._state.copy()
        tx.on_commit(lambda: setattr(self, "_state", staged))
        return staged


def _check_version_event(state: _State, version: RecordVersion) -> None:
    if any(stored.event_id == version.event_id for stored in state.versions.values()):
        raise ValueError(f"record version event {version.event_id} exists")
