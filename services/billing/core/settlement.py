"""Settlement: whether an invoice is open, settled or over-paid, from its payments.

Payments are idempotent by their idempotency key: a payment whose key was already counted
changes nothing, and reusing a key for a different payment is refused. Each party owes its
own share (the payer the payer share, the patient the patient share); what a party pays above
its share is that party's over-payment, owed back to it as a refund.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from services.billing.core.pricing import Charges
from services.billing.core.tariff import Currency, MinorUnits
from services.billing.errors import BillingError

__all__ = [
    "Invoice",
    "Party",
    "Payment",
    "PaymentRefusalReason",
    "PaymentRefused",
    "Settlement",
    "SettlementStatus",
    "counted_payments",
    "settle",
]

_Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Party(StrEnum):
    """Who pays: the payer (the plan) or the patient."""

    PAYER = "payer"
    PATIENT = "patient"


class SettlementStatus(StrEnum):
    """Open: a share is still owed. Settled: every share paid exactly. Over-paid: every share
    paid, and some party paid more (the `refund_due`)."""

    OPEN = "open"
    SETTLED = "settled"
    OVER_PAID = "over_paid"


class PaymentRefusalReason(StrEnum):
    """Why a payment cannot be counted against an invoice."""

    WRONG_INVOICE = "wrong_invoice"
    CURRENCY_MISMATCH = "currency_mismatch"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"


# Named as the issue names refusals, not `...Error`.
class PaymentRefused(BillingError):  # noqa: N818
    """A payment does not fit the invoice: a machine reason and a human detail."""

    def __init__(self, reason: PaymentRefusalReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class Invoice(_Frozen):
    """An issued invoice: its id (given by the shell) and the charges it bills."""

    invoice_id: _Identifier
    charges: Charges

    def due(self, party: Party) -> int:
        """What this party owes in all."""
        if party is Party.PAYER:
            return self.charges.payer_share
        return self.charges.patient_share


class Payment(_Frozen):
    """A payment towards an invoice by one party, identified by its idempotency key."""

    invoice_id: _Identifier
    party: Party
    amount: Annotated[StrictInt, Field(gt=0, le=2**53 - 1)]
    currency: Currency
    reference: _Identifier
    idempotency_key: _Identifier


class Settlement(_Frozen):
    """Where an invoice stands after its (distinct) payments."""

    invoice_id: _Identifier
    currency: Currency
    status: SettlementStatus
    paid_by_payer: MinorUnits
    paid_by_patient: MinorUnits
    outstanding: MinorUnits
    refund_due_payer: MinorUnits
    refund_due_patient: MinorUnits
    idempotency_keys: tuple[_Identifier, ...]

    @property
    def refund_due(self) -> int:
        """Everything paid above the shares, to be refunded to whoever paid it."""
        return self.refund_due_payer + self.refund_due_patient

    def paid(self, party: Party) -> int:
        """What this party paid, counting each payment once."""
        return self.paid_by_payer if party is Party.PAYER else self.paid_by_patient


def counted_payments(invoice: Invoice, payments: Iterable[Payment]) -> tuple[Payment, ...]:
    """The payments that count, in order, each idempotency key once; raise `PaymentRefused`
    for a payment of another invoice or currency, or a key reused for a different payment."""
    seen: dict[str, Payment] = {}
    for payment in payments:
        _check_payment(invoice, payment)
        first = seen.setdefault(payment.idempotency_key, payment)
        if first != payment:
            raise PaymentRefused(
                PaymentRefusalReason.IDEMPOTENCY_CONFLICT,
                f"idempotency key {payment.idempotency_key!r} was used for a different payment",
            )
    return tuple(seen.values())


def settle(invoice: Invoice, payments: Iterable[Payment]) -> Settlement:
    """Decide whether the invoice is open, settled or over-paid (and by how much)."""
    counted = counted_payments(invoice, payments)
    paid = {
        party: sum(payment.amount for payment in counted if payment.party is party)
        for party in Party
    }
    outstanding = sum(max(0, invoice.due(party) - paid[party]) for party in Party)
    excess = {party: max(0, paid[party] - invoice.due(party)) for party in Party}
    if outstanding > 0:
        status = SettlementStatus.OPEN
    elif excess[Party.PAYER] + excess[Party.PATIENT] > 0:
        status = SettlementStatus.OVER_PAID
    else:
        status = SettlementStatus.SETTLED
    return Settlement(
        invoice_id=invoice.invoice_id,
        currency=invoice.charges.currency,
        status=status,
        paid_by_payer=paid[Party.PAYER],
        paid_by_patient=paid[Party.PATIENT],
        outstanding=outstanding,
        refund_due_payer=excess[Party.PAYER],
        refund_due_patient=excess[Party.PATIENT],
        idempotency_keys=tuple(payment.idempotency_key for payment in counted),
    )


def _check_payment(invoice: Invoice, payment: Payment) -> None:
    if payment.invoice_id != invoice.invoice_id:
        raise PaymentRefused(
            PaymentRefusalReason.WRONG_INVOICE,
            f"payment {payment.idempotency_key!r} is for invoice {payment.invoice_id!r}, "
            f"not {invoice.invoice_id!r}",
        )
    if payment.currency != invoice.charges.currency:
        raise PaymentRefused(
            PaymentRefusalReason.CURRENCY_MISMATCH,
            f"payment in {payment.currency}, invoice in {invoice.charges.currency}",
        )
