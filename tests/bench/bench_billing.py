"""Billing service in-process on a SQLite file: invoicing throughput, redelivery and payments.

Method: the engine and the service are built as `services/billing/wiring.py` builds them (real
SQL billing store, real SQL outbox in the same database, `BillingLedger` signing with the
billing key), minus Kafka and faust: the outbox relay is not started (so every event stays in
the outbox table and `notify` does nothing), no chain follower runs, and each consultation is
handed to `engine.handle(value_bytes)` as the stream handler would hand it. The directory's
registry is genesis's plus one practitioner in good standing (as the follower would hold it
once the registration is sealed). Keys and the genesis come from the test `ChainFactory`;
consultation events are signed by its genesis publisher (`publisher-demo`) and encoded before
any timing starts, so the publisher's signing is not counted. The demo contract of
`tests/unit/billing/examples.py` is deployed once as version 1 by the admin. The clock is the
real UTC clock; 10 ms pass after the deployment so that billing is strictly after it.

1. Invoicing: N consultations (distinct encounters, copay-only plan, code 98005: charge 12000,
   payer 9500, patient 2500; 50 patients) handed to the engine one after the other;
   invoices/s = N / total time, p50/p99 over the per-call times. Each call parses the event,
   verifies the publisher's signature and grant, and in one transaction checks the dedupe
   table, runs the contract, and commits invoice, plan state, journal entry, outcome and two
   signed outbox rows (InvoiceIssued, ClaimSubmitted).
2. Redelivery: the same N messages handed again, in the same order; each is verified again and
   found in the outcome table (dedupe only, nothing written). p50/p99 of the per-call times.
3. Payments: 2N `pay` calls in two passes. First each invoice's patient pays the patient share
   (2500; one PaymentReceived), then the admin pays each payer share (9500; PaymentReceived
   and InvoiceSettled: the invoice settles). payments/s = 2N / total time of both passes;
   p50/p99 for each pass separately.

The outbox row count and the outcomes are checked at the end (5N + 1 rows, every invoice
settled). N defaults to 2,000; set CARELEDGER_BENCH_BILLING for another.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.billing.adapters.sql import SqlBillingStore, migrate_billing_store
from services.billing.core.settlement import Party, SettlementStatus
from services.billing.engine import BillingEngine
from services.billing.following import Directory
from services.billing.ledger import BillingLedger
from services.billing.service import BillingService
from shared.admission import Role, Standing, registry_from_genesis
from shared.crypto import SigningKey
from shared.envelope import encode_event, uuid7
from shared.events.billing import CONSULTATION_COMPLETED
from shared.outbox import SqlOutbox, migrate_outbox
from shared.pseudonym import patient_pseudonym
from shared.store import Database, open_database
from shared.topics import CLINICAL_EVENTS
from tests.unit.billing.examples import CONTRACT_DOCUMENT
from tests.unit.core.chainfactory import ChainFactory

N = int(os.environ.get("CARELEDGER_BENCH_BILLING", "2000"))
PSEUDONYM_KEY = os.urandom(32)
PATIENTS = 50
PATIENT_SHARE = 2500
PAYER_SHARE = 9500


class NoMetrics:
    """`BillingMetrics` that counts nothing (wiring uses Prometheus; not what is measured)."""

    def consultation(self, outcome: str, reason: str) -> None:
        pass

    def payment(self, party: str, outcome: str) -> None:
        pass


def build(database: Database, chain: ChainFactory) -> tuple[Any, Any, SqlBillingStore]:
    """Engine and service wired as in services/billing/wiring.py, without Kafka, relay or
    follower; the directory holds a practitioner in good standing."""
    migrate_billing_store(database)
    migrate_outbox(database)
    store = SqlBillingStore(database=database)
    ledger = BillingLedger(
        outbox=SqlOutbox(database=database),
        key=chain.keys["billing"],
        genesis=chain.config,
        clock=lambda: datetime.now(UTC),
        new_event_id=lambda now: uuid7(int(now.timestamp() * 1000), os.urandom(10)),
        new_id=lambda: str(uuid.uuid4()),
    )
    standing = Standing(
        role=Role.PRACTITIONER,
        name="physician",
        since=1,
        topic=CLINICAL_EVENTS,
        types=("org.careledger.clinical.*",),
        issuer=chain.did("authority"),
        credential="ef" * 32,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    registry = registry_from_genesis(chain.config).with_standing(
        chain.did("practitioner"), standing
    )
    common: dict[str, Any] = {
        "uow": database,
        "book": store,
        "ledger": ledger,
        "metrics": NoMetrics(),
        "notify": lambda: None,
    }
    engine = BillingEngine(directory=Directory(registry, 1), **common)
    service = BillingService(
        genesis=chain.config,
        pseudonym=lambda did: patient_pseudonym(PSEUDONYM_KEY, did),
        **common,
    )
    return engine, service, store


def consultation(chain: ChainFactory, n: int, patient: str) -> bytes:
    """The n-th consultation event, signed by the genesis publisher, as Kafka bytes."""
    data = {
        "encounter_id": f"bench-enc-{n}",
        "practitioner": chain.did("practitioner"),
        "patient": patient_pseudonym(PSEUDONYM_KEY, patient),
        "plan_id": "copay-only",
        "service_code": "98005",
        "modifiers": [],
        "place_of_service": "10",
        "start": "2026-05-04T09:00:00Z",
        "end": "2026-05-04T09:25:00Z",
    }
    return encode_event(chain.event("publisher", CONSULTATION_COMPLETED, data))


def percentile_ms(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)


def main() -> dict[str, object]:
    chain = ChainFactory()
    admin = chain.config.admin
    patients = [SigningKey.from_seed(os.urandom(32)).did for _ in range(PATIENTS)]
    values = [consultation(chain, n, patients[n % PATIENTS]) for n in range(N)]
    with tempfile.TemporaryDirectory(prefix="bench-billing-") as directory:
        path = Path(directory) / "billing.db"
        database = open_database(f"sqlite:///{path}")
        engine, service, store = build(database, chain)
        service.deploy_contract(admin, {**CONTRACT_DOCUMENT, "version": 1})
        time.sleep(0.01)  # billing uses the contracts deployed strictly before it

        issues: list[float] = []
        started = time.perf_counter()
        for value in values:
            before = time.perf_counter()
            outcome = engine.handle(value)
            issues.append(time.perf_counter() - before)
            assert outcome == "invoiced", outcome
        issue_seconds = time.perf_counter() - started

        redeliveries: list[float] = []
        for value in values:
            before = time.perf_counter()
            outcome = engine.handle(value)
            redeliveries.append(time.perf_counter() - before)
            assert outcome == "duplicate", outcome

        invoices = []
        for n in range(N):
            found = store.invoice_for_encounter(f"bench-enc-{n}")
            assert found is not None
            assert found.charges.patient_share == PATIENT_SHARE, found.charges
            assert found.charges.payer_share == PAYER_SHARE, found.charges
            invoices.append(found.invoice_id)

        patient_pays: list[float] = []
        payer_pays: list[float] = []
        started = time.perf_counter()
        for n, invoice_id in enumerate(invoices):
            before = time.perf_counter()
            paid = service.pay(
                patients[n % PATIENTS],
                invoice_id,
                party=Party.PATIENT,
                amount=PATIENT_SHARE,
                currency="USD",
                reference=f"card-{n}",
                idempotency_key=f"patient-{n}",
            )
            patient_pays.append(time.perf_counter() - before)
            assert paid.created
            assert paid.settlement.status is SettlementStatus.OPEN
        for n, invoice_id in enumerate(invoices):
            before = time.perf_counter()
            paid = service.pay(
                admin,
                invoice_id,
                party=Party.PAYER,
                amount=PAYER_SHARE,
                currency="USD",
                reference=f"remittance-{n}",
                idempotency_key=f"payer-{n}",
            )
            payer_pays.append(time.perf_counter() - before)
            assert paid.created
            assert paid.settlement.status is SettlementStatus.SETTLED
        pay_seconds = time.perf_counter() - started

        pending = SqlOutbox(database=database).pending_count()
        assert pending == 5 * N + 1, pending
        size = sum(p.stat().st_size for p in Path(directory).glob("billing.db*"))
        database.close()
    payments = patient_pays + payer_pays
    return {
        "billing_n": N,
        "billing_invoices_per_s": round(N / issue_seconds),
        "billing_invoice_p50_ms": percentile_ms(issues, 0.50),
        "billing_invoice_p99_ms": percentile_ms(issues, 0.99),
        "billing_invoice_max_ms": round(max(issues) * 1000, 2),
        "billing_invoice_mean_ms": round(statistics.fmean(issues) * 1000, 2),
        "billing_redelivery_p50_ms": percentile_ms(redeliveries, 0.50),
        "billing_redelivery_p99_ms": percentile_ms(redeliveries, 0.99),
        "billing_redelivery_mean_ms": round(statistics.fmean(redeliveries) * 1000, 2),
        "billing_payments_n": len(payments),
        "billing_payments_per_s": round(len(payments) / pay_seconds),
        "billing_payment_p50_ms": percentile_ms(payments, 0.50),
        "billing_payment_p99_ms": percentile_ms(payments, 0.99),
        "billing_payment_patient_p50_ms": percentile_ms(patient_pays, 0.50),
        "billing_payment_patient_p99_ms": percentile_ms(patient_pays, 0.99),
        "billing_payment_settling_p50_ms": percentile_ms(payer_pays, 0.50),
        "billing_payment_settling_p99_ms": percentile_ms(payer_pays, 0.99),
        "billing_payment_mean_ms": round(statistics.fmean(payments) * 1000, 2),
        "billing_outbox_rows": pending,
        "billing_db_mib": round(size / 2**20, 1),
    }
