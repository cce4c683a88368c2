"""The records service's disclosures: reads, break-glass, encrypted envelopes, the patient's
export, record list and accounting of disclosures.

Every read is decided in the core, the content decrypted and checked against its commitment,
and the access audited in the same transaction before anything is answered. A refused read is
audited and committed, then answered with 403.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic

from services.records.cipher import RecordCipher
from services.records.core.access import ReadDecision, decide_read, may_break_glass
from services.records.core.envelope import Envelope, envelope_document
from services.records.core.fhir import patient_bundle
from services.records.core.model import AccessEntry, RecordHead, RecordVersion, SealedMark
from services.records.errors import (
    ConsentRequiredError,
    ErasedError,
    ForbiddenError,
    NotFoundError,
)
from services.records.ledger import Access, RecordsLedger
from services.records.ports import AuditTrail, ChainView, ConsentBook, RecordVault, TxT
from services.records.service import consent_view
from shared.block import format_timestamp
from shared.crypto import b64url_encode
from shared.events.records import AccessAction, AccessOutcome, ActorRole, Purpose
from shared.store import UnitOfWork

__all__ = ["RecordReader"]

log = logging.getLogger("careledger.records")

_REFUSED = (
    "the patient has not consented to this access; a practitioner may break the glass with a "
    "stated emergency reason"
)


class RecordReader(Generic[TxT]):
    """The disclosing use cases behind the HTTP API; `caller` is the authenticated DID."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        ledger: RecordsLedger[TxT],
        vault: RecordVault[TxT],
        consents: ConsentBook[TxT],
        audit: AuditTrail[TxT],
        chain: ChainView[TxT],
        cipher: RecordCipher,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._ledger = ledger
        self._vault = vault
        self._consents = consents
        self._audit = audit
        self._chain = chain
        self._cipher = cipher
        self._clock = clock
        self._new_id = new_id
        self._notify = notify

    def read(
        self,
        caller: str,
        record_id: str,
        *,
        version: int | None = None,
        purpose: Purpose | None = None,
        resource_type: str | None = None,
    ) -> dict[str, Any]:
        """A version (the latest by default) if allowed; a refusal is audited, then 403.
        With `resource_type`, a record of another type is not found (and nothing audited)."""
        now = self._clock()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            head = self._ledger.live_head(record_id, tx)
            if resource_type is not None and head.resource_type != resource_type:
                raise NotFoundError(f"no such {resource_type[:64]}")
            decision = self._decide(tx, head, caller, purpose, now)
            if decision.allowed:
                stored = self._ledger.version(head, version, tx)
                answer = self._disclose(tx, head, stored, decision=decision, caller=caller, now=now)
            else:
                self._refuse(tx, head, decision, caller, now)
                answer = None
        self._notify()
        if answer is None:
            raise _refusal(decision)
        return answer

    def break_glass(self, caller: str, record_id: str, *, reason: str) -> dict[str, Any]:
        """Emergency access without consent: allowed, flagged, audited for the patient. A
        caller without the standing is refused (403), and that attempt is audited too."""
        now = self._clock()
        refused: ForbiddenError | None = None
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            head = self._ledger.live_head(record_id, tx)
            practitioner = self._chain.practitioner(caller, tx)
            try:
                may_break_glass(practitioner, reason, now)
            except ForbiddenError as exc:
                refused = exc
                role = self._other_role(head, caller, practitioner is not None)
                denied = ReadDecision(False, role, Purpose.EMERGENCY_TREATMENT)
                self._refuse(tx, head, denied, caller, now, action=AccessAction.BREAK_GLASS)
            else:
                decision = ReadDecision(True, ActorRole.PRACTITIONER, Purpose.EMERGENCY_TREATMENT)
                stored = self._ledger.version(head, None, tx)
                # The reason is free text that may name the patient: sealed to the service,
                # shown only to the patient in their disclosures, never on the chain.
                answer = self._disclose(
                    tx,
                    head,
                    stored,
                    decision=decision,
                    caller=caller,
                    now=now,
                    action=AccessAction.BREAK_GLASS,
                    reason_sealed=self._cipher.seal_note(reason),
                )
        self._notify()
        if refused is not None:
            raise refused
        log.warning("break-glass access", extra={"event_id": answer["access"]["event"]["id"]})
        return answer

    def envelope(
        self,
        caller: str,
        record_id: str,
        *,
        version: int | None = None,
        purpose: Purpose | None = None,
    ) -> dict[str, Any]:
        """The encrypted version as stored, with the caller's wrapped data key and the salt,
        for clients that decrypt and check the commitment themselves. Audited as a read."""
        now = self._clock()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            head = self._ledger.live_head(record_id, tx)
            decision = self._decide(tx, head, caller, purpose, now)
            wrapped = self._vault.wrapped_key(record_id, caller, tx)
            if decision.allowed and wrapped is not None:
                stored = self._ledger.version(head, version, tx)
                access = Access(
                    head.patient,
                    AccessAction.READ,
                    AccessOutcome.ALLOWED,
                    decision,
                    caller,
                    head.record_id,
                    stored.version,
                )
                event = self._ledger.audit(tx, access, now)
                answer = self._envelope(head, stored, wrapped.sealed_key, event.reference())
            else:
                self._refuse(tx, head, decision, caller, now)
                answer = None
        self._notify()
        if answer is None:
            raise _refusal(decision)
        return answer

    def search(
        self,
        caller: str,
        resource_type: str,
        *,
        patient: str | None = None,
        record_ids: Sequence[str] | None = None,
        offset: int = 0,
        count: int = 50,
    ) -> tuple[list[dict[str, Any]], bool]:
        """Reads of the live records of `resource_type` that match: the patient's (by
        pseudonym) and/or those of `record_ids`, oldest first, `count` of them from `offset`.

        Each is decided and audited exactly as `read` does, in one transaction: an allowed one
        is disclosed and in the answer, a refused one is audited as a denied read and left
        out. Returns (the reads, whether more records match beyond this page).
        """
        now = self._clock()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            if patient is not None:
                heads = list(self._vault.records_of(patient, tx))
            else:
                found = (self._vault.head(record_id, tx) for record_id in record_ids or ())
                heads = [head for head in found if head is not None]
            wanted = None if record_ids is None else set(record_ids)
            matching = [
                head
                for head in heads
                if head.resource_type == resource_type
                and not head.erased
                and (wanted is None or head.record_id in wanted)
            ]
            answers = []
            for head in matching[offset : offset + count]:
                decision = self._decide(tx, head, caller, None, now)
                if decision.allowed:
                    stored = self._ledger.version(head, None, tx)
                    answers.append(
                        self._disclose(tx, head, stored, decision=decision, caller=caller, now=now)
                    )
                else:
                    self._refuse(tx, head, decision, caller, now)
        self._notify()
        return answers, len(matching) > offset + count

    def patient_of(self, record_id: str) -> str | None:
        """The pseudonym of the patient a Patient record is about (None if there is none):
        how a FHIR search by `patient=Patient/<id>` finds whose records it means."""
        head = self._vault.head(record_id)
        return head.patient if head is not None and head.resource_type == "Patient" else None

    def pseudonym(self, did: str) -> str:
        """A patient's pseudonym, the only form of a patient the store knows."""
        return self._ledger.pseudonym(did)

    @property
    def source(self) -> str:
        """The `source` of the service's events (and the observer of every access)."""
        return self._ledger.source

    # --- the patient's own views --------------------------------------------------------------

    def records_of(self, caller: str, patient: str) -> dict[str, Any]:
        """The patient's records: ids, types, versions and authors, no content."""
        heads = self._vault.records_of(self._own(caller, patient))
        return {"records": [_listed(head) for head in heads]}

    def consents_of(self, caller: str) -> dict[str, Any]:
        """The caller's consents as a patient, revoked and expired ones included."""
        listed = self._consents.consents_of(self._ledger.pseudonym(caller))
        return {"consents": [consent_view(consent, self._ledger.source) for consent in listed]}

    def disclosures(self, caller: str, patient: str) -> dict[str, Any]:
        """The patient's accounting of disclosures: every audited access and its sealing."""
        entries = self._audit.disclosures(self._own(caller, patient))
        marks = self._chain.sealed([entry.event_id for entry in entries])
        return {
            "disclosures": [self._disclosure(entry, marks.get(entry.event_id)) for entry in entries]
        }

    def export(self, caller: str, patient: str) -> dict[str, Any]:
        """A FHIR Bundle of the patient's readable (not erased) records, latest versions.
        Anyone else's attempt is refused, and audited when `patient` is a registered patient
        (an unknown DID has no records to protect, and no patient to tell)."""
        now = self._clock()
        if caller != patient:
            self._refuse_export(caller, patient, now)
        pseudonym = self._own(caller, patient)
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            resources = []
            for head in self._vault.records_of(pseudonym, tx):
                if not head.erased:
                    content, _ = self._ledger.content(head, self._ledger.version(head, None, tx))
                    resources.append(json.loads(content))
            decision = ReadDecision(True, ActorRole.PATIENT, Purpose.PATIENT_REQUEST)
            access = Access(pseudonym, AccessAction.EXPORT, AccessOutcome.ALLOWED, decision, caller)
            event = self._ledger.audit(tx, access, now)
        self._notify()
        bundle = patient_bundle(
            resources, bundle_id=self._new_id(), timestamp=format_timestamp(now)
        )
        return {"bundle": bundle, "event": event.reference()}

    # --- internals ----------------------------------------------------------------------------

    def _decide(
        self, tx: TxT, head: RecordHead, caller: str, purpose: Purpose | None, now: datetime
    ) -> ReadDecision:
        return decide_read(
            head,
            caller=caller,
            caller_pseudonym=self._ledger.pseudonym(caller),
            purpose=purpose,
            consents=self._consents.consents_for(caller, tx),
            practitioner=self._chain.practitioner(caller, tx),
            now=now,
        )

    def _refuse(
        self,
        tx: TxT,
        head: RecordHead,
        decision: ReadDecision,
        caller: str,
        now: datetime,
        *,
        action: AccessAction = AccessAction.READ,
    ) -> None:
        denied = AccessOutcome.DENIED
        access = Access(head.patient, action, denied, decision, caller, head.record_id)
        self._ledger.audit(tx, access, now)

    def _refuse_export(self, caller: str, patient: str, now: datetime) -> None:
        target = self._ledger.pseudonym(patient)
        with self._uow.transaction() as tx:
            if self._chain.patient_registered(target, tx):
                standing = self._chain.practitioner(caller, tx) is not None
                role = ActorRole.PRACTITIONER if standing else ActorRole.OTHER
                decision = ReadDecision(False, role, Purpose.PATIENT_REQUEST)
                access = Access(target, AccessAction.EXPORT, AccessOutcome.DENIED, decision, caller)
                self._ledger.audit(tx, access, now)
        self._notify()
        raise ForbiddenError("only the patient may export their records")

    def _other_role(self, head: RecordHead, caller: str, practitioner: bool) -> ActorRole:
        """The capacity of a refused caller: the record's own patient is never named."""
        if self._ledger.pseudonym(caller) == head.patient:
            return ActorRole.PATIENT
        return ActorRole.PRACTITIONER if practitioner else ActorRole.OTHER

    def _own(self, caller: str, patient: str) -> str:
        if caller != patient:
            raise ForbiddenError("only the patient may see this")
        return self._ledger.pseudonym(patient)

    def _disclose(
        self,
        tx: TxT,
        head: RecordHead,
        stored: RecordVersion,
        *,
        decision: ReadDecision,
        caller: str,
        now: datetime,
        action: AccessAction = AccessAction.READ,
        reason_sealed: bytes | None = None,
    ) -> dict[str, Any]:
        """Decrypt and check a version, audit the access, and answer with the resource."""
        content, integrity = self._ledger.content(head, stored)
        access = Access(
            head.patient,
            action,
            AccessOutcome.ALLOWED,
            decision,
            caller,
            head.record_id,
            stored.version,
            reason_sealed=reason_sealed,
        )
        event = self._ledger.audit(tx, access, now)
        return {
            "record": head.record_id,
            "version": stored.version,
            "latest_version": head.version,
            "resource_type": head.resource_type,
            "author": stored.author,
            "created_at": format_timestamp(stored.created_at),
            "resource": json.loads(content),
            "event": self._ledger.version_reference(stored),
            "integrity": integrity,
            "access": {
                "role": str(decision.role),
                "purpose": str(decision.purpose),
                "break_glass": action is AccessAction.BREAK_GLASS,
                "consent": decision.consent_id,
                "event": event.reference(),
            },
        }

    def _envelope(
        self,
        head: RecordHead,
        stored: RecordVersion,
        wrapped_key: bytes,
        access_event: dict[str, str],
    ) -> dict[str, Any]:
        if stored.ciphertext is None or stored.nonce is None or head.salt is None:
            raise ErasedError("the record was erased")
        envelope = Envelope(
            record_id=head.record_id,
            version=stored.version,
            resource_type=head.resource_type,
            author=stored.author,
            patient=head.patient,
            nonce=b64url_encode(stored.nonce),
            ciphertext_hash=stored.ciphertext_hash,
            commitment=stored.commitment,
        )
        return {
            "envelope": dict(
                envelope_document(envelope, stored.envelope_signature, self._cipher.custodian)
            ),
            "ciphertext": b64url_encode(stored.ciphertext),
            "wrapped_key": b64url_encode(wrapped_key),
            "salt": b64url_encode(head.salt),
            "event": self._ledger.version_reference(stored),
            "access_event": access_event,
        }

    def _disclosure(self, entry: AccessEntry, mark: SealedMark | None) -> dict[str, Any]:
        reason = (
            None if entry.reason_sealed is None else self._cipher.open_note(entry.reason_sealed)
        )
        return {
            "at": format_timestamp(entry.at),
            "action": str(entry.action),
            "outcome": str(entry.outcome),
            "purpose": str(entry.purpose),
            "role": str(entry.role),
            "actor": entry.actor,
            "record": entry.record_id,
            "version": entry.version,
            "consent": entry.consent_id,
            "break_glass": entry.action is AccessAction.BREAK_GLASS,
            "reason": reason,
            "event": {"source": self._ledger.source, "id": entry.event_id},
            "sealed_height": None if mark is None else mark.height,
        }


def _refusal(decision: ReadDecision) -> ForbiddenError:
    """A refused read's 403: a revoked practitioner is told why; anyone else may still ask
    the patient for consent (or, as a practitioner, break the glass)."""
    if decision.revoked:
        return ForbiddenError(
            "the practitioner's credential is revoked: no access as author, grantee or in an "
            "emergency"
        )
    return ConsentRequiredError(_REFUSED)


def _listed(head: RecordHead) -> dict[str, Any]:
    return {
        "record": head.record_id,
        "resource_type": head.resource_type,
        "version": head.version,
        "author": head.author,
        "created_at": format_timestamp(head.created_at),
        "erased": head.erased,
    }
