"""What every records use case shares: signing events into the outbox, auditing accesses,
finding live records, and checking a version's content against the chain.

One `RecordsLedger` is built per service and handed to both halves of the use cases
(`service.RecordsService` changes things, `reading.RecordReader` discloses them), so an
event, an audit entry and an integrity check are made one way only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic

from services.records.cipher import RecordCipher
from services.records.core.access import ReadDecision
from services.records.core.events import RecordsEvent, records_source, sign_records_event
from services.records.core.model import AccessEntry, RecordHead, RecordVersion
from services.records.errors import ErasedError, IntegrityError, NotFoundError
from services.records.ports import (
    AuditTrail,
    ChainView,
    NoRecordsMetrics,
    RecordsMetrics,
    RecordVault,
    TxT,
)
from shared.crypto import SigningKey
from shared.events import EventData
from shared.events.records import (
    RECORD_CREATED,
    RECORD_UPDATED,
    AccessAction,
    AccessOutcome,
    ActorRole,
    RecordAccessed,
)
from shared.genesis import GenesisConfig
from shared.outbox import OutboxWriter, message_for_event
from shared.pseudonym import patient_pseudonym
from shared.topics import RECORDS_EVENTS

__all__ = ["Access", "RecordsLedger"]

log = logging.getLogger("careledger.records")


@dataclass(frozen=True, slots=True)
class Access:
    """One access to audit: who (`caller`, in the capacity `decision` says), what, outcome."""

    patient: str  # pseudonym
    action: AccessAction
    outcome: AccessOutcome
    decision: ReadDecision
    caller: str
    record: str | None = None
    version: int | None = None
    consent: str | None = None
    reason_sealed: bytes | None = None


class RecordsLedger(Generic[TxT]):
    """Signs the service's events into the outbox and keeps the audit trail with them."""

    def __init__(
        self,
        *,
        vault: RecordVault[TxT],
        chain: ChainView[TxT],
        audit: AuditTrail[TxT],
        outbox: OutboxWriter[TxT],
        cipher: RecordCipher,
        key: SigningKey,
        genesis: GenesisConfig,
        pseudonym_key: bytes,
        new_event_id: Callable[[datetime], str],
        metrics: RecordsMetrics | None = None,
    ) -> None:
        self._vault = vault
        self._chain = chain
        self._audit = audit
        self._outbox = outbox
        self._cipher = cipher
        self._key = key
        self._genesis = genesis
        self._pseudonym_key = pseudonym_key
        self._new_event_id = new_event_id
        self.metrics = metrics or NoRecordsMetrics()
        self.source = records_source(genesis.chain_id)

    def pseudonym(self, did: str) -> str:
        return patient_pseudonym(self._pseudonym_key, did)

    def event_id(self, now: datetime) -> str:
        return self._new_event_id(now)

    def emit(
        self, tx: TxT, data: EventData, *, subject: str, event_id: str, now: datetime
    ) -> RecordsEvent:
        """Sign `data` as the service and add the event to the outbox in `tx`."""
        event = sign_records_event(
            data,
            subject=subject,
            key=self._key,
            chain_id=self._genesis.chain_id,
            event_id=event_id,
            time=now,
        )
        self._outbox.add(tx, [message_for_event(event.event, topic=RECORDS_EVENTS)])
        return event

    def audit(self, tx: TxT, access: Access, now: datetime) -> RecordsEvent:
        """A `RecordAccessed` event and the patient's disclosure entry, in `tx`."""
        role = access.decision.role
        actor = None if role is ActorRole.PATIENT else access.caller
        consent = access.consent or access.decision.consent_id
        data = RecordAccessed(
            patient=access.patient,
            action=access.action,
            outcome=access.outcome,
            purpose=access.decision.purpose,
            role=role,
            actor=actor,
            record=access.record,
            version=access.version,
            consent=consent,
        )
        subject = access.record or consent or access.patient
        event = self.emit(tx, data, subject=subject, event_id=self._new_event_id(now), now=now)
        entry = AccessEntry(
            event_id=event.event_id,
            at=now,
            patient=access.patient,
            action=access.action,
            outcome=access.outcome,
            purpose=access.decision.purpose,
            role=role,
            actor=actor,
            record_id=access.record,
            version=access.version,
            consent_id=consent,
            reason_sealed=access.reason_sealed,
        )
        self._audit.add_access(tx, entry)
        self.metrics.accessed(str(access.action), str(access.outcome))
        return event

    def live_head(self, record_id: str, tx: TxT) -> RecordHead:
        """The record, or 404 if there is none, or 410 if it was erased."""
        head = self._vault.head(record_id, tx)
        if head is None:
            raise NotFoundError("no such record")
        if head.erased:
            raise ErasedError("the record was erased; it is gone for good")
        return head

    def version(self, head: RecordHead, version: int | None, tx: TxT) -> RecordVersion:
        """A version of `head` (the latest for None), or 404."""
        stored = self._vault.version(head.record_id, version or head.version, tx)
        if stored is None:
            raise NotFoundError(f"the record has versions 1 to {head.version}")
        return stored

    def version_reference(self, stored: RecordVersion) -> dict[str, str]:
        """The (source, id, type) of the event that announced a version."""
        event_type = RECORD_CREATED if stored.version == 1 else RECORD_UPDATED
        return {"source": self.source, "id": stored.event_id, "type": event_type}

    def content(self, head: RecordHead, stored: RecordVersion) -> tuple[bytes, dict[str, Any]]:
        """The version's canonical content, checked against the chain's commitment once the
        version is sealed (else against the service's own signed event), and how it was
        checked. A record that fails is never served: `IntegrityError` (500), a metric and
        an error log."""
        mark = self._chain.sealed([stored.event_id]).get(stored.event_id)
        sealed = mark is not None and mark.commitment is not None
        commitment = mark.commitment if mark is not None and mark.commitment else stored.commitment
        try:
            if commitment != stored.commitment:
                raise IntegrityError("the stored commitment differs from the sealed one")
            content = self._cipher.decrypt(head, stored, commitment=commitment)
        except IntegrityError as exc:
            self.metrics.integrity_failed()
            log.error(
                "record integrity check failed",
                extra={"record": head.record_id, "version": stored.version, "reason": str(exc)},
            )
            raise
        return content, {
            "commitment": commitment,
            "ciphertext": stored.ciphertext_hash,
            "checked_against": "chain" if sealed else "signed_event",
            "sealed_height": None if mark is None else mark.height,
        }
