"""The records service's changes: records, versions, consents and erasure.

Each change is one records event signed by the service, written with its state (and, where it
discloses, its audit entry) in one serialised transaction, so a 2xx means all of it is
durable; the outbox relay is woken after the commit. Reads live in `reading.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic

from services.records.cipher import RecordCipher
from services.records.core.access import (
    CONSENT_PURPOSES,
    ReadDecision,
    may_erase,
    may_update,
    require_practitioner,
)
from services.records.core.events import RecordsEvent
from services.records.core.fhir import SUPPORTED_TYPES, validate_resource
from services.records.core.model import Consent, Erasure, RecordHead, RecordVersion, WrappedKey
from services.records.errors import (
    ConflictError,
    ErasedError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
)
from services.records.ledger import Access, RecordsLedger
from services.records.ports import ChainView, ConsentBook, RecordVault, TxT
from shared.block import format_timestamp
from shared.events.records import (
    AccessAction,
    AccessOutcome,
    ActorRole,
    ConsentGranted,
    ConsentRevoked,
    Purpose,
    RecordCreated,
    RecordErased,
    RecordUpdated,
)
from shared.genesis import GenesisConfig
from shared.store import UnitOfWork

__all__ = ["MAX_CONSENT", "RecordsService", "consent_view"]

log = logging.getLogger("careledger.records")

#: The longest consent a patient can give at once; they can always grant again.
MAX_CONSENT = timedelta(days=5 * 366)


class RecordsService(Generic[TxT]):
    """The changing use cases behind the HTTP API; `caller` is always the authenticated DID."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        ledger: RecordsLedger[TxT],
        vault: RecordVault[TxT],
        consents: ConsentBook[TxT],
        chain: ChainView[TxT],
        cipher: RecordCipher,
        genesis: GenesisConfig,
        clock: Callable[[], datetime],
        new_id: Callable[[], str],
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self._uow = uow
        self._ledger = ledger
        self._vault = vault
        self._consents = consents
        self._chain = chain
        self._cipher = cipher
        self._genesis = genesis
        self._clock = clock
        self._new_id = new_id
        self._notify = notify

    # --- records ----------------------------------------------------------------------------

    def create_record(
        self, caller: str, *, patient: str, resource: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A practitioner writes version 1 of a record for a registered patient."""
        answer, _ = self.create_records(caller, [(patient, resource)], [self._new_id()])[0]
        return answer

    def new_record_ids(self, count: int) -> list[str]:
        """Fresh record ids, for a caller that must know them before it builds the resources
        (a FHIR transaction resolves its references to them)."""
        return [self._new_id() for _ in range(count)]

    def create_records(
        self,
        caller: str,
        records: Sequence[tuple[str, Mapping[str, Any]]],
        record_ids: Sequence[str],
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Version 1 of each (patient DID, resource), all in one transaction: all or none.
        `record_ids` come from `new_record_ids` (or `new_id`). Returns, per record, the
        answer and the resource as stored."""
        stored = [
            validate_resource(resource, record_id=record_id, version=1)
            for (_, resource), record_id in zip(records, record_ids, strict=True)
        ]
        now = self._clock()
        written: list[tuple[RecordHead, RecordVersion, RecordsEvent]] = []
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            require_practitioner(self._chain.practitioner(caller, tx), now, "write records")
            for (patient, _), resource in zip(records, stored, strict=True):
                written.append(self._create(tx, caller, patient, resource, now))
        answers = []
        for (head, version, event), resource in zip(written, stored, strict=True):
            self._ledger.metrics.written(head.resource_type, created=True)
            self._committed("record created", event)
            answers.append((self._written(head, version, event), resource))
        return answers

    def update_record(
        self,
        caller: str,
        record_id: str,
        *,
        resource: Mapping[str, Any],
        base_version: int | None = None,
    ) -> dict[str, Any]:
        """A new version; `base_version`, if given, must be the latest (409 otherwise)."""
        now = self._clock()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            head = self._ledger.live_head(record_id, tx)
            may_update(
                head,
                caller=caller,
                practitioner=self._chain.practitioner(caller, tx),
                consents=self._consents.consents_for(caller, tx),
                now=now,
            )
            if base_version is not None and base_version != head.version:
                raise ConflictError(
                    f"the record is at version {head.version}, not {base_version}: "
                    "read it again and re-apply the change"
                )
            version = head.version + 1
            stored = validate_resource(resource, record_id=record_id, version=version)
            if stored["resourceType"] != head.resource_type:
                raise InvalidRequestError(
                    f"this record holds a {head.resource_type}; a new version cannot change that"
                )
            if head.salt is None:
                raise ErasedError("the record was erased")
            sealed = self._cipher.encrypt(
                stored,
                data_key=self._cipher.data_key(head),
                salt=head.salt,
                head=head,
                version=version,
                author=caller,
                created_at=now,
                event_id=self._ledger.event_id(now),
            )
            event = self._announce(tx, RecordUpdated, head, sealed.version, now)
            self._vault.add_version(tx, sealed.version)
            self._vault.add_wraps(tx, self._cipher.wraps(head, [caller]))
        self._ledger.metrics.written(head.resource_type, created=False)
        self._committed("record updated", event)
        return self._written(head, sealed.version, event)

    def erase(self, caller: str, record_id: str) -> dict[str, Any]:
        """Crypto-shred a record (the patient or the admin): it answers 410 from then on."""
        now = self._clock()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            head = self._ledger.live_head(record_id, tx)
            role = may_erase(
                head,
                caller_pseudonym=self._ledger.pseudonym(caller),
                is_admin=caller == self._genesis.admin,
            )
            event_id = self._ledger.event_id(now)
            erased = RecordErased(
                record=record_id, patient=head.patient, versions=head.version, by=role
            )
            event = self._ledger.emit(tx, erased, subject=record_id, event_id=event_id, now=now)
            self._vault.shred(tx, record_id, Erasure(now, role, event_id))
            decision = ReadDecision(True, role, Purpose.PATIENT_REQUEST)
            access = Access(
                head.patient, AccessAction.ERASE, AccessOutcome.ALLOWED, decision, caller, record_id
            )
            self._ledger.audit(tx, access, now)
        self._committed("record erased", event)
        self._forget_deleted("record erased")
        return {
            "record": record_id,
            "erased": True,
            "versions": head.version,
            "event": event.reference(),
        }

    # --- consent ----------------------------------------------------------------------------

    def grant_consent(
        self,
        caller: str,
        *,
        grantee: str,
        resource_types: Sequence[str],
        purpose: Purpose,
        expires: datetime,
    ) -> dict[str, Any]:
        """The patient lets `grantee` read their records of these types (none: all), and
        the data keys of the records it covers are wrapped to the grantee."""
        now = self._clock()
        patient = self._ledger.pseudonym(caller)
        purpose = Purpose(purpose)
        types = tuple(sorted(set(resource_types)))
        unknown = sorted(set(types) - SUPPORTED_TYPES)
        if unknown:
            raise InvalidRequestError(f"not a record type of this service: {unknown[0][:64]}")
        if purpose not in CONSENT_PURPOSES:
            raise InvalidRequestError(f"a consent cannot be for purpose {purpose}")
        if grantee == caller:
            raise InvalidRequestError("a patient always reads their own records")
        if not now < expires <= now + MAX_CONSENT:
            raise InvalidRequestError("a consent expires in the future, within five years")
        consent_id = self._new_id()
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            if not self._chain.patient_registered(patient, tx):
                raise ForbiddenError("only a registered patient may grant consent")
            event_id = self._ledger.event_id(now)
            consent = Consent(consent_id, patient, grantee, types, purpose, expires, now, event_id)
            granted = ConsentGranted(
                consent=consent_id,
                patient=patient,
                grantee=grantee,
                resource_types=types,
                purpose=purpose,
                expires=format_timestamp(expires),
            )
            event = self._ledger.emit(tx, granted, subject=consent_id, event_id=event_id, now=now)
            self._consents.add_consent(tx, consent)
            shared = self._wrap_for(tx, consent)
            self._audit_consent(tx, consent, AccessAction.CONSENT_GRANTED, caller, now)
        self._committed("consent granted", event)
        return {
            "consent": consent_view(consent, self._ledger.source),
            "records_shared": shared,
            "event": event.reference(),
        }

    def revoke_consent(self, caller: str, consent_id: str) -> tuple[bool, dict[str, Any]]:
        """The patient withdraws a consent, effective for the next read; its wrapped keys are
        deleted. Returns (changed, answer): revoking again changes nothing."""
        now = self._clock()
        patient = self._ledger.pseudonym(caller)
        with self._uow.transaction() as tx:
            self._vault.lock(tx)
            consent = self._consents.consent(consent_id, tx)
            if consent is None or consent.patient != patient:
                raise NotFoundError("no such consent of yours")
            if consent.revoked_at is not None:
                return False, {"consent": consent_view(consent, self._ledger.source)}
            event_id = self._ledger.event_id(now)
            revoked = ConsentRevoked(consent=consent_id, patient=patient)
            event = self._ledger.emit(tx, revoked, subject=consent_id, event_id=event_id, now=now)
            consent = _revoked(consent, now, event_id)
            self._consents.revoke_consent(tx, consent)
            self._vault.drop_wraps(tx, consent_id)
            # Another consent in force for the same grantee keeps its records shared.
            for other in self._consents.consents_for(consent.grantee, tx):
                if (
                    other.consent_id != consent_id
                    and other.patient == patient
                    and other.in_force(now)
                ):
                    self._wrap_for(tx, other)
            self._audit_consent(tx, consent, AccessAction.CONSENT_REVOKED, caller, now)
        self._committed("consent revoked", event)
        self._forget_deleted("consent revoked")
        return True, {
            "consent": consent_view(consent, self._ledger.source),
            "event": event.reference(),
        }

    # --- internals --------------------------------------------------------------------------

    def _create(
        self, tx: TxT, caller: str, patient: str, stored: dict[str, Any], now: datetime
    ) -> tuple[RecordHead, RecordVersion, RecordsEvent]:
        pseudonym = self._ledger.pseudonym(patient)
        if not self._chain.patient_registered(pseudonym, tx):
            raise NotFoundError("no registered patient with this DID (or not sealed yet)")
        record_id = str(stored["id"])
        data_key, custody, salt = self._cipher.new_keys()
        head = RecordHead(
            record_id=record_id,
            patient=pseudonym,
            author=caller,
            resource_type=str(stored["resourceType"]),
            version=1,
            created_at=now,
            custody_key=custody,
            salt=salt,
        )
        sealed = self._cipher.encrypt(
            stored,
            data_key=data_key,
            salt=salt,
            head=head,
            version=1,
            author=caller,
            created_at=now,
            event_id=self._ledger.event_id(now),
        )
        event = self._announce(tx, RecordCreated, head, sealed.version, now)
        self._vault.add_record(tx, head, sealed.version)
        wraps: list[WrappedKey] = self._cipher.wraps(head, [patient, caller], data_key=data_key)
        for consent in self._consents.consents_of(pseudonym, tx):
            if consent.in_force(now) and consent.covers(head.resource_type):
                wraps += self._cipher.wraps(
                    head, [consent.grantee], data_key=data_key, consent_id=consent.consent_id
                )
        self._vault.add_wraps(tx, wraps)
        return head, sealed.version, event

    def _announce(
        self,
        tx: TxT,
        schema: type[RecordCreated] | type[RecordUpdated],
        head: RecordHead,
        stored: RecordVersion,
        now: datetime,
    ) -> RecordsEvent:
        data = schema(
            record=head.record_id,
            version=stored.version,
            resource_type=head.resource_type,
            author=stored.author,
            patient=head.patient,
            commitment=stored.commitment,
            ciphertext=stored.ciphertext_hash,
        )
        return self._ledger.emit(
            tx, data, subject=head.record_id, event_id=stored.event_id, now=now
        )

    def _wrap_for(self, tx: TxT, consent: Consent) -> int:
        """Wrap the data keys of the records `consent` covers to its grantee."""
        wraps = [
            wrap
            for head in self._vault.records_of(consent.patient, tx)
            if not head.erased and consent.covers(head.resource_type)
            for wrap in self._cipher.wraps(head, [consent.grantee], consent_id=consent.consent_id)
        ]
        return self._vault.add_wraps(tx, wraps)

    def _audit_consent(
        self, tx: TxT, consent: Consent, action: AccessAction, caller: str, now: datetime
    ) -> None:
        decision = ReadDecision(True, ActorRole.PATIENT, consent.purpose, consent.consent_id)
        access = Access(consent.patient, action, AccessOutcome.ALLOWED, decision, caller)
        self._ledger.audit(tx, access, now)

    def _written(
        self, head: RecordHead, stored: RecordVersion, event: RecordsEvent
    ) -> dict[str, Any]:
        return {
            "record": head.record_id,
            "version": stored.version,
            "resource_type": head.resource_type,
            "commitment": stored.commitment,
            "event": event.reference(),
        }

    def _forget_deleted(self, what: str) -> None:
        """Purge the keys just deleted from the store's files; the change is committed either
        way, so a purge a reader delayed is a warning, not a failed request."""
        if not self._vault.forget_deleted():
            log.warning(
                "deleted keys remain in the store's write-ahead log until its next checkpoint",
                extra={"after": what},
            )

    def _committed(self, what: str, event: RecordsEvent) -> None:
        self._notify()
        log.info(what, extra={"event_id": event.event_id})


def consent_view(consent: Consent, source: str) -> dict[str, Any]:
    """A consent as the API shows it (to its patient)."""
    return {
        "consent": consent.consent_id,
        "grantee": consent.grantee,
        "resource_types": list(consent.resource_types),
        "purpose": str(consent.purpose),
        "expires": format_timestamp(consent.expires),
        "granted_at": format_timestamp(consent.granted_at),
        "revoked_at": None if consent.revoked_at is None else format_timestamp(consent.revoked_at),
        "event": {"source": source, "id": consent.event_id},
    }


def _revoked(consent: Consent, at: datetime, event_id: str) -> Consent:
    return Consent(
        consent_id=consent.consent_id,
        patient=consent.patient,
        grantee=consent.grantee,
        resource_types=consent.resource_types,
        purpose=consent.purpose,
        expires=consent.expires,
        granted_at=consent.granted_at,
        event_id=consent.event_id,
        revoked_at=at,
        revoke_event_id=event_id,
    )
