"""The journal and settlement by example: postings per event, statuses, idempotency."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.billing.core.journal import (
    Account,
    EntryKind,
    JournalEntry,
    NothingToRefund,
    Posting,
    Side,
    balances,
    postings_for_invoice,
    postings_for_payment,
    postings_for_refund,
    postings_for_void,
)
from services.billing.core.pricing import price
from services.billing.core.settlement import (
    Invoice,
    Party,
    Payment,
    PaymentRefusalReason,
    PaymentRefused,
    SettlementStatus,
    settle,
)
from tests.unit.billing.examples import consultation, contract, state


def _invoice() -> Invoice:
    # Plan "coinsurance": charge 12000 = payer 8166 + patient 2167 + adjustments 1667.
    charges = price(contract(), consultation(plan_id="coinsurance"), state("coinsurance"))
    return Invoice(invoice_id="inv-1", charges=charges)


def _pay(party: Party, amount: int, key: str, currency: str = "USD") -> Payment:
    return Payment(
        invoice_id="inv-1",
        party=party,
        amount=amount,
        currency=currency,
        reference=f"ref-{key}",
        idempotency_key=key,
    )


def _lines(entry: JournalEntry) -> set[tuple[str, str, int]]:
    return {(p.account.value, p.side.value, p.amount) for p in entry.postings}


def test_an_unbalanced_entry_cannot_exist() -> None:
    with pytest.raises(ValidationError, match="does not balance"):
        JournalEntry(
            kind=EntryKind.PAYMENT,
            invoice_id="inv-1",
            reference="k",
            currency="USD",
            postings=(
                Posting(account=Account.CASH, side=Side.DEBIT, amount=100),
                Posting(account=Account.RECEIVABLE_PAYER, side=Side.CREDIT, amount=99),
            ),
        )


def test_postings_are_positive_integers() -> None:
    for amount in (0, -5, 1.0):
        with pytest.raises(ValidationError):
            Posting(account=Account.CASH, side=Side.DEBIT, amount=amount)  # type: ignore[arg-type]


def test_invoice_postings() -> None:
    entry = postings_for_invoice(_invoice())
    assert _lines(entry) == {
        ("receivable:payer", "debit", 8166),
        ("receivable:patient", "debit", 2167),
        ("revenue:adjustments", "debit", 1667),
        ("revenue", "credit", 12000),
    }


def test_paying_both_shares_settles_and_clears_the_receivables() -> None:
    invoice = _invoice()
    payer, patient = _pay(Party.PAYER, 8166, "a"), _pay(Party.PATIENT, 2167, "b")
    assert settle(invoice, [payer]).status is SettlementStatus.OPEN
    assert settle(invoice, [payer]).outstanding == 2167
    settlement = settle(invoice, [payer, patient])
    assert settlement.status is SettlementStatus.SETTLED
    assert (settlement.outstanding, settlement.refund_due) == (0, 0)
    entries = [
        postings_for_invoice(invoice),
        postings_for_payment(invoice, [], payer),
        postings_for_payment(invoice, [payer], patient),
    ]
    totals = balances(e for e in entries if e is not None)
    # Cash 8166 + 2167 = 10333 = revenue 12000 - adjustments 1667; receivables are 0.
    assert totals[Account.CASH] == 10333
    assert totals[Account.RECEIVABLE_PAYER] == totals[Account.RECEIVABLE_PATIENT] == 0
    assert sum(totals.values()) == 0


def test_over_payment_is_refunded() -> None:
    invoice = _invoice()
    payer, patient = _pay(Party.PAYER, 8166, "a"), _pay(Party.PATIENT, 2500, "b")
    settlement = settle(invoice, [payer, patient])
    # The patient owed 2167 and paid 2500: 333 over.
    assert settlement.status is SettlementStatus.OVER_PAID
    assert (settlement.refund_due_patient, settlement.refund_due) == (333, 333)
    payment = postings_for_payment(invoice, [payer], patient)
    assert payment is not None
    assert _lines(payment) == {
        ("cash", "debit", 2500),
        ("receivable:patient", "credit", 2167),
        ("refunds", "credit", 333),
    }
    refund = postings_for_refund(invoice, settlement, "refund-1")
    assert _lines(refund) == {("refunds", "debit", 333), ("cash", "credit", 333)}
    with pytest.raises(NothingToRefund):
        postings_for_refund(invoice, settlement, "refund-2", refunded_before=333)


def test_a_party_over_paying_while_the_other_owes_is_open_with_a_refund_due() -> None:
    settlement = settle(_invoice(), [_pay(Party.PAYER, 9000, "a")])
    assert settlement.status is SettlementStatus.OPEN
    assert (settlement.outstanding, settlement.refund_due_payer) == (2167, 834)


def test_nothing_to_refund_on_a_settled_invoice() -> None:
    invoice = _invoice()
    settlement = settle(invoice, [_pay(Party.PAYER, 8166, "a"), _pay(Party.PATIENT, 2167, "b")])
    with pytest.raises(NothingToRefund):
        postings_for_refund(invoice, settlement, "r")


def test_a_duplicate_payment_changes_nothing() -> None:
    invoice = _invoice()
    payer = _pay(Party.PAYER, 8166, "a")
    assert settle(invoice, [payer, payer]) == settle(invoice, [payer])
    assert postings_for_payment(invoice, [payer], payer) is None


@pytest.mark.parametrize(
    ("payment", "reason"),
    [
        (_pay(Party.PAYER, 100, "x", currency="EUR"), PaymentRefusalReason.CURRENCY_MISMATCH),
        (_pay(Party.PAYER, 100, "a"), PaymentRefusalReason.IDEMPOTENCY_CONFLICT),
        (
            _pay(Party.PAYER, 100, "x").model_copy(update={"invoice_id": "inv-2"}),
            PaymentRefusalReason.WRONG_INVOICE,
        ),
    ],
)
def test_payment_refusals(payment: Payment, reason: PaymentRefusalReason) -> None:
    earlier = [_pay(Party.PAYER, 8166, "a")]
    with pytest.raises(PaymentRefused) as refused:
        settle(_invoice(), [*earlier, payment])
    assert refused.value.reason is reason
    with pytest.raises(PaymentRefused):
        postings_for_payment(_invoice(), earlier, payment)


def test_a_zero_invoice_has_an_empty_balanced_entry() -> None:
    charges = price(
        contract(prices={"98005": 0}), consultation(), state()
    )  # nothing to share: every amount is 0
    invoice = Invoice(invoice_id="inv-0", charges=charges)
    assert postings_for_invoice(invoice).postings == ()
    assert settle(invoice, []).status is SettlementStatus.SETTLED


def test_voiding_reverses_the_invoice_entry_exactly() -> None:
    invoice = _invoice()
    issued, voided = postings_for_invoice(invoice), postings_for_void(invoice)
    assert voided.kind is EntryKind.VOID
    assert voided.reference == invoice.invoice_id
    assert _lines(voided) == {
        (account, "credit" if side == "debit" else "debit", amount)
        for account, side, amount in _lines(issued)
    }
    assert set(balances([issued, voided]).values()) == {0}
