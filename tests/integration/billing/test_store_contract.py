"""The billing store contract, run against memory, SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest
from sqlalchemy import inspect

from services.billing.adapters.memory import MemoryBillingStore
from services.billing.adapters.sql import (
    BILLING_MIGRATIONS,
    BILLING_VERSION_TABLE,
    SqlBillingStore,
    migrate_billing_store,
)
from services.billing.adapters.sql_tables import metadata
from services.billing.core.journal import postings_for_invoice, postings_for_void
from services.billing.core.model import (
    ConsultationOutcome,
    DeployedContract,
    InvoiceStatus,
    OutcomeKind,
    PlanKey,
    StoredDispute,
    StoredInvoice,
    StoredPayment,
    StoredRefund,
)
from services.billing.core.pricing import price
from services.billing.core.settlement import Party
from services.billing.core.tariff import content_hash
from shared.events.billing import DisputeReason, VoidReason
from shared.store import MemoryDatabase, current_revision, migrate
from tests.integration.store.backends import BACKENDS, sql_database
from tests.unit.billing.examples import PATIENT, PRACTITIONER, consultation, contract, state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PARAMS = [
    pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else [], id=kind)
    for kind in BACKENDS
]
DURABLE_PARAMS = [param for param in PARAMS if param.values[0] != "memory"]
# Not UTC, with microseconds: what is read back must equal what was stored.
T0 = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
OTHER_PATIENT = "cd" * 32
SOURCE = "urn:careledger:clinical"
I1, I2, I3 = "inv-1", "inv-2", "inv-3"
PLAN = PlanKey(PATIENT, "deductible", 2025, "USD")
REGISTRY: dict[str, Any] = {"signers": {"did:key:z6MkA": {"since": 1}}, "authorities": []}


class Units(Protocol):
    def transaction(self) -> AbstractContextManager[Any]: ...


Backend = tuple[Any, Units]


@pytest.fixture(params=PARAMS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "memory":
        memory = MemoryDatabase()
        yield MemoryBillingStore(database=memory), memory
        return
    with sql_database(request.param, tmp_path) as (database, _):
        migrate_billing_store(database)
        migrate_billing_store(database)  # idempotent
        yield SqlBillingStore(database=database), database


# --- values built with the billing core ----------------------------------------------


def deployed(version: int = 3, *, at: datetime = T0) -> DeployedContract:
    tariff = contract(version=version)
    return DeployedContract(tariff, content_hash(tariff), at, f"ev-contract-{version}")


def outcome(event_id: str = "ev-c1", *, source: str = SOURCE) -> ConsultationOutcome:
    return ConsultationOutcome(
        source=source,
        event_id=event_id,
        kind=OutcomeKind.INVOICED,
        encounter_id="enc-1",
        invoice_id=I1,
        reason=None,
        billing_event_id="ev-issued-1",
        at=T0,
    )


def invoice(
    invoice_id: str = I1,
    *,
    encounter: str = "enc-1",
    patient: str = PATIENT,
    at: datetime = T0,
) -> StoredInvoice:
    visit = consultation(
        encounter_id=encounter,
        patient=patient,
        plan_id="deductible",
        modifiers=["93"],
        service_code="98008",
    )
    charges = price(contract(), visit, state("deductible", met=100))
    return StoredInvoice(
        invoice_id=invoice_id,
        encounter_id=encounter,
        consultation_source=SOURCE,
        consultation_id="ev-" + encounter,
        practitioner=PRACTITIONER,
        patient=patient,
        plan_year=2025,
        consultation_start=visit.start,
        consultation_end=visit.end,
        modifiers=visit.modifiers,
        place_of_service=visit.place_of_service,
        charges=charges,
        deductible_met_before=100,
        registry_height=7,
        issued_at=at,
        status=InvoiceStatus.ISSUED,
        event_id="ev-issued-" + invoice_id,
        claim_id="claim-" + invoice_id,
        claim_event_id="ev-claim-" + invoice_id,
    )


def payment(
    payment_id: str, *, key: str = "key-1", invoice_id: str = I1, at: datetime = T0
) -> StoredPayment:
    return StoredPayment(
        payment_id=payment_id,
        invoice_id=invoice_id,
        party=Party.PATIENT,
        amount=2**40 + 1,  # beyond 32 bits: amounts are BigInteger
        currency="USD",
        reference="tok_" + payment_id,
        idempotency_key=key,
        applied=2**40,
        excess=1,
        received_at=at,
        event_id="ev-" + payment_id,
    )


def refund(refund_id: str, *, at: datetime = T0) -> StoredRefund:
    return StoredRefund(refund_id, I1, Party.PAYER, 250, "USD", at, "ev-" + refund_id)


def dispute(dispute_id: str, *, at: datetime = T0) -> StoredDispute:
    return StoredDispute(
        dispute_id, I1, Party.PATIENT, DisputeReason.INCORRECT_AMOUNT, at, "ev-" + dispute_id
    )


def write(backend: Backend, method: str, *args: Any) -> None:
    """One locked transaction calling `store.<method>(tx, *args)`."""
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        getattr(store, method)(tx, *args)


# --- the contract ----------------------------------------------------------------------


def test_an_empty_store_has_nothing(backend: Backend) -> None:
    store, units = backend
    assert list(store.contracts()) == []
    assert store.outcome(SOURCE, "ev-c1") is None
    assert store.invoice(I1) is None
    assert store.invoice_for_encounter("enc-1") is None
    assert list(store.invoices_of(PATIENT)) == []
    assert store.deductible_met(PLAN) == 0
    assert list(store.payments(I1)) == []
    assert list(store.refunds(I1)) == []
    assert list(store.disputes(I1)) == []
    assert list(store.entries()) == []
    assert list(store.entries(I1)) == []
    assert store.registry() is None
    assert store.position() is None
    with units.transaction() as tx:
        assert list(store.contracts(tx)) == []
        assert store.registry(tx) is None
        assert store.deductible_met(PLAN, tx) == 0


def test_contracts_round_trip_by_version(backend: Backend) -> None:
    store, units = backend
    v5, v3 = deployed(5, at=T0 + timedelta(days=1)), deployed(3)
    write(backend, "add_contract", v5)
    write(backend, "add_contract", v3)
    assert list(store.contracts()) == [v3, v5]
    assert store.contracts()[1].deployed_at == T0 + timedelta(days=1)
    with units.transaction() as tx:
        assert list(store.contracts(tx)) == [v3, v5]


def test_a_contract_version_is_deployed_once(backend: Backend) -> None:
    store, _ = backend
    write(backend, "add_contract", deployed(3))
    with pytest.raises(ValueError, match="version 3"):
        write(backend, "add_contract", replace(deployed(3), event_id="ev-other"))
    assert list(store.contracts()) == [deployed(3)]


def test_outcomes_round_trip_and_are_stored_once(backend: Backend) -> None:
    store, units = backend
    invoiced = outcome()
    rejected = ConsultationOutcome(
        source=SOURCE,
        event_id="ev-c2",
        kind=OutcomeKind.REJECTED,
        encounter_id=None,
        invoice_id=None,
        reason="unknown_code",
        billing_event_id="ev-rejected-2",
        at=T0 + timedelta(seconds=1),
    )
    write(backend, "add_outcome", invoiced)
    write(backend, "add_outcome", rejected)
    write(backend, "add_outcome", outcome(source="urn:other"))  # same event id, other source
    assert store.outcome(SOURCE, "ev-c1") == invoiced
    assert store.outcome(SOURCE, "ev-c2") == rejected
    assert store.outcome("urn:other", "ev-c1") == outcome(source="urn:other")
    assert store.outcome(SOURCE, "ev-c3") is None
    with pytest.raises(ValueError, match="ev-c1"):
        write(backend, "add_outcome", replace(invoiced, billing_event_id="ev-again"))
    assert store.outcome(SOURCE, "ev-c1") == invoiced
    with units.transaction() as tx:
        assert store.outcome(SOURCE, "ev-c2", tx) == rejected


def test_invoices_round_trip_oldest_first(backend: Backend) -> None:
    store, units = backend
    later = invoice(I1, at=T0 + timedelta(hours=1))
    earlier = invoice(I2, encounter="enc-2")
    tied = invoice(I3, encounter="enc-3", at=T0)  # same time as `earlier`: by id
    theirs = invoice("inv-9", encounter="enc-9", patient=OTHER_PATIENT)
    for one in (later, tied, earlier, theirs):
        write(backend, "add_invoice", one)
    assert store.invoice(I1) == later
    assert store.invoice(I1).charges == later.charges
    assert store.invoice(I1).modifiers == ("93",)
    assert store.invoice(I1).issued_at == T0 + timedelta(hours=1)
    assert store.invoice_for_encounter("enc-2") == earlier
    assert store.invoice_for_encounter("enc-4") is None
    assert list(store.invoices_of(PATIENT)) == [earlier, tied, later]
    assert list(store.invoices_of(OTHER_PATIENT)) == [theirs]
    with units.transaction() as tx:
        assert store.invoice(I2, tx) == earlier
        assert store.invoice_for_encounter("enc-1", tx) == later
        assert [i.invoice_id for i in store.invoices_of(PATIENT, tx)] == [I2, I3, I1]


def test_an_invoice_id_and_an_encounter_are_invoiced_once(backend: Backend) -> None:
    store, _ = backend
    write(backend, "add_invoice", invoice())
    with pytest.raises(ValueError, match=I1):
        write(backend, "add_invoice", invoice(encounter="enc-2"))
    with pytest.raises(ValueError, match="enc-1"):
        write(backend, "add_invoice", invoice(I2))
    assert store.invoice(I2) is None
    assert store.invoice_for_encounter("enc-2") is None
    assert list(store.invoices_of(PATIENT)) == [invoice()]


def test_set_status_with_and_without_a_void_reason(backend: Backend) -> None:
    store, units = backend
    write(backend, "add_invoice", invoice())
    write(backend, "set_status", I1, InvoiceStatus.SETTLED)
    assert store.invoice(I1) == replace(invoice(), status=InvoiceStatus.SETTLED)
    with units.transaction() as tx:
        store.lock(tx)
        store.set_status(tx, I1, InvoiceStatus.VOIDED, void_reason=VoidReason.BILLED_IN_ERROR)
        assert store.invoice(I1, tx).status is InvoiceStatus.VOIDED
    voided = store.invoice(I1)
    assert voided.status is InvoiceStatus.VOIDED
    assert voided.void_reason is VoidReason.BILLED_IN_ERROR
    with pytest.raises(ValueError, match=I2):
        write(backend, "set_status", I2, InvoiceStatus.SETTLED)


def test_deductible_met_is_zero_until_set(backend: Backend) -> None:
    store, units = backend
    other_year = replace(PLAN, plan_year=2026)
    write(backend, "set_deductible_met", PLAN, 2**40)
    assert store.deductible_met(PLAN) == 2**40
    assert store.deductible_met(other_year) == 0
    assert store.deductible_met(replace(PLAN, currency="EUR")) == 0
    with units.transaction() as tx:
        store.lock(tx)
        store.set_deductible_met(tx, PLAN, 50000)
        store.set_deductible_met(tx, other_year, 7)
        assert store.deductible_met(PLAN, tx) == 50000
    assert store.deductible_met(PLAN) == 50000
    assert store.deductible_met(other_year) == 7


def test_payments_keep_the_order_they_were_received_in(backend: Backend) -> None:
    store, units = backend
    # Received later but stored first: the order is the order of writing.
    first, second = payment("p-2", at=T0 + timedelta(hours=1)), payment("p-1", key="key-2")
    write(backend, "add_payment", first)
    write(backend, "add_payment", second)
    write(backend, "add_payment", payment("p-9", invoice_id=I2))  # same key, other invoice
    assert list(store.payments(I1)) == [first, second]
    assert list(store.payments(I2)) == [payment("p-9", invoice_id=I2)]
    assert list(store.payments(I3)) == []
    with units.transaction() as tx:
        assert list(store.payments(I1, tx)) == [first, second]


def test_a_payment_key_counts_once_per_invoice(backend: Backend) -> None:
    store, _ = backend
    write(backend, "add_payment", payment("p-1"))
    with pytest.raises(ValueError, match=I1):
        write(backend, "add_payment", payment("p-2"))  # the same idempotency key
    with pytest.raises(ValueError, match="p-1"):
        write(backend, "add_payment", payment("p-1", key="key-2"))  # the same payment id
    assert list(store.payments(I1)) == [payment("p-1")]


def test_refunds_and_disputes_oldest_first(backend: Backend) -> None:
    store, units = backend
    late_refund, early_refund = refund("r-1", at=T0 + timedelta(minutes=5)), refund("r-2")
    late_dispute, early_dispute = dispute("d-1", at=T0 + timedelta(minutes=5)), dispute("d-2")
    for one in (late_refund, early_refund):
        write(backend, "add_refund", one)
    for other in (late_dispute, early_dispute):
        write(backend, "add_dispute", other)
    assert list(store.refunds(I1)) == [early_refund, late_refund]
    assert list(store.disputes(I1)) == [early_dispute, late_dispute]
    assert list(store.refunds(I2)) == []
    assert list(store.disputes(I2)) == []
    with units.transaction() as tx:
        assert list(store.refunds(I1, tx)) == [early_refund, late_refund]
        assert list(store.disputes(I1, tx)) == [early_dispute, late_dispute]
    with pytest.raises(ValueError, match="r-1"):
        write(backend, "add_refund", late_refund)
    with pytest.raises(ValueError, match="d-1"):
        write(backend, "add_dispute", late_dispute)


def test_the_journal_keeps_its_order(backend: Backend) -> None:
    store, _ = backend
    one, two = invoice(), invoice(I2, encounter="enc-2")
    issued_one = postings_for_invoice(one.invoice())
    issued_two = postings_for_invoice(two.invoice())
    voided_one = postings_for_void(one.invoice())
    # Written out of time order: `entries` is the order of writing, not of `at`.
    write(backend, "add_entry", issued_one, T0 + timedelta(hours=1))
    write(backend, "add_entry", issued_two, T0)
    write(backend, "add_entry", voided_one, T0 + timedelta(hours=2))
    assert list(store.entries()) == [issued_one, issued_two, voided_one]
    assert list(store.entries(I1)) == [issued_one, voided_one]
    assert list(store.entries(I2)) == [issued_two]
    assert list(store.entries(I3)) == []


def test_the_follower_keeps_its_registry_until_a_new_one(backend: Backend) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.save_position(tx, position={"offset": 1}, height=1, registry=None)
        assert store.registry(tx) is None
    assert store.position() == {"offset": 1}
    assert store.registry() is None  # never saved with a registry
    write_position(backend, {"offset": 2}, 2, REGISTRY)
    assert store.registry() == (REGISTRY, 2)
    write_position(backend, {"offset": 3, "partition": 0}, 3, None)
    assert store.registry() == (REGISTRY, 3)  # kept, now valid at 3
    assert store.position() == {"offset": 3, "partition": 0}
    changed = REGISTRY | {"authorities": ["did:key:z6MkB"]}
    with units.transaction() as tx:
        store.lock(tx)
        store.save_position(tx, position={"offset": 4}, height=4, registry=changed)
        assert store.registry(tx) == (changed, 4)
    assert store.registry() == (changed, 4)
    assert store.position() == {"offset": 4}


def write_position(
    backend: Backend, position: dict[str, Any], height: int, registry: dict[str, Any] | None
) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.save_position(tx, position=position, height=height, registry=registry)


def test_reads_in_a_transaction_see_its_own_writes(backend: Backend) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.add_contract(tx, deployed())
        store.add_outcome(tx, outcome())
        store.add_invoice(tx, invoice())
        store.set_status(tx, I1, InvoiceStatus.DISPUTED)
        store.set_deductible_met(tx, PLAN, 300)
        store.add_payment(tx, payment("p-1"))
        store.add_refund(tx, refund("r-1"))
        store.add_dispute(tx, dispute("d-1"))
        store.save_position(tx, position={"offset": 1}, height=1, registry=REGISTRY)
        assert list(store.contracts(tx)) == [deployed()]
        assert store.outcome(SOURCE, "ev-c1", tx) == outcome()
        assert store.invoice(I1, tx) == replace(invoice(), status=InvoiceStatus.DISPUTED)
        assert store.invoice_for_encounter("enc-1", tx).invoice_id == I1
        assert [i.invoice_id for i in store.invoices_of(PATIENT, tx)] == [I1]
        assert store.deductible_met(PLAN, tx) == 300
        assert list(store.payments(I1, tx)) == [payment("p-1")]
        assert list(store.refunds(I1, tx)) == [refund("r-1")]
        assert list(store.disputes(I1, tx)) == [dispute("d-1")]
        assert store.registry(tx) == (REGISTRY, 1)
        # A duplicate is refused within the transaction too.
        with pytest.raises(ValueError, match="key"):
            store.add_payment(tx, payment("p-2"))
        store.add_payment(tx, payment("p-3", key="key-3"))  # the transaction still works
    assert [p.payment_id for p in store.payments(I1)] == ["p-1", "p-3"]
    assert store.invoice(I1).status is InvoiceStatus.DISPUTED


def write_everything_then_fail(backend: Backend) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.add_contract(tx, deployed())
        store.add_outcome(tx, outcome())
        store.add_invoice(tx, invoice(I2, encounter="enc-2"))
        store.set_status(tx, I1, InvoiceStatus.VOIDED, void_reason=VoidReason.DUPLICATE)
        store.set_deductible_met(tx, PLAN, 300)
        store.add_payment(tx, payment("p-1"))
        store.add_refund(tx, refund("r-1"))
        store.add_dispute(tx, dispute("d-1"))
        store.add_entry(tx, postings_for_invoice(invoice().invoice()), T0)
        store.save_position(tx, position={"offset": 2}, height=2, registry={"other": 1})
        raise RuntimeError("abort")


def test_a_rolled_back_transaction_leaves_nothing(backend: Backend) -> None:
    store, _ = backend
    write(backend, "add_invoice", invoice())
    write_position(backend, {"offset": 1}, 1, REGISTRY)
    with pytest.raises(RuntimeError, match="abort"):
        write_everything_then_fail(backend)
    assert list(store.contracts()) == []
    assert store.outcome(SOURCE, "ev-c1") is None
    assert store.invoice(I2) is None
    assert store.invoice(I1) == invoice()
    assert store.deductible_met(PLAN) == 0
    assert list(store.payments(I1)) == []
    assert list(store.refunds(I1)) == []
    assert list(store.disputes(I1)) == []
    assert list(store.entries()) == []
    assert store.position() == {"offset": 1}
    assert store.registry() == (REGISTRY, 1)


def invoice_then_deploy_again(backend: Backend) -> None:
    store, units = backend
    with units.transaction() as tx:
        store.lock(tx)
        store.add_invoice(tx, invoice())
        store.add_contract(tx, deployed())


def test_a_refused_write_rolls_its_transaction_back(backend: Backend) -> None:
    store, _ = backend
    write(backend, "add_contract", deployed())
    with pytest.raises(ValueError, match="version 3"):
        invoice_then_deploy_again(backend)
    assert store.invoice(I1) is None


# --- SQL only --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_migrating_twice_changes_nothing(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        assert current_revision(database, version_table=BILLING_VERSION_TABLE) is None
        assert migrate_billing_store(database) == "billing_0002"
        store = SqlBillingStore(database=database)
        with database.transaction() as tx:
            store.add_invoice(tx, invoice())
        assert migrate_billing_store(database) == "billing_0002"
        assert current_revision(database, version_table=BILLING_VERSION_TABLE) == "billing_0002"
        assert store.invoice(I1) == invoice()


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_the_table_definitions_mirror_the_migrations(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        migrate_billing_store(database)
        with database.read() as connection:
            found = inspect(connection)
            for table in metadata.sorted_tables:
                columns = {column["name"] for column in found.get_columns(table.name)}
                assert columns == {column.name for column in table.columns}
                indexes = {index["name"] for index in found.get_indexes(table.name)}
                assert {index.name for index in table.indexes} <= indexes


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_naive_datetimes_are_refused(kind: str, tmp_path: Path) -> None:
    with sql_database(kind, tmp_path) as (database, _):
        migrate_billing_store(database)
        store = SqlBillingStore(database=database)
        with pytest.raises(ValueError, match="aware"), database.transaction() as tx:
            store.add_invoice(tx, invoice(at=datetime(2026, 11, 25)))
        assert store.invoice(I1) is None


@pytest.mark.parametrize("kind", DURABLE_PARAMS)
def test_billing_0002_forgets_the_follower_position_and_keeps_the_decisions(
    kind: str, tmp_path: Path
) -> None:
    """Billing bills from the blocks since billing_0002: an older position said which blocks
    changed the registry, not which consultations were billed, so it reads the chain again."""
    older = tmp_path / "migrations-0001"
    shutil.copytree(
        BILLING_MIGRATIONS,
        older,
        ignore=shutil.ignore_patterns("billing_0002_*", "__pycache__"),
    )
    with sql_database(kind, tmp_path) as (database, _):
        assert migrate(database, older, version_table=BILLING_VERSION_TABLE) == "billing_0001"
        store = SqlBillingStore(database=database)
        with database.transaction() as tx:
            store.add_invoice(tx, invoice())
            store.save_position(tx, position={"version": 1}, height=7, registry={"x": 1})
        assert store.position() is not None
        assert migrate_billing_store(database) == "billing_0002"
        assert store.position() is None
        assert store.registry() is None
        assert store.invoice(I1) == invoice()
