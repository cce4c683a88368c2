"""The billing service's use cases behind the HTTP API: tariffs, payments, disputes, voids,
and what a caller may see of an invoice.

Each change is one serialised transaction holding the state, the journal entry and the signed
events (through the outbox), so a 2xx means all of it is durable; the relay is woken after the
commit. Who may do what: the admin deploys tariffs, records payments of either party, and
voids; a patient (recognised by the pseudonym of their DID) pays their own share and disputes
their own invoices; the invoice's patient, its practitioner and the admin may read it. Anyone
else is told the invoice does not exist. A practitioner whose credential was revoked (on the
chain billing follows) reads no invoice as its practitioner any more: 403.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final, Generic

from pydantic import ValidationError

from services.billing.core.fhir import InvoiceView, fhir_bundle
from services.billing.core.journal import (
    Account,
    JournalEntry,
    postings_for_payment,
    postings_for_refund,
    postings_for_void,
)
from services.billing.core.model import (
    DeployedContract,
    InvoiceStatus,
    StoredDispute,
    StoredInvoice,
    StoredPayment,
    StoredRefund,
)
from services.billing.core.settlement import (
    Party,
    Payment,
    PaymentRefusalReason,
    PaymentRefused,
    Settlement,
    SettlementStatus,
    settle,
)
from services.billing.core.tariff import TariffContract, content_hash
from services.billing.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
)
from services.billing.ledger import BillingLedger
from services.billing.ports import BillingBook, BillingMetrics, TxT
from shared.block import format_timestamp
from shared.envelope import MAX_EVENT_BYTES
from shared.events.billing import (
    ContractDeployed,
    DisputeReason,
    InvoiceDisputed,
    InvoiceSettled,
    InvoiceVoided,
    PayingParty,
    PaymentReceived,
    RefundIssued,
    VoidReason,
)
from shared.genesis import GenesisConfig
from shared.store import UnitOfWork

__all__ = ["BillingService", "PaymentOutcome", "invoice_document"]

log = logging.getLogger("careledger.billing")

#: The largest amount (minor units) any total may reach: JSON's exact integer limit.
_LARGEST_AMOUNT: Final = 2**53 - 1


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """A payment counted (or found again by its idempotency key) and where the invoice
    stands after it."""

    payment: StoredPayment
    created: bool
    invoice: StoredInvoice
    settlement: Settlement
    refund: StoredRefund | None


class BillingService(Generic[TxT]):
    """The use cases; `caller` is always the authenticated DID."""

    def __init__(
        self,
        *,
        uow: UnitOfWork[TxT],
        book: BillingBook[TxT],
        ledger: BillingLedger[TxT],
        genesis: GenesisConfig,
        pseudonym: Callable[[str], str],
        metrics: BillingMetrics,
        notify: Callable[[], None],
        practitioner_revoked: Callable[[str], bool] = lambda _did: False,
    ) -> None:
        self._uow = uow
        self._practitioner_revoked = practitioner_revoked
        self._book = book
        self._ledger = ledger
        self._genesis = genesis
        self._pseudonym = pseudonym
        self._metrics = metrics
        self._notify = notify
        self.source = ledger.source

    # --- tariffs -----------------------------------------------------------------------

    def deploy_contract(
        self, caller: str, document: Mapping[str, Any]
    ) -> tuple[DeployedContract, bool]:
        """Deploy the next version (exactly the latest + 1). The same document again is
        answered with the deployed one (`created` False); another document at a deployed
        version, or a skipped version, is a conflict."""
        self._require_admin(caller, "deploy tariff contracts")
        try:
            contract = TariffContract.model_validate(document)
        except ValidationError as exc:
            raise InvalidRequestError(f"not a valid tariff contract: {_first_error(exc)}") from None
        digest = content_hash(contract)
        with self._uow.transaction() as tx:
            self._book.lock(tx)
            deployed = self._book.contracts(tx)
            same = next((d for d in deployed if d.contract.version == contract.version), None)
            if same is not None:
                if same.content_hash == digest:
                    return same, False
                raise ConflictError(f"version {contract.version} is deployed with other content")
            latest = deployed[-1].contract.version if deployed else 0
            if contract.version != latest + 1:
                raise ConflictError(f"the next version is {latest + 1}, not {contract.version}")
            now = self._ledger.now()
            try:
                event = self._ledger.emit(
                    tx,
                    ContractDeployed(
                        contract_id=contract.contract_id,
                        version=contract.version,
                        content_hash=digest,
                        effective_from=contract.effective_from,
                        contract=contract.model_dump(mode="json"),
                    ),
                    subject=contract.contract_id,
                    now=now,
                )
            except ValueError:
                # The whole document goes on the chain in one event, and events are bounded
                # (far below the request limit); signing refuses an event the sealer would.
                raise InvalidRequestError(
                    f"the contract does not fit in one chain event ({MAX_EVENT_BYTES} bytes)"
                ) from None
            stored = DeployedContract(contract, digest, now, event.event_id)
            self._book.add_contract(tx, stored)
        self._notify()
        log.info("tariff contract deployed", extra={"version": contract.version})
        return stored, True

    def contracts(self) -> Sequence[DeployedContract]:
        return self._book.contracts()

    # --- payments ----------------------------------------------------------------------

    def pay(
        self,
        caller: str,
        invoice_id: str,
        *,
        party: Party,
        amount: int,
        currency: str,
        reference: str,
        idempotency_key: str,
    ) -> PaymentOutcome:
        """Count a payment once per idempotency key; settle the invoice when every share is
        paid, and refund at once what a party paid above its share."""
        with self._uow.transaction() as tx:
            self._book.lock(tx)
            stored = self._visible(caller, invoice_id, tx)
            self._require_payer(caller, stored, party)
            if stored.status is InvoiceStatus.VOIDED:
                raise ConflictError("the invoice is voided")
            invoice = stored.invoice()
            earlier = self._book.payments(invoice_id, tx)
            payment = Payment(
                invoice_id=invoice_id,
                party=party,
                amount=amount,
                currency=currency,
                reference=reference,
                idempotency_key=idempotency_key,
            )
            try:
                entry = postings_for_payment(invoice, [_core(p) for p in earlier], payment)
            except PaymentRefused as refused:
                self._metrics.payment(party.value, refused.reason.value)
                if refused.reason is PaymentRefusalReason.IDEMPOTENCY_CONFLICT:
                    raise ConflictError(refused.detail) from None
                raise InvalidRequestError(refused.detail) from None
            if entry is None:
                again = next(p for p in earlier if p.idempotency_key == idempotency_key)
                return PaymentOutcome(
                    again, False, stored, settle(invoice, map(_core, earlier)), None
                )
            if sum(p.amount for p in earlier if p.party is party) + amount > _LARGEST_AMOUNT:
                # Settlement totals are amounts too; past this one they cannot be recorded.
                self._metrics.payment(party.value, "too_large")
                raise InvalidRequestError(
                    f"the {party.value}'s payments would add up to more than {_LARGEST_AMOUNT}"
                )
            now = self._ledger.now()
            counted, refund, stored = self._count(tx, stored, earlier, payment, entry, now)
        self._notify()
        self._metrics.payment(party.value, "counted")
        return PaymentOutcome(
            counted, True, stored, settle(invoice, map(_core, [*earlier, counted])), refund
        )

    def _count(  # noqa: PLR0917 - one step of `pay`, split for reading
        self,
        tx: TxT,
        stored: StoredInvoice,
        earlier: Sequence[StoredPayment],
        payment: Payment,
        entry: JournalEntry,
        now: datetime,
    ) -> tuple[StoredPayment, StoredRefund | None, StoredInvoice]:
        invoice = stored.invoice()
        refunds_account = sum(p.amount for p in entry.postings if p.account is Account.REFUNDS)
        payment_id = self._ledger.new_id()
        event = self._ledger.emit(
            tx,
            PaymentReceived(
                invoice_id=invoice.invoice_id,
                payment_id=payment_id,
                party=PayingParty(payment.party.value),
                amount=payment.amount,
                currency=payment.currency,
                reference=payment.reference,
                applied=payment.amount - refunds_account,
                excess=refunds_account,
            ),
            subject=invoice.invoice_id,
            now=now,
        )
        counted = StoredPayment(
            payment_id=payment_id,
            invoice_id=invoice.invoice_id,
            party=payment.party,
            amount=payment.amount,
            currency=payment.currency,
            reference=payment.reference,
            idempotency_key=payment.idempotency_key,
            applied=payment.amount - refunds_account,
            excess=refunds_account,
            received_at=now,
            event_id=event.event_id,
        )
        self._book.add_payment(tx, counted)
        self._book.add_entry(tx, entry, now)
        settlement = settle(invoice, map(_core, [*earlier, counted]))
        if settlement.status is not SettlementStatus.OPEN and stored.status in (
            InvoiceStatus.ISSUED,
            InvoiceStatus.DISPUTED,
        ):
            self._ledger.emit(
                tx,
                InvoiceSettled(
                    invoice_id=invoice.invoice_id,
                    currency=settlement.currency,
                    paid_by_payer=settlement.paid_by_payer,
                    paid_by_patient=settlement.paid_by_patient,
                ),
                subject=invoice.invoice_id,
                now=now,
            )
            self._book.set_status(tx, invoice.invoice_id, InvoiceStatus.SETTLED)
            stored = _with_status(stored, InvoiceStatus.SETTLED)
        refund = None
        if refunds_account > 0:
            refund = self._refund(tx, stored, settlement, payment.party, refunds_account, now)
        return counted, refund, stored

    def _refund(  # noqa: PLR0917 - one step of `pay`, split for reading
        self,
        tx: TxT,
        stored: StoredInvoice,
        settlement: Settlement,
        party: Party,
        amount: int,
        now: datetime,
    ) -> StoredRefund:
        invoice = stored.invoice()
        before = sum(r.amount for r in self._book.refunds(invoice.invoice_id, tx))
        refund_id = self._ledger.new_id()
        entry = postings_for_refund(invoice, settlement, refund_id, refunded_before=before)
        event = self._ledger.emit(
            tx,
            RefundIssued(
                invoice_id=invoice.invoice_id,
                refund_id=refund_id,
                party=PayingParty(party.value),
                currency=invoice.charges.currency,
                amount=amount,
            ),
            subject=invoice.invoice_id,
            now=now,
        )
        refund = StoredRefund(
            refund_id=refund_id,
            invoice_id=invoice.invoice_id,
            party=party,
            amount=amount,
            currency=invoice.charges.currency,
            issued_at=now,
            event_id=event.event_id,
        )
        self._book.add_refund(tx, refund)
        self._book.add_entry(tx, entry, now)
        return refund

    # --- disputes and voids ------------------------------------------------------------

    def dispute(
        self, caller: str, invoice_id: str, *, party: Party, reason: DisputeReason
    ) -> tuple[StoredDispute, StoredInvoice]:
        """Open a dispute: the admin for either party, a patient for their own invoice."""
        with self._uow.transaction() as tx:
            self._book.lock(tx)
            stored = self._visible(caller, invoice_id, tx)
            self._require_payer(caller, stored, party)
            if stored.status is InvoiceStatus.VOIDED:
                raise ConflictError("the invoice is voided")
            now = self._ledger.now()
            dispute_id = self._ledger.new_id()
            event = self._ledger.emit(
                tx,
                InvoiceDisputed(
                    invoice_id=invoice_id,
                    dispute_id=dispute_id,
                    party=PayingParty(party.value),
                    reason=reason,
                ),
                subject=invoice_id,
                now=now,
            )
            dispute = StoredDispute(dispute_id, invoice_id, party, reason, now, event.event_id)
            self._book.add_dispute(tx, dispute)
            if stored.status is InvoiceStatus.ISSUED:
                self._book.set_status(tx, invoice_id, InvoiceStatus.DISPUTED)
                stored = _with_status(stored, InvoiceStatus.DISPUTED)
        self._notify()
        return dispute, stored

    def void(self, caller: str, invoice_id: str, *, reason: VoidReason) -> StoredInvoice:
        """Void an invoice nobody has paid (the admin): its journal entry is reversed."""
        self._require_admin(caller, "void invoices")
        with self._uow.transaction() as tx:
            self._book.lock(tx)
            stored = self._book.invoice(invoice_id, tx)
            if stored is None:
                raise NotFoundError("no such invoice")
            if stored.status is InvoiceStatus.VOIDED:
                raise ConflictError("the invoice is already voided")
            if self._book.payments(invoice_id, tx):
                raise ConflictError("payments were counted; an invoice with payments is not voided")
            now = self._ledger.now()
            self._ledger.emit(
                tx, InvoiceVoided(invoice_id=invoice_id, reason=reason), subject=invoice_id, now=now
            )
            self._book.add_entry(tx, postings_for_void(stored.invoice()), now)
            self._book.set_status(tx, invoice_id, InvoiceStatus.VOIDED, void_reason=reason)
        self._notify()
        return _with_status(stored, InvoiceStatus.VOIDED, reason)

    # --- reads -------------------------------------------------------------------------

    def invoice(self, caller: str, invoice_id: str) -> dict[str, Any]:
        stored = self._visible(caller, invoice_id, None)
        return self.invoice_document_of(stored)

    def invoices(self, caller: str, *, encounter: str | None) -> list[dict[str, Any]]:
        """The invoice of an encounter (when the caller may see it), or a patient's own."""
        if encounter is not None:
            found = self._book.invoice_for_encounter(encounter)
            if found is None or not self._may_read(caller, found):
                return []
            return [self.invoice_document_of(found)]
        if caller == self._genesis.admin:
            raise InvalidRequestError("name an encounter: ?encounter=<id>")
        return [
            self.invoice_document_of(i) for i in self._book.invoices_of(self._pseudonym(caller))
        ]

    def fhir(self, caller: str, invoice_id: str) -> dict[str, Any]:
        """The invoice as a FHIR R4 Bundle of an `Invoice` and a `Claim` (validated)."""
        stored = self._visible(caller, invoice_id, None)
        payments = self._book.payments(invoice_id)
        return fhir_bundle(_view(stored, payments))

    def journal(self, caller: str, invoice_id: str) -> list[JournalEntry]:
        self._visible(caller, invoice_id, None)
        return list(self._book.entries(invoice_id))

    def invoice_document_of(self, stored: StoredInvoice) -> dict[str, Any]:
        """The API document of an invoice the caller was found allowed to see."""
        payments = self._book.payments(stored.invoice_id)
        return invoice_document(
            stored,
            payments,
            self._book.refunds(stored.invoice_id),
            self._book.disputes(stored.invoice_id),
            source=self._ledger.source,
        )

    # --- who may ----------------------------------------------------------------------

    def _require_admin(self, caller: str, action: str) -> None:
        if caller != self._genesis.admin:
            raise ForbiddenError(f"only the admin may {action}")

    def _may_read(self, caller: str, stored: StoredInvoice) -> bool:
        """The admin, the invoice's patient, and its practitioner while their credential is
        not revoked (a revoked one is refused with 403: they knew of the invoice anyway)."""
        if caller == self._genesis.admin or self._pseudonym(caller) == stored.patient:
            return True
        if caller != stored.practitioner:
            return False
        if self._practitioner_revoked(caller):
            raise ForbiddenError(
                "the practitioner's credential is revoked: the invoices of their consultations "
                "are read by the admin"
            )
        return True

    def _visible(self, caller: str, invoice_id: str, tx: TxT | None) -> StoredInvoice:
        stored = self._book.invoice(invoice_id, tx)
        if stored is None or not self._may_read(caller, stored):
            raise NotFoundError("no such invoice")
        return stored

    def _require_payer(self, caller: str, stored: StoredInvoice, party: Party) -> None:
        if caller == self._genesis.admin:
            return
        if party is not Party.PATIENT or self._pseudonym(caller) != stored.patient:
            raise ForbiddenError(
                "a patient acts for the patient's share of their own invoices; the admin for "
                "the payer"
            )


def _core(payment: StoredPayment) -> Payment:
    return Payment(
        invoice_id=payment.invoice_id,
        party=payment.party,
        amount=payment.amount,
        currency=payment.currency,
        reference=payment.reference,
        idempotency_key=payment.idempotency_key,
    )


def _with_status(
    stored: StoredInvoice, status: InvoiceStatus, void_reason: VoidReason | None = None
) -> StoredInvoice:
    return replace(stored, status=status, void_reason=void_reason or stored.void_reason)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "contract"
    return f"{where}: {error['msg']}"[:300]


def _view(stored: StoredInvoice, payments: Sequence[StoredPayment]) -> InvoiceView:
    invoice = stored.invoice()
    # Validated from a mapping: the stored place of service is a plain string, which the
    # view narrows to the two telehealth places pricing admitted.
    return InvoiceView.model_validate(
        {
            "invoice": invoice,
            "practitioner": stored.practitioner,
            "patient": stored.patient,
            "consultation_start": stored.consultation_start,
            "consultation_end": stored.consultation_end,
            "modifiers": stored.modifiers,
            "place_of_service": stored.place_of_service,
            "issued_at": format_timestamp(stored.issued_at),
            "status": stored.status,
            "settlement": settle(invoice, map(_core, payments)) if payments else None,
        }
    )


def invoice_document(
    stored: StoredInvoice,
    payments: Sequence[StoredPayment],
    refunds: Sequence[StoredRefund],
    disputes: Sequence[StoredDispute],
    *,
    source: str,
) -> dict[str, Any]:
    """An invoice as the API answers it (docs/billing-api.md)."""
    charges = stored.charges
    settlement = settle(stored.invoice(), map(_core, payments))

    def ref(event_id: str | None) -> dict[str, str] | None:
        return None if event_id is None else {"source": source, "id": event_id}

    return {
        "invoice_id": stored.invoice_id,
        "status": stored.status.value,
        "encounter_id": stored.encounter_id,
        "consultation": {"source": stored.consultation_source, "id": stored.consultation_id},
        "practitioner": stored.practitioner,
        "patient": stored.patient,
        "issued_at": format_timestamp(stored.issued_at),
        "registry_height": stored.registry_height,
        "contract": {
            "contract_id": charges.contract_id,
            "version": charges.contract_version,
            "content_hash": charges.contract_hash,
        },
        "currency": charges.currency,
        "plan": {
            "plan_id": charges.plan_id,
            "plan_year": stored.plan_year,
            "deductible_met_before": stored.deductible_met_before,
            "deductible_met_after": charges.plan_state.deductible_met,
        },
        "service_code": charges.service_code,
        "charges": {
            "charge": charges.charge,
            "payer_share": charges.payer_share,
            "patient_share": charges.patient_share,
            "adjustments": charges.adjustments,
            "deductible_applied": charges.deductible_applied,
            "copay": charges.copay,
            "coinsurance": charges.coinsurance,
        },
        "settlement": {
            "status": settlement.status.value,
            "paid_by_payer": settlement.paid_by_payer,
            "paid_by_patient": settlement.paid_by_patient,
            "outstanding": settlement.outstanding,
            "refunded": sum(r.amount for r in refunds),
        },
        "void_reason": None if stored.void_reason is None else stored.void_reason.value,
        "payments": [
            {
                "payment_id": p.payment_id,
                "party": p.party.value,
                "amount": p.amount,
                "currency": p.currency,
                "reference": p.reference,
                "applied": p.applied,
                "excess": p.excess,
                "received_at": format_timestamp(p.received_at),
                "event": ref(p.event_id),
            }
            for p in payments
        ],
        "refunds": [
            {
                "refund_id": r.refund_id,
                "party": r.party.value,
                "amount": r.amount,
                "issued_at": format_timestamp(r.issued_at),
                "event": ref(r.event_id),
            }
            for r in refunds
        ],
        "disputes": [
            {
                "dispute_id": d.dispute_id,
                "party": d.party.value,
                "reason": d.reason.value,
                "opened_at": format_timestamp(d.opened_at),
                "event": ref(d.event_id),
            }
            for d in disputes
        ],
        "events": {"issued": ref(stored.event_id), "claim": ref(stored.claim_event_id)},
        "claim_id": stored.claim_id,
    }
