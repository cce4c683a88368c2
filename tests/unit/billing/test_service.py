"""The billing use cases on memory adapters: tariffs, payments, refunds, disputes, voids and
reads, with the journal checked after every step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.billing.core.journal import Account, EntryKind
from services.billing.core.model import InvoiceStatus
from services.billing.core.settlement import Party, SettlementStatus
from services.billing.core.tariff import TariffContract, content_hash
from services.billing.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
)
from shared.events.billing import DisputeReason, VoidReason
from tests.unit.billing.conftest import CONTRACT_V1, World, build_world, clear_outbox

PAYER, PATIENT = Party.PAYER, Party.PATIENT


def books(world: World, **expected: int) -> None:
    """The journal balances, and every account not named is 0."""
    totals = {account.value: amount for account, amount in world.balances().items()}
    want = {account.value: 0 for account in Account}
    want.update(
        {
            name.replace("_", ":", 1) if name.startswith("receivable") else name: v
            for name, v in expected.items()
        }
    )
    assert totals == want


def issued_books(world: World, **extra: int) -> None:
    """The copay-only 98005 invoice (payer 9500, patient 2500) with what was paid since."""
    amounts = {"receivable_payer": 9500, "receivable_patient": 2500, "revenue": -12000}
    for name, value in extra.items():
        amounts[name] = amounts.get(name, 0) + value
    books(world, **{k: v for k, v in amounts.items() if v})


# --- tariffs ---------------------------------------------------------------------------------


def test_the_admin_deploys_a_contract_and_its_event_carries_the_document(world: World) -> None:
    deployed, created = world.service.deploy_contract(world.admin, CONTRACT_V1)
    assert created
    digest = content_hash(TariffContract.model_validate(CONTRACT_V1))
    assert deployed.content_hash == digest
    [event] = world.events()
    assert event["type"] == "org.careledger.billing.contract.deployed.v1"
    assert event["id"] == deployed.event_id
    assert event["subject"] == "tariff-demo"
    assert event["data"]["contract"] == CONTRACT_V1
    assert (event["data"]["version"], event["data"]["content_hash"]) == (1, digest)
    assert world.service.contracts() == [deployed]


def test_only_the_admin_deploys(world: World) -> None:
    with pytest.raises(ForbiddenError):
        world.service.deploy_contract(world.did("practitioner"), CONTRACT_V1)
    assert world.events() == []


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 1.0},
        {"currency": "usd"},
        {"prices": {"98005": 120.5}},
        {"prices": {"99441": 100}},
        {"unknown": 1},
        {
            "plans": [
                {"plan_id": "p", "copay": -1, "deductible": 0, "coinsurance_bp": 0, "allowed": {}}
            ]
        },
    ],
)
def test_an_invalid_contract_is_refused(world: World, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        world.service.deploy_contract(world.admin, {**CONTRACT_V1, **changes})
    with pytest.raises(InvalidRequestError):
        world.service.deploy_contract(
            world.admin, {k: v for k, v in CONTRACT_V1.items() if k != "plans"}
        )
    assert world.events() == []


def test_the_same_document_again_is_answered_with_the_deployed_one(world: World) -> None:
    first, _ = world.service.deploy_contract(world.admin, CONTRACT_V1)
    reordered = dict(reversed(list(CONTRACT_V1.items())))
    again, created = world.service.deploy_contract(world.admin, reordered)
    assert (again, created) == (first, False)
    assert len(world.events()) == 1


def test_another_document_at_a_deployed_version_or_a_skipped_version_conflicts(
    world: World,
) -> None:
    world.service.deploy_contract(world.admin, CONTRACT_V1)
    with pytest.raises(ConflictError):
        world.service.deploy_contract(world.admin, {**CONTRACT_V1, "contract_id": "other"})
    with pytest.raises(ConflictError):
        world.service.deploy_contract(world.admin, {**CONTRACT_V1, "version": 3})
    with pytest.raises(ConflictError):
        world.service.deploy_contract(
            world.admin, {**CONTRACT_V1, "version": 1, "prices": {"98005": 1}}
        )
    world.service.deploy_contract(world.admin, {**CONTRACT_V1, "version": 2})
    assert [c.contract.version for c in world.service.contracts()] == [1, 2]
    assert len(world.events()) == 2


def test_the_first_version_must_be_1(world: World) -> None:
    with pytest.raises(ConflictError):
        world.service.deploy_contract(world.admin, {**CONTRACT_V1, "version": 3})


# --- payments --------------------------------------------------------------------------------


def test_the_patient_pays_their_own_share(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    outcome = world.pay(invoice_id, PATIENT, 2500, key="k1", as_="patient")
    assert outcome.created
    assert (outcome.payment.applied, outcome.payment.excess) == (2500, 0)
    assert outcome.settlement.status is SettlementStatus.OPEN
    assert outcome.refund is None
    [event] = world.events()
    assert event["type"] == "org.careledger.billing.payment.received.v1"
    assert event["data"] == {
        "invoice_id": invoice_id,
        "payment_id": outcome.payment.payment_id,
        "party": "patient",
        "amount": 2500,
        "currency": "USD",
        "reference": "ref-k1",
        "applied": 2500,
        "excess": 0,
    }
    issued_books(world, receivable_patient=-2500, cash=2500)
    assert world.metrics.payments[("patient", "counted")] == 1


def test_a_patient_may_not_pay_the_payer_share(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    with pytest.raises(ForbiddenError):
        world.pay(invoice_id, PAYER, 9500, key="k1", as_="patient")
    with pytest.raises(ForbiddenError):
        world.pay(invoice_id, PATIENT, 2500, key="k1", as_="practitioner")
    assert world.events() == []


def test_another_patients_invoice_does_not_exist_for_them(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    with pytest.raises(NotFoundError):
        world.pay(invoice_id, PATIENT, 2500, key="k1", as_="stranger")
    with pytest.raises(NotFoundError):
        world.pay("00000000-0000-4000-8000-0000000000ff", PATIENT, 1, key="k1")
    issued_books(world)


def test_an_exact_split_settles_once(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    world.pay(invoice_id, PAYER, 9500, key="payer")
    outcome = world.pay(invoice_id, PATIENT, 2500, key="patient", as_="patient")
    assert outcome.settlement.status is SettlementStatus.SETTLED
    assert outcome.invoice.status is InvoiceStatus.SETTLED
    assert world.types() == ["payment.received", "payment.received", "invoice.settled"]
    assert world.events()[-1]["data"] == {
        "invoice_id": invoice_id,
        "currency": "USD",
        "paid_by_payer": 9500,
        "paid_by_patient": 2500,
    }
    books(world, cash=12000, revenue=-12000)
    # A retry of the last payment settles nothing again.
    again = world.pay(invoice_id, PATIENT, 2500, key="patient", as_="patient")
    assert not again.created
    assert world.types().count("invoice.settled") == 1
    stored = world.store.invoice(invoice_id)
    assert stored is not None
    assert stored.status is InvoiceStatus.SETTLED


def test_an_over_payment_is_refunded_at_once(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    world.pay(invoice_id, PAYER, 9500, key="payer")
    clear_outbox(world)
    outcome = world.pay(invoice_id, PATIENT, 3000, key="patient", as_="patient")
    assert (outcome.payment.applied, outcome.payment.excess) == (2500, 500)
    assert outcome.refund is not None
    assert outcome.refund.amount == 500
    assert outcome.settlement.status is SettlementStatus.OVER_PAID
    assert world.types() == ["payment.received", "invoice.settled", "refund.issued"]
    received, _, refund = (e["data"] for e in world.events())
    assert (received["applied"], received["excess"]) == (2500, 500)
    assert refund == {
        "invoice_id": invoice_id,
        "refund_id": outcome.refund.refund_id,
        "party": "patient",
        "currency": "USD",
        "amount": 500,
    }
    books(world, cash=12000, revenue=-12000)
    # More after settlement: all excess, refunded; not settled twice.
    clear_outbox(world)
    later = world.pay(invoice_id, PAYER, 100, key="payer-2")
    assert (later.payment.applied, later.payment.excess) == (0, 100)
    assert later.refund is not None
    assert later.refund.amount == 100
    assert world.types() == ["payment.received", "refund.issued"]
    books(world, cash=12000, revenue=-12000)
    document = world.service.invoice(world.admin, invoice_id)
    assert document["settlement"]["refunded"] == 600


def test_an_over_payment_while_the_other_party_still_owes(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    outcome = world.pay(invoice_id, PATIENT, 4000, key="k", as_="patient")
    assert outcome.settlement.status is SettlementStatus.OPEN
    assert outcome.refund is not None
    assert outcome.refund.amount == 1500
    assert world.types() == ["payment.received", "refund.issued"]
    books(world, receivable_payer=9500, revenue=-12000, cash=2500)


def test_an_idempotent_retry_returns_the_same_payment(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    first = world.pay(invoice_id, PATIENT, 1000, key="k1", as_="patient")
    events, entries = world.events(), list(world.store.entries())
    again = world.pay(invoice_id, PATIENT, 1000, key="k1", as_="patient")
    assert not again.created
    assert again.payment == first.payment
    assert again.refund is None
    assert world.events() == events
    assert list(world.store.entries()) == entries
    # The admin retrying the patient's payment finds it too.
    assert world.pay(invoice_id, PATIENT, 1000, key="k1").payment == first.payment


def test_the_same_key_with_another_payment_conflicts(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    world.pay(invoice_id, PATIENT, 1000, key="k1", as_="patient")
    events = world.events()
    with pytest.raises(ConflictError):
        world.pay(invoice_id, PATIENT, 1001, key="k1", as_="patient")
    with pytest.raises(ConflictError):
        world.pay(invoice_id, PAYER, 1000, key="k1")
    assert world.events() == events
    assert world.metrics.payments[("patient", "idempotency_conflict")] == 1


def test_a_payment_in_another_currency_is_refused(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    with pytest.raises(InvalidRequestError):
        world.service.pay(
            world.admin,
            invoice_id,
            party=PAYER,
            amount=9500,
            currency="EUR",
            reference="r",
            idempotency_key="k",
        )
    assert world.events() == []
    issued_books(world)


def test_a_payment_on_a_voided_invoice_conflicts(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    world.service.void(world.admin, invoice_id, reason=VoidReason.BILLED_IN_ERROR)
    clear_outbox(world)
    with pytest.raises(ConflictError):
        world.pay(invoice_id, PATIENT, 2500, key="k", as_="patient")
    assert world.events() == []


def test_the_payer_owing_nothing_gets_a_payment_back(deployed: World) -> None:
    assert deployed.bill("enc-1", plan_id="deductible") == "invoiced"
    invoice_id = deployed.invoice_id()
    clear_outbox(deployed)
    outcome = deployed.pay(invoice_id, PAYER, 100, key="k")
    assert outcome.refund is not None
    assert deployed.types() == ["payment.received", "refund.issued"]
    books(deployed, receivable_patient=12000, revenue=-12000)


# --- disputes and voids ------------------------------------------------------------------------


def test_a_patient_disputes_their_own_invoice(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    dispute, stored = world.service.dispute(
        world.did("patient"), invoice_id, party=PATIENT, reason=DisputeReason.INCORRECT_AMOUNT
    )
    assert stored.status is InvoiceStatus.DISPUTED
    [event] = world.events()
    assert event["data"] == {
        "invoice_id": invoice_id,
        "dispute_id": dispute.dispute_id,
        "party": "patient",
        "reason": "incorrect_amount",
    }
    # Payments still count, and paying everything settles a disputed invoice.
    world.pay(invoice_id, PAYER, 9500, key="payer")
    world.pay(invoice_id, PATIENT, 2500, key="patient", as_="patient")
    assert world.service.invoice(world.admin, invoice_id)["status"] == "settled"
    issued_books(world, receivable_payer=-9500, receivable_patient=-2500, cash=12000)


def test_who_may_dispute(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    reason = DisputeReason.NOT_COVERED
    with pytest.raises(ForbiddenError):
        world.service.dispute(world.did("patient"), invoice_id, party=PAYER, reason=reason)
    with pytest.raises(ForbiddenError):
        world.service.dispute(world.did("practitioner"), invoice_id, party=PATIENT, reason=reason)
    with pytest.raises(NotFoundError):
        world.service.dispute(world.did("stranger"), invoice_id, party=PATIENT, reason=reason)
    _, stored = world.service.dispute(world.admin, invoice_id, party=PAYER, reason=reason)
    assert stored.status is InvoiceStatus.DISPUTED
    assert len(world.store.disputes(invoice_id)) == 1


def test_the_admin_voids_an_unpaid_invoice_and_the_journal_is_reversed(
    issued: tuple[World, str],
) -> None:
    world, invoice_id = issued
    clear_outbox(world)
    with pytest.raises(ForbiddenError):
        world.service.void(world.did("patient"), invoice_id, reason=VoidReason.OTHER)
    voided = world.service.void(world.admin, invoice_id, reason=VoidReason.BILLED_IN_ERROR)
    assert voided.status is InvoiceStatus.VOIDED
    assert world.events()[-1]["data"] == {"invoice_id": invoice_id, "reason": "billed_in_error"}
    books(world)
    kinds = [entry.kind for entry in world.store.entries(invoice_id)]
    assert kinds == [EntryKind.INVOICE, EntryKind.VOID]
    document = world.service.invoice(world.admin, invoice_id)
    assert (document["status"], document["void_reason"]) == ("voided", "billed_in_error")
    with pytest.raises(ConflictError):
        world.service.void(world.admin, invoice_id, reason=VoidReason.OTHER)
    with pytest.raises(ConflictError):
        world.service.dispute(
            world.did("patient"), invoice_id, party=PATIENT, reason=DisputeReason.OTHER
        )
    assert len(world.events()) == 1


def test_an_invoice_with_payments_is_not_voided(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    world.pay(invoice_id, PATIENT, 100, key="k", as_="patient")
    with pytest.raises(ConflictError):
        world.service.void(world.admin, invoice_id, reason=VoidReason.OTHER)
    with pytest.raises(NotFoundError):
        world.service.void(
            world.admin, "00000000-0000-4000-8000-0000000000ff", reason=VoidReason.OTHER
        )
    issued_books(world, receivable_patient=-100, cash=100)


def test_a_voided_encounter_is_still_billed_once(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    world.service.void(world.admin, invoice_id, reason=VoidReason.BILLED_IN_ERROR)
    assert world.bill("enc-1") == "rejected"
    assert world.events()[-1]["data"]["invoice_id"] == invoice_id


# --- reads -----------------------------------------------------------------------------------


def test_the_patient_the_practitioner_and_the_admin_read_it(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    for who in (world.did("patient"), world.did("practitioner"), world.admin):
        document = world.service.invoice(who, invoice_id)
        assert document["invoice_id"] == invoice_id
        assert document["charges"]["payer_share"] == 9500
        assert document["settlement"] == {
            "status": "open",
            "paid_by_payer": 0,
            "paid_by_patient": 0,
            "outstanding": 12000,
            "refunded": 0,
        }
        assert document["claim_id"] is not None
    with pytest.raises(NotFoundError):
        world.service.invoice(world.did("stranger"), invoice_id)
    with pytest.raises(NotFoundError):
        world.service.journal(world.did("stranger"), invoice_id)


def test_a_revoked_practitioner_reads_no_invoice_and_the_others_still_do(
    issued: tuple[World, str],
) -> None:
    world, invoice_id = issued
    encounter = world.service.invoice(world.admin, invoice_id)["encounter_id"]
    world.revoke_practitioner()
    practitioner = world.did("practitioner")
    for read in (
        lambda: world.service.invoice(practitioner, invoice_id),
        lambda: world.service.journal(practitioner, invoice_id),
        lambda: world.service.fhir(practitioner, invoice_id),
        lambda: world.service.invoices(practitioner, encounter=encounter),
    ):
        with pytest.raises(ForbiddenError, match="credential is revoked"):
            read()
    for who in (world.did("patient"), world.admin):
        assert world.service.invoice(who, invoice_id)["invoice_id"] == invoice_id
    with pytest.raises(NotFoundError):
        world.service.invoice(world.did("stranger"), invoice_id)


def test_listing_by_encounter_and_a_patients_own(deployed: World) -> None:
    world = deployed
    world.bill("enc-1")
    world.bill("enc-2", plan_id="half")
    world.bill("enc-3", patient="cd" * 32)
    first = world.invoice_id("enc-1")
    assert [i["invoice_id"] for i in world.service.invoices(world.admin, encounter="enc-1")] == [
        first
    ]
    assert world.service.invoices(world.did("stranger"), encounter="enc-1") == []
    assert world.service.invoices(world.admin, encounter="enc-9") == []
    own = world.service.invoices(world.did("patient"), encounter=None)
    assert [i["encounter_id"] for i in own] == ["enc-1", "enc-2"]
    with pytest.raises(InvalidRequestError):
        world.service.invoices(world.admin, encounter=None)


def test_the_fhir_export_and_the_journal(issued: tuple[World, str]) -> None:
    world, invoice_id = issued
    bundle = world.service.fhir(world.did("patient"), invoice_id)
    assert bundle["resourceType"] == "Bundle"
    entries = world.service.journal(world.did("practitioner"), invoice_id)
    assert [e.kind for e in entries] == [EntryKind.INVOICE]


@pytest.mark.parametrize("step", ["paid", "over_paid", "disputed", "voided"])
def test_the_fhir_export_in_every_state(issued: tuple[World, str], step: str) -> None:
    world, invoice_id = issued
    if step == "paid":
        world.pay(invoice_id, PAYER, 9500, key="payer")
        world.pay(invoice_id, PATIENT, 2500, key="patient")
    elif step == "over_paid":
        world.pay(invoice_id, PATIENT, 9000, key="patient")
    elif step == "disputed":
        world.service.dispute(world.admin, invoice_id, party=PAYER, reason=DisputeReason.OTHER)
    else:
        world.service.void(world.admin, invoice_id, reason=VoidReason.OTHER)
    bundle = world.service.fhir(world.admin, invoice_id)
    assert bundle["resourceType"] == "Bundle"


# --- properties ------------------------------------------------------------------------------

_PLANS = ("copay-only", "deductible", "coinsurance", "half")
_consult = st.tuples(st.just("consult"), st.integers(0, 3), st.sampled_from(_PLANS), st.booleans())
_pay = st.tuples(
    st.just("pay"),
    st.integers(0, 3),
    st.sampled_from((PAYER, PATIENT)),
    st.integers(1, 15_000),
    st.integers(0, 3),
    st.booleans(),
)


def _run(operations: list[tuple[Any, ...]], *, duplicates: bool) -> World:
    """Run the operations; with `duplicates`, every operation marked so is done twice (the
    same block of one consultation delivered again, the same payment retried)."""
    world = build_world()
    world.deploy()
    for operation in operations:
        times = 2 if duplicates and operation[-1] else 1
        if operation[0] == "consult":
            _, encounter, plan, _ = operation
            outcomes = world.bill_events(world.consultation(f"enc-{encounter}", plan_id=plan))
            outcomes += [o for _ in range(times - 1) for o in world.redeliver()]
            assert outcomes[1:] == ["duplicate"] * (times - 1)
        else:
            _, encounter, party, amount, key, _ = operation
            found = world.store.invoice_for_encounter(f"enc-{encounter}")
            if found is None:
                continue
            for attempt in range(times):
                try:
                    outcome = world.pay(found.invoice_id, party, amount, key=f"k{key}")
                except ConflictError:
                    continue  # a key reused with another amount: refused every time
                assert attempt == 0 or not outcome.created
        world.balances()
    return world


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_consult, _pay), max_size=14))
def test_duplicates_change_nothing_and_the_journal_always_balances(
    operations: list[tuple[Any, ...]],
) -> None:
    with_duplicates = _run(operations, duplicates=True)
    without = _run(operations, duplicates=False)
    assert list(with_duplicates.store.entries()) == list(without.store.entries())
    assert with_duplicates.events() == without.events()
    totals = with_duplicates.balances()
    invoices = [
        i
        for n in range(4)
        if (i := with_duplicates.store.invoice_for_encounter(f"enc-{n}")) is not None
    ]
    paid = sum(p.amount for i in invoices for p in with_duplicates.store.payments(i.invoice_id))
    refunded = sum(r.amount for i in invoices for r in with_duplicates.store.refunds(i.invoice_id))
    assert totals[Account.CASH] == paid - refunded
    assert totals[Account.REFUNDS] == 0  # every over-payment is refunded at once
    outstanding = sum(
        with_duplicates.service.invoice(with_duplicates.admin, i.invoice_id)["settlement"][
            "outstanding"
        ]
        for i in invoices
    )
    assert totals[Account.RECEIVABLE_PAYER] + totals[Account.RECEIVABLE_PATIENT] == outstanding
    assert totals[Account.REVENUE] == -sum(i.charges.charge for i in invoices)
    for invoice in invoices:
        charges = invoice.charges
        assert charges.charge == charges.payer_share + charges.patient_share + charges.adjustments
