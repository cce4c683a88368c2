"""Hypothesis properties of the journal and settlement: balance, idempotency, no floats."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.billing.core.journal import (
    Account,
    JournalEntry,
    balances,
    postings_for_invoice,
    postings_for_payment,
    postings_for_refund,
)
from services.billing.core.pricing import price
from services.billing.core.settlement import Invoice, Party, Payment, SettlementStatus, settle
from tests.unit.billing.examples import assert_no_float, consultation, contract, state

_PLANS = ("copay-only", "deductible", "coinsurance", "half")


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    plan = draw(st.sampled_from(_PLANS))
    met = draw(st.integers(min_value=0, max_value=60000))
    charges = price(contract(), consultation(plan_id=plan), state(plan, met))
    return Invoice(invoice_id="inv-1", charges=charges)


@st.composite
def payment_streams(draw: st.DrawFn) -> list[Payment]:
    """Payments where some idempotency keys come again (the same payment, redelivered)."""
    distinct = draw(
        st.lists(
            st.tuples(st.sampled_from(Party), st.integers(min_value=1, max_value=20000)),
            max_size=6,
        )
    )
    payments = [
        Payment(
            invoice_id="inv-1",
            party=party,
            amount=amount,
            currency="USD",
            reference=f"ref-{index}",
            idempotency_key=f"key-{index}",
        )
        for index, (party, amount) in enumerate(distinct)
    ]
    if not payments:
        return []
    repeats = draw(st.lists(st.sampled_from(payments), max_size=6))
    return draw(st.permutations(payments + repeats))


def _journal(invoice: Invoice, payments: list[Payment]) -> list[JournalEntry]:
    entries = [postings_for_invoice(invoice)]
    for index, payment in enumerate(payments):
        entry = postings_for_payment(invoice, payments[:index], payment)
        if entry is not None:
            entries.append(entry)
    settlement = settle(invoice, payments)
    if settlement.refund_due:
        entries.append(postings_for_refund(invoice, settlement, "refund"))
    return entries


@given(invoices(), payment_streams())
def test_the_journal_always_balances(invoice: Invoice, payments: list[Payment]) -> None:
    entries = _journal(invoice, payments)
    totals = balances(entries)
    assert sum(totals.values()) == 0
    settlement = settle(invoice, payments)
    paid = settlement.paid_by_payer + settlement.paid_by_patient
    # Cash holds what was paid less what was refunded; receivables hold what is outstanding.
    assert totals[Account.CASH] == paid - settlement.refund_due
    assert totals[Account.RECEIVABLE_PAYER] + totals[Account.RECEIVABLE_PATIENT] == (
        settlement.outstanding
    )
    assert totals[Account.REFUNDS] == 0  # every over-payment recorded was refunded
    assert totals[Account.REVENUE] == -invoice.charges.charge
    for entry in entries:
        assert_no_float(entry.model_dump())
    assert_no_float(settlement.model_dump())


@given(invoices(), payment_streams())
def test_duplicate_payments_change_nothing(invoice: Invoice, payments: list[Payment]) -> None:
    # Redelivered payments are equal to the first delivery, so keeping the last is the same.
    once = list({payment.idempotency_key: payment for payment in payments}.values())
    assert settle(invoice, payments) == settle(invoice, once)
    assert _journal(invoice, payments) == _journal(invoice, once)


@given(invoices(), payment_streams())
def test_status_follows_the_amounts(invoice: Invoice, payments: list[Payment]) -> None:
    settlement = settle(invoice, payments)
    if settlement.outstanding:
        assert settlement.status is SettlementStatus.OPEN
    elif settlement.refund_due:
        assert settlement.status is SettlementStatus.OVER_PAID
    else:
        assert settlement.status is SettlementStatus.SETTLED
