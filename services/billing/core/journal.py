"""The double-entry journal behind every amount: an unbalanced entry cannot be constructed.

Accounts: the receivables (one per party), revenue, contractual adjustments (a contra-revenue
account for what the plan does not allow), cash, and refunds (over-payments owed back, a
liability). Postings per event are in docs/billing-tariff.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from services.billing.core.settlement import (
    Invoice,
    Party,
    Payment,
    Settlement,
    counted_payments,
    settle,
)
from services.billing.core.tariff import Currency
from services.billing.errors import BillingError

__all__ = [
    "Account",
    "EntryKind",
    "JournalEntry",
    "NothingToRefund",
    "Posting",
    "Side",
    "balances",
    "postings_for_invoice",
    "postings_for_payment",
    "postings_for_refund",
    "postings_for_void",
]

_Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class Account(StrEnum):
    """The ledger's accounts."""

    RECEIVABLE_PAYER = "receivable:payer"
    RECEIVABLE_PATIENT = "receivable:patient"
    REVENUE = "revenue"
    ADJUSTMENTS = "revenue:adjustments"
    CASH = "cash"
    REFUNDS = "refunds"


class Side(StrEnum):
    """Debit or credit."""

    DEBIT = "debit"
    CREDIT = "credit"


class EntryKind(StrEnum):
    """The event an entry records."""

    INVOICE = "invoice"
    PAYMENT = "payment"
    REFUND = "refund"
    VOID = "void"


_RECEIVABLE = {Party.PAYER: Account.RECEIVABLE_PAYER, Party.PATIENT: Account.RECEIVABLE_PATIENT}


class NothingToRefund(BillingError):  # noqa: N818 - a refusal, like PricingRefused
    """A refund was asked for an invoice that nobody over-paid."""


class Posting(BaseModel):
    """One line of an entry: a positive amount debited or credited to one account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account: Account
    side: Side
    amount: Annotated[StrictInt, Field(gt=0, le=2**53 - 1)]


class JournalEntry(BaseModel):
    """A balanced set of postings in one currency, recording one event of one invoice.

    The constructor refuses an entry whose debits and credits differ. An entry may be empty
    (an invoice of zero), which balances trivially.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: EntryKind
    invoice_id: _Identifier
    reference: _Identifier
    currency: Currency
    postings: tuple[Posting, ...]

    @model_validator(mode="after")
    def _balances(self) -> Self:
        debits = sum(p.amount for p in self.postings if p.side is Side.DEBIT)
        credits = sum(p.amount for p in self.postings if p.side is Side.CREDIT)
        if debits != credits:
            raise ValueError(f"entry does not balance: debits {debits}, credits {credits}")
        return self


def balances(entries: Iterable[JournalEntry]) -> dict[Account, int]:
    """Each account's balance, debits positive and credits negative; they always sum to 0."""
    totals = dict.fromkeys(Account, 0)
    for entry in entries:
        for posting in entry.postings:
            sign = 1 if posting.side is Side.DEBIT else -1
            totals[posting.account] += sign * posting.amount
    return totals


def postings_for_invoice(invoice: Invoice) -> JournalEntry:
    """Invoice issued: debit each receivable its share and adjustments the write-off; credit
    revenue the whole charge."""
    charges = invoice.charges
    return _entry(
        EntryKind.INVOICE,
        invoice,
        invoice.invoice_id,
        [
            (Account.RECEIVABLE_PAYER, Side.DEBIT, charges.payer_share),
            (Account.RECEIVABLE_PATIENT, Side.DEBIT, charges.patient_share),
            (Account.ADJUSTMENTS, Side.DEBIT, charges.adjustments),
            (Account.REVENUE, Side.CREDIT, charges.charge),
        ],
    )


def postings_for_payment(
    invoice: Invoice, earlier: Iterable[Payment], payment: Payment
) -> JournalEntry | None:
    """Payment received: debit cash; credit the party's receivable up to what it still owes
    and refunds with the rest. None when the payment's idempotency key was already counted."""
    earlier = tuple(earlier)
    before = settle(invoice, earlier)
    counted_payments(invoice, [*earlier, payment])  # refuses a conflicting key or currency
    if payment.idempotency_key in before.idempotency_keys:
        return None
    owed = max(0, invoice.due(payment.party) - before.paid(payment.party))
    to_receivable = min(owed, payment.amount)
    return _entry(
        EntryKind.PAYMENT,
        invoice,
        payment.idempotency_key,
        [
            (Account.CASH, Side.DEBIT, payment.amount),
            (_RECEIVABLE[payment.party], Side.CREDIT, to_receivable),
            (Account.REFUNDS, Side.CREDIT, payment.amount - to_receivable),
        ],
    )


def postings_for_refund(
    invoice: Invoice, settlement: Settlement, reference: str, *, refunded_before: int = 0
) -> JournalEntry:
    """Refund issued (the over-payment not refunded yet): debit refunds, credit cash.

    Settlement counts payments only, so the shell passes what it already refunded.
    """
    amount = settlement.refund_due - refunded_before
    if settlement.invoice_id != invoice.invoice_id or amount <= 0:
        raise NothingToRefund(f"invoice {invoice.invoice_id!r} has no over-payment to refund")
    return _entry(
        EntryKind.REFUND,
        invoice,
        reference,
        [
            (Account.REFUNDS, Side.DEBIT, amount),
            (Account.CASH, Side.CREDIT, amount),
        ],
    )


def postings_for_void(invoice: Invoice) -> JournalEntry:
    """Invoice voided (nothing was paid): the invoice's entry reversed, so every receivable,
    revenue and the adjustments are back where they were before it was issued."""
    charges = invoice.charges
    return _entry(
        EntryKind.VOID,
        invoice,
        invoice.invoice_id,
        [
            (Account.REVENUE, Side.DEBIT, charges.charge),
            (Account.RECEIVABLE_PAYER, Side.CREDIT, charges.payer_share),
            (Account.RECEIVABLE_PATIENT, Side.CREDIT, charges.patient_share),
            (Account.ADJUSTMENTS, Side.CREDIT, charges.adjustments),
        ],
    )


def _entry(
    kind: EntryKind, invoice: Invoice, reference: str, lines: list[tuple[Account, Side, int]]
) -> JournalEntry:
    # Zero lines are left out: a posting is always a positive amount.
    return JournalEntry(
        kind=kind,
        invoice_id=invoice.invoice_id,
        reference=reference,
        currency=invoice.charges.currency,
        postings=tuple(
            Posting(account=account, side=side, amount=amount)
            for account, side, amount in lines
            if amount
        ),
    )
