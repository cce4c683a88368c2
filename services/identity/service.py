"""The identity service's use cases: decide in the core, then journal + outbox in one transaction.

Every change is one identity event signed by the service's key, written to the journal and the
outbox in the same transaction (so a 2xx means both are durable); the relay is woken after the
commit. Repeating a change that already happened answers with the earlier event, and writes
nothing (idempotent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic

from services.identity.core.access import (
    may_see_patient,
    require_admin,
    require_issuer,
    require_practitioner_caller,
    trusted_authorities,
)
from services.identity.core.directory import JournalEntry, RoleView, patient_roles, roles_of
from services.identity.core.events import change_kind, identity_source, sign_change
from services.identity.errors import NotFoundError, RevokedDidError
from services.identity.ports import IdentityJournal, IdentityMetrics, NoIdentityMetrics, TxT
from shared.credentials import (
    CredentialError,
    VerifiedPractitioner,
    credential_digest,
    inspect_credential,
    verify_practitioner_credential,
)
from shared.crypto import SigningKey
from shared.events import EventData
from shared.events.identity import (
    AUTHORITY_REGISTERED,
    PATIENT_REGISTERED,
    PRACTITIONER_REGISTERED,
    PRACTITIONER_REVOKED,
    PUBLISHER_REGISTERED,
    PUBLISHER_REVOKED,
    AuthorityRegistered,
    PatientRegistered,
    PractitionerRegistered,
    PractitionerRevoked,
    PublisherRegistered,
    PublisherRevoked,
)
from shared.genesis import GenesisConfig
from shared.outbox import OutboxWriter, message_for_event
from shared.pseudonym import patient_pseudonym
from shared.store import UnitOfWork
from shared.topics import IDENTITY_EVENTS

log = logging.getLogger("careledger.identity")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to a change: `created` (201) or an earlier identical change (200)."""

    created: bool
    body: dict[str, Any]


class IdentityService(Generic[TxT]):
    """The use cases behind the HTTP API; `caller` is always the authenticated DID."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        journal: IdentityJournal[TxT],
        outbox: OutboxWriter[TxT],
        key: SigningKey,
        genesis: GenesisConfig,
        pseudonym_key: bytes,
        clock: Callable[[], datetime],
        new_id: Callable[[datetime], str],
        notify: Callable[[], None] = lambda: None,
        metrics: IdentityMetrics | None = None,
    ) -> None:
        self._uow = uow
        self._journal = journal
        self._outbox = outbox
        self._key = key
        self._genesis = genesis
        self._pseudonym_key = pseudonym_key
        self._clock = clock
        self._new_id = new_id
        self._notify = notify
        self._metrics = metrics or NoIdentityMetrics()
        self.source = identity_source(genesis.chain_id)

    # --- authorities and publishers (admin) -------------------------------------------

    def register_authority(self, caller: str, *, did: str, name: str) -> Outcome:
        require_admin(self._genesis, caller, "register an authority")
        data = AuthorityRegistered(did=did, name=name)

        def decide(tx: TxT) -> Outcome | _New:
            if did in self._genesis.authorities:
                return Outcome(False, _answer(None, data.model_dump(mode="json")))
            earlier = _last(self._journal.about([did], tx), AUTHORITY_REGISTERED)
            return _New(data, did) if earlier is None else self._repeat(earlier)

        return self._transact(decide)

    def register_publisher(
        self, caller: str, *, did: str, name: str, topic: str, types: Sequence[str]
    ) -> Outcome:
        require_admin(self._genesis, caller, "register a publisher")
        data = PublisherRegistered(did=did, name=name, topic=topic, types=tuple(types))

        def decide(tx: TxT) -> Outcome | _New:
            journal = self._journal.about([did], tx)
            current = _role(roles_of(self._genesis, did, journal), "publisher")
            if current is not None and current.revoked:
                raise RevokedDidError(
                    "this publisher DID was revoked and stays revoked; register a new key"
                )
            wanted = data.model_dump(mode="json")
            if current is None or current.details != _grant_details(wanted):
                return _New(data, did)
            latest = _last(journal, PUBLISHER_REGISTERED)
            return Outcome(False, _answer(None, wanted)) if latest is None else self._repeat(latest)

        return self._transact(decide)

    def revoke_publisher(self, caller: str, *, did: str) -> Outcome:
        require_admin(self._genesis, caller, "revoke a publisher")

        def decide(tx: TxT) -> Outcome | _New:
            journal = self._journal.about([did], tx)
            current = _role(roles_of(self._genesis, did, journal), "publisher")
            if current is None:
                raise NotFoundError("no publisher with this DID")
            revocation = _last(journal, PUBLISHER_REVOKED)
            if current.revoked and revocation is not None:
                return self._repeat(revocation)
            return _New(PublisherRevoked(did=did), did)

        return self._transact(decide)

    # --- practitioners and their credentials -----------------------------------------

    def register_practitioner(self, caller: str, credential: Mapping[str, Any]) -> Outcome:
        """Verify the credential against the authorities trusted and the revocations known
        now; 422 (`CredentialError`) with its reason if it fails."""

        def decide(tx: TxT) -> Outcome | _New:
            verified = self._verify(credential, tx)
            did = verified.subject.id
            require_practitioner_caller(self._genesis, caller, subject=did, issuer=verified.issuer)
            journal = self._journal.about([did], tx)
            current = _role(roles_of(self._genesis, did, journal), "practitioner")
            earlier = _last(journal, PRACTITIONER_REGISTERED)
            in_force = None if current is None else current.details.get("credential")
            if earlier is not None and in_force == verified.digest:
                return self._repeat(earlier)
            data = PractitionerRegistered(
                did=did,
                issuer=verified.issuer,
                credential=verified.digest,
                role=str(verified.subject.role),
                valid_from=verified.valid_from,
                valid_until=verified.valid_until,
            )
            return _New(data, did)

        return self._transact(decide)

    def revoke_credential(self, caller: str, credential: str | Mapping[str, Any]) -> Outcome:
        """Revoke a registered credential, named by its digest or given whole."""
        digest = credential if isinstance(credential, str) else credential_digest(credential)

        def decide(tx: TxT) -> Outcome | _New:
            entries = self._journal.with_credential(digest, tx)
            registration = _last(entries, PRACTITIONER_REGISTERED)
            if registration is None:
                raise NotFoundError("no practitioner was registered with this credential")
            issuer = str(registration.data["issuer"])
            require_issuer(caller, issuer)
            revocation = _last(entries, PRACTITIONER_REVOKED)
            if revocation is not None:
                return self._repeat(revocation)
            did = str(registration.data["did"])
            return _New(PractitionerRevoked(did=did, issuer=issuer, credential=digest), did)

        return self._transact(decide)

    def verify_credential(self, credential: Mapping[str, Any]) -> dict[str, Any]:
        """The detailed report on any credential, against the authorities trusted now."""
        report = inspect_credential(
            credential,
            now=self._clock(),
            trusted_issuers=self._trusted(None),
            revoked=self._revoked(None),
        )
        return dict(report.as_dict())

    # --- patients ----------------------------------------------------------------------

    def register_patient(self, caller: str) -> Outcome:
        """Self-registration: the caller is the patient; only the pseudonym is recorded."""
        pseudonym = patient_pseudonym(self._pseudonym_key, caller)

        def decide(tx: TxT) -> Outcome | _New:
            earlier = _last(self._journal.about([pseudonym], tx), PATIENT_REGISTERED)
            if earlier is not None:
                return self._repeat(earlier)
            return _New(PatientRegistered(pseudonym=pseudonym), pseudonym)

        return self._transact(decide)

    # --- the directory -------------------------------------------------------------------

    def describe(self, caller: str, did: str) -> dict[str, Any]:
        """`did`'s roles; a patient role only for the patient and the admin (404 otherwise,
        so whether a DID is a patient does not leak)."""
        pseudonym = patient_pseudonym(self._pseudonym_key, did)
        journal = self._journal.about([did, pseudonym])
        views: list[RoleView] = roles_of(self._genesis, did, journal)
        if may_see_patient(self._genesis, caller, did):
            views += patient_roles(journal, pseudonym)
        if not views:
            raise NotFoundError("no such DID")
        now = self._clock()
        return {"did": did, "roles": [view.as_dict(now) for view in views]}

    # --- internals ---------------------------------------------------------------------

    def _transact(self, decide: Callable[[TxT], Outcome | _New]) -> Outcome:
        """Decide and write in one serialised transaction; wake the relay after the commit."""
        with self._uow.transaction() as tx:
            self._journal.lock(tx)
            decision = decide(tx)
            if isinstance(decision, Outcome):
                return decision
            now = self._clock()
            change = sign_change(
                decision.data,
                subject=decision.subject,
                key=self._key,
                chain_id=self._genesis.chain_id,
                event_id=self._new_id(now),
                time=now,
            )
            entry = JournalEntry(change.event_id, change.type, change.subject, change.data)
            self._journal.record(tx, entry)
            self._outbox.add(tx, [message_for_event(change.event, topic=IDENTITY_EVENTS)])
        kind = change_kind(change.type)
        self._metrics.changed(kind)
        self._notify()
        log.info("identity change", extra={"kind": kind, "event_id": change.event_id})
        return Outcome(True, self._repeat(entry).body)

    def _repeat(self, entry: JournalEntry) -> Outcome:
        event = {"source": self.source, "id": entry.event_id, "type": entry.type}
        return Outcome(False, _answer(event, entry.data))

    def _verify(self, credential: Mapping[str, Any], tx: TxT) -> VerifiedPractitioner:
        try:
            return verify_practitioner_credential(
                credential,
                now=self._clock(),
                trusted_issuers=self._trusted(tx),
                revoked=self._revoked(tx),
            )
        except CredentialError as exc:
            self._metrics.refused(str(exc.reason))
            raise

    def _trusted(self, tx: TxT | None) -> frozenset[str]:
        return trusted_authorities(self._genesis, self._journal.of_type(AUTHORITY_REGISTERED, tx))

    def _revoked(self, tx: TxT | None) -> frozenset[str]:
        entries = self._journal.of_type(PRACTITIONER_REVOKED, tx)
        return frozenset(entry.credential for entry in entries if entry.credential is not None)


@dataclass(frozen=True, slots=True)
class _New:
    """A decision to make a change: this event data, about this subject."""

    data: EventData
    subject: str


def _answer(event: Mapping[str, str] | None, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"event": None if event is None else dict(event), "data": dict(data)}


def _role(views: Sequence[RoleView], role: str) -> RoleView | None:
    return next((view for view in views if view.role == role), None)


def _last(entries: Sequence[JournalEntry], event_type: str) -> JournalEntry | None:
    return next((entry for entry in reversed(entries) if entry.type == event_type), None)


def _grant_details(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": data["name"], "topic": data["topic"], "types": list(data["types"])}
