"""The billing engine: every consultation sealed in a block of the chain becomes exactly one
`InvoiceIssued` (with its `ClaimSubmitted`) or one `InvoiceRejected`.

The engine is the billing service's `FollowedBlockHandler`: the block stream
(`adapters.stream`, faust on `ledger.blocks`) hands it each block once the chain follower
(`following.ChainReader`, on `shared.follower.BlockFollower`) checked its place in the chain.
For one block, in one serialised transaction: the block's identity events change the signer
registry as admission changed it, each consultation read from `clinical.events` is billed
with the registry at its own place in the block (`core.consultations`), and the follower's new
position (with the registry when it changed) is stored. The block's invoices, outcomes and
outbox messages and the position commit together, so a restart resumes after the last block
billed and a block delivered again bills nothing twice; the outcome of `(source, id)` is still
looked up first, so a consultation decided before (by an older version of the service, which
billed `clinical.events` directly) is never decided again.

The events of a block were admitted by the sealer (signature, signer in force, type allowed
on the topic, never sealed before), and the validators re-check each one: billing trusts that
admission as the follower trusts it (docs/follower.md) and verifies no event signature. Bad
consultation data never raises: it is an `InvoiceRejected` with the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Final, Generic

from services.billing.core.billing import (
    ContractVersion,
    Issue,
    Rejection,
    bill,
    invoice_issued,
)
from services.billing.core.consultations import SealedConsultation, consultations_of
from services.billing.core.journal import postings_for_invoice
from services.billing.core.model import (
    ConsultationOutcome,
    InvoiceStatus,
    OutcomeKind,
    StoredInvoice,
)
from services.billing.following import Directory
from services.billing.ledger import BillingLedger
from services.billing.ports import BillingBook, BillingMetrics, ChainView, TxT
from shared.events.billing import ClaimSubmitted, ConsultationRef, InvoiceRejected
from shared.follower import FollowedBlock, FollowerState
from shared.store import UnitOfWork

__all__ = ["BillingEngine"]

log = logging.getLogger("careledger.billing")

_SUBJECT: Final = re.compile(r"[!-~]{1,256}")


class BillingEngine(Generic[TxT]):
    """Bills the consultations of followed blocks, once each; keeps the registry and the
    follower's position with them."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        book: BillingBook[TxT],
        chain: ChainView[TxT],
        ledger: BillingLedger[TxT],
        directory: Directory,
        metrics: BillingMetrics,
        notify: Callable[[], None],
    ) -> None:
        self._uow = uow
        self._book = book
        self._chain = chain
        self._ledger = ledger
        self._directory = directory
        self._metrics = metrics
        self._notify = notify

    # --- FollowedBlockHandler -------------------------------------------------------------

    def position(self) -> FollowerState | None:
        """The follower state stored with the last block billed (None: start at genesis)."""
        saved = self._chain.position()
        return None if saved is None else FollowerState.from_json_value(saved)

    def apply(self, block: FollowedBlock, state: FollowerState) -> None:
        self.bill_block(block, state)

    def bill_block(self, block: FollowedBlock, state: FollowerState) -> list[str]:
        """Bill the block's consultations and store `state` (whose head is the block's header)
        in one transaction; the outcome of each consultation, in leaf order: invoiced,
        rejected, or duplicate (decided before). Raises `shared.block.SourceOffsetError` if
        the header's source runs do not place every event (nothing is stored then)."""
        before, _ = self._directory.current()
        read = consultations_of(block, state.head, before)
        outcomes: list[tuple[str, str]] = []
        with self._uow.transaction() as tx:
            if read.consultations:
                self._book.lock(tx)
                contracts = [
                    ContractVersion(c.contract, c.content_hash, c.deployed_at)
                    for c in self._book.contracts(tx)
                ]
                for consultation in read.consultations:
                    outcomes.append(self._bill(tx, consultation, contracts))
            changed = read.registry is not before
            self._chain.save_position(
                tx,
                position=state.to_json_value(),
                height=block.height,
                registry=read.registry.to_json_value() if changed else None,
            )
        # Counted once committed: an attempt rolled back (and retried) counts nothing.
        self._directory.replace(read.registry, block.height)
        for outcome, reason in outcomes:
            self._metrics.consultation(outcome, reason)
        for _ in range(read.elsewhere):
            self._metrics.consultation("ignored", "other_topic")
        if changed:
            log.info("followed identity changes", extra={"height": block.height})
        if any(outcome != "duplicate" for outcome, _ in outcomes):
            self._notify()
        return [outcome for outcome, _ in outcomes]

    def _bill(
        self, tx: TxT, sealed: SealedConsultation, contracts: list[ContractVersion]
    ) -> tuple[str, str]:
        """Decide one consultation in `tx`: (outcome, reason) for the metrics."""
        source, event_id = sealed.source, sealed.id
        if self._book.outcome(source, event_id, tx) is not None:
            return ("duplicate", "redelivered")
        now = self._ledger.now()

        def invoice_for_encounter(encounter: str) -> str | None:
            found = self._book.invoice_for_encounter(encounter, tx)
            return None if found is None else found.invoice_id

        decision = bill(
            sealed.data,
            at=now,
            contracts=contracts,
            registry=sealed.registry,
            invoice_for_encounter=invoice_for_encounter,
            deductible_met=lambda key: self._book.deductible_met(key, tx),
        )
        ref = ConsultationRef(source=source, id=event_id)
        if isinstance(decision, Issue):
            self._issue(tx, decision, ref, sealed.height, now)
            return ("invoiced", "")
        self._reject(tx, decision, ref, sealed.height, now)
        log.info("consultation rejected", extra={"reason": decision.reason})
        return ("rejected", str(decision.reason))

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
