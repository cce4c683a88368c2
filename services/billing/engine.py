"""The billing engine: every consultation event on `clinical.events` becomes exactly one
`InvoiceIssued` (with its `ClaimSubmitted`) or one `InvoiceRejected`.

The stream adapter (`adapters.stream`, faust) delivers each message at least once; this
handler makes that exactly-once in effect. It verifies the event as the sealer will (a valid
signature by a signer the chain lets publish it), then, in one serialised transaction: finds
the outcome of `(source, id)` if it was handled before (then does nothing), or runs the
contract (`core.billing.bill`) and stores the invoice, the plan state, the journal entry, the
outcome and the outbox messages together. Bad input never raises: an event that cannot be
billed is an `InvoiceRejected` with the reason; one the sealer will refuse (unsigned,
unauthorised) is counted and left to the sealer's `ledger.rejected`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Final, Generic

from services.billing.core.billing import ContractVersion, Issue, Rejection, bill, invoice_issued
from services.billing.core.journal import postings_for_invoice
from services.billing.core.model import (
    ConsultationOutcome,
    InvoiceStatus,
    OutcomeKind,
    StoredInvoice,
)
from services.billing.following import Directory
from services.billing.ledger import BillingLedger
from services.billing.ports import BillingBook, BillingMetrics, TxT
from shared.admission import InMemorySeenEvents, admit
from shared.envelope import EventRejected, ParsedEvent, parse_event
from shared.events.billing import (
    CONSULTATION_COMPLETED,
    ClaimSubmitted,
    ConsultationRef,
    InvoiceRejected,
)
from shared.store import UnitOfWork
from shared.topics import CLINICAL_EVENTS

__all__ = ["BillingEngine", "may_be_consultation"]

log = logging.getLogger("careledger.billing")

_SUBJECT: Final = re.compile(r"[!-~]{1,256}")
_CONSULTATION_LITERAL: Final = CONSULTATION_COMPLETED.encode("ascii")


def may_be_consultation(value: bytes | None) -> bool:
    """False only for a message that cannot be a consultation event, decided without parsing.

    Sound, not a guess: a JSON string whose value is the consultation type is written either
    literally or with at least one escape (``\\u0063onsultation``), so a value holding neither
    the literal type nor a backslash cannot carry it. Most of `clinical.events` is other
    clinical events, and this keeps their cost on billing to a byte search.
    """
    return value is None or _CONSULTATION_LITERAL in value or b"\\" in value


class BillingEngine(Generic[TxT]):
    """Turns consultation events into invoices or rejections, once each."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        book: BillingBook[TxT],
        ledger: BillingLedger[TxT],
        directory: Directory,
        metrics: BillingMetrics,
        notify: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._book = book
        self._ledger = ledger
        self._directory = directory
        self._metrics = metrics
        self._notify = notify

    def select(self, value: bytes | None) -> bool:
        """Whether `handle` must see this message; one it need not see is counted as ignored
        (`other_type`) here. Cheap enough to run for every message on the stream's thread."""
        if may_be_consultation(value):
            return True
        self._metrics.consultation("ignored", "other_type")
        return False

    def handle(self, value: bytes | None) -> str:
        """Handle one `clinical.events` message; returns what became of it (for metrics and
        tests): invoiced, rejected, duplicate, or ignored."""
        if value is None:
            return self._ignored("no_value")
        try:
            parsed = parse_event(value)
            if parsed.type != CONSULTATION_COMPLETED:
                # Other clinical events are not billing's: counted (no warning for each), and
                # their signatures are the sealer's to check, not ours.
                self._metrics.consultation("ignored", "other_type")
                return "ignored"
            # The sealer's own rule (signature, signer in force, type permitted on the topic),
            # at the registry billing has followed.
            registry, _ = self._directory.current()
            admit(
                parsed,
                topic=CLINICAL_EVENTS,
                registry=registry,
                seen=InMemorySeenEvents(),
                at=self._ledger.now(),
            )
        except EventRejected as exc:
            return self._ignored(exc.reason.value)
        outcome = self._bill(parsed)
        self._notify()
        return outcome

    def _ignored(self, reason: str) -> str:
        self._metrics.consultation("ignored", reason)
        log.warning("consultation event not billable", extra={"reason": reason})
        return "ignored"

    def _bill(self, parsed: ParsedEvent) -> str:
        source, event_id = parsed.dedup_key
        with self._uow.transaction() as tx:
            self._book.lock(tx)
            if self._book.outcome(source, event_id, tx) is not None:
                self._metrics.consultation("duplicate", "redelivered")
                return "duplicate"
            now = self._ledger.now()
            registry, height = self._directory.current()
            contracts = [
                ContractVersion(c.contract, c.content_hash, c.deployed_at)
                for c in self._book.contracts(tx)
            ]

            def invoice_for_encounter(encounter: str) -> str | None:
                found = self._book.invoice_for_encounter(encounter, tx)
                return None if found is None else found.invoice_id

            decision = bill(
                parsed.event.get("data"),
                at=now,
                contracts=contracts,
                registry=registry,
                invoice_for_encounter=invoice_for_encounter,
                deductible_met=lambda key: self._book.deductible_met(key, tx),
            )
            ref = ConsultationRef(source=source, id=event_id)
            if isinstance(decision, Issue):
                self._issue(tx, decision, ref, height, now)
                self._metrics.consultation("invoiced", "")
                return "invoiced"
            self._reject(tx, decision, ref, height, now)
        self._metrics.consultation("rejected", decision.reason)
        log.info("consultation rejected", extra={"reason": decision.reason})
        return "rejected"

    def _issue(
        self, tx: TxT, issue: Issue, ref: ConsultationRef, height: int, now: datetime
    ) -> None:
        charges, consultation = issue.charges, issue.consultation
        invoice_id = self._ledger.new_id()
        issued = self._ledger.emit(
            tx,
            invoice_issued(issue, invoice_id=invoice_id, consultation=ref, registry_height=height),
            subject=invoice_id,
            now=now,
        )
        claim_id = claim_event_id = None
        if charges.payer_share > 0:
            claim_id = self._ledger.new_id()
            claim = ClaimSubmitted(
                claim_id=claim_id,
                invoice_id=invoice_id,
                plan_id=charges.plan_id,
                service_code=charges.service_code,
                currency=charges.currency,
                amount=charges.payer_share,
            )
            claim_event_id = self._ledger.emit(tx, claim, subject=invoice_id, now=now).event_id
        stored = StoredInvoice(
            invoice_id=invoice_id,
            encounter_id=consultation.encounter_id,
            consultation_source=ref.source,
            consultation_id=ref.id,
            practitioner=consultation.practitioner,
            patient=consultation.patient,
            plan_year=issue.plan_key.plan_year,
            consultation_start=consultation.start,
            consultation_end=consultation.end,
            modifiers=consultation.modifiers,
            place_of_service=consultation.place_of_service,
            charges=charges,
            deductible_met_before=issue.deductible_met_before,
            registry_height=height,
            issued_at=now,
            status=InvoiceStatus.ISSUED,
            event_id=issued.event_id,
            claim_id=claim_id,
            claim_event_id=claim_event_id,
        )
        self._book.add_invoice(tx, stored)
        self._book.set_deductible_met(tx, issue.plan_key, charges.plan_state.deductible_met)
        self._book.add_entry(tx, postings_for_invoice(stored.invoice()), now)
        self._book.add_outcome(
            tx,
            ConsultationOutcome(
                source=ref.source,
                event_id=ref.id,
                kind=OutcomeKind.INVOICED,
                encounter_id=consultation.encounter_id,
                invoice_id=invoice_id,
                reason=None,
                billing_event_id=issued.event_id,
                at=now,
            ),
        )

    def _reject(
        self, tx: TxT, rejection: Rejection, ref: ConsultationRef, height: int, now: datetime
    ) -> None:
        event = self._ledger.emit(
            tx,
            InvoiceRejected(
                consultation=ref,
                encounter_id=rejection.encounter_id,
                registry_height=height,
                reason=rejection.reason,
                detail=rejection.detail,
                invoice_id=rejection.invoice_id,
            ),
            subject=_subject(rejection.encounter_id, ref.id),
            now=now,
        )
        self._book.add_outcome(
            tx,
            ConsultationOutcome(
                source=ref.source,
                event_id=ref.id,
                kind=OutcomeKind.REJECTED,
                encounter_id=rejection.encounter_id,
                invoice_id=rejection.invoice_id,
                reason=rejection.reason,
                billing_event_id=event.event_id,
                at=now,
            ),
        )


def _subject(encounter_id: str | None, event_id: str) -> str:
    """The encounter as the rejection's subject when it can be one (a CloudEvents subject is
    printable ASCII without spaces); otherwise the consultation event's id, which already is."""
    if encounter_id is not None and _SUBJECT.fullmatch(encounter_id):
        return encounter_id
    return event_id
