"""Billing service in-process on a SQLite file: billing sealed blocks, redelivery, payments,
and the CPU it spends per clinical event on the chain.

Method: the engine and the service are built as `services/billing/wiring.py` builds them (real
SQL billing store, real SQL outbox in the same database, `BillingLedger` signing with the
billing key), minus Kafka and faust: the outbox relay is not started (so every event stays in
the outbox table and `notify` does nothing), and each sealed block goes through
`following.ChainReader.read(block_json, offset)` as the faust block stream hands it over (the
follower's checks, then `BillingEngine.apply`: one transaction per block). Keys and the
genesis come from the test `ChainFactory`; the practitioner's registration is sealed in block
1; consultation events are signed by its genesis publisher (`publisher-demo`) and sealed (the
factory's admission) before any timing starts, so neither the publisher's signing nor sealing
is counted. The demo contract of `tests/unit/billing/examples.py` is deployed once as version 1
by the admin. The clock is the real UTC clock; 10 ms pass after the deployment so that billing
is strictly after it.

1. Invoicing: N consultations (distinct encounters, copay-only plan, code 98005: charge 12000,
   payer 9500, patient 2500; 50 patients), sealed 50 per block, read block by block;
   invoices/s = N / total time; per block p50/p99. Each block is parsed and followed, and in
   one transaction each consultation is checked against the dedupe table, priced by the
   contract and committed with its invoice, plan state, journal entry, outcome and two signed
   outbox rows (InvoiceIssued, ClaimSubmitted), with the follower position.
2. Redelivery: the same blocks handed to the engine again (`BillingEngine.apply`, as after a
   crash between commit and ack): every consultation is found in the outcome table, nothing
   written. Per block p50/p99. (Through the reader a block read again is a copy the follower
   ignores before the engine is called.)
3. Payments: 2N `pay` calls in two passes. First each invoice's patient pays the patient share
   (2500; one PaymentReceived), then the admin pays each payer share (9500; PaymentReceived
   and InvoiceSettled: the invoice settles). payments/s = 2N / total time of both passes;
   p50/p99 for each pass separately.
4. Clinical traffic: M clinical events in blocks of 500, one in ten a consultation (the rest
   `note.signed` events billing does not bill), read as in 1. `billing_block_cpu_us_per_event`
   is the process CPU time (`time.process_time`) per clinical event; `..._follow_...` is the
   part spent parsing and following the blocks (`block_from_json` + `BlockFollower.follow`,
   timed alone on the same blocks), the rest is the engine's. Compare with the per-message
   cost of faust that billing no longer pays: ADR 0011 and docs/performance.md.

The outbox row count and the outcomes are checked at the end (5N + 1 rows, every invoice
settled). N defaults to 2,000 (CARELEDGER_BENCH_BILLING), M to 20,000
(CARELEDGER_BENCH_BILLING_CLINICAL).
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
from services.billing.following import ChainReader, Directory, Verdict
from services.billing.ledger import BillingLedger
from services.billing.service import BillingService
from shared.admission import registry_from_genesis
from shared.block import Block, block_from_json, block_to_json
from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.events.billing import CONSULTATION_COMPLETED
from shared.follower import BlockFollower, FollowedBlock, FollowerState
from shared.outbox import SqlOutbox, migrate_outbox
from shared.pseudonym import patient_pseudonym
from shared.store import Database, open_database
from tests.unit.billing.conftest import practitioner_registered
from tests.unit.billing.examples import CONTRACT_DOCUMENT
from tests.unit.core.chainfactory import ChainFactory

N = int(os.environ.get("CARELEDGER_BENCH_BILLING", "2000"))
CLINICAL = int(os.environ.get("CARELEDGER_BENCH_BILLING_CLINICAL", "20000"))
PSEUDONYM_KEY = os.urandom(32)
PATIENTS = 50
PATIENT_SHARE = 2500
PAYER_SHARE = 9500
PER_BLOCK = 50
CLINICAL_BLOCK = 500
NOTE = "org.careledger.clinical.note.signed.v1"


class NoMetrics:
    """`BillingMetrics` that counts nothing (wiring uses Prometheus; not what is measured)."""

    def consultation(self, outcome: str, reason: str) -> None:
        pass

    def payment(self, party: str, outcome: str) -> None:
        pass

    def follower_height(self, height: int) -> None:
        pass

    def follower_fault(self) -> None:
        pass


def build(
    database: Database, chain: ChainFactory
) -> tuple[BillingEngine[Any], BillingService[Any], SqlBillingStore]:
    """Engine and service wired as in services/billing/wiring.py, without Kafka or relay."""
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
    common: dict[str, Any] = {
        "uow": database,
        "book": store,
        "ledger": ledger,
        "metrics": NoMetrics(),
        "notify": lambda: None,
    }
    engine = BillingEngine(
        directory=Directory(registry_from_genesis(chain.config), 0), chain=store, **common
    )
    service = BillingService(
        genesis=chain.config,
        pseudonym=lambda did: patient_pseudonym(PSEUDONYM_KEY, did),
        **common,
    )
    return engine, service, store


def consultation(chain: ChainFactory, n: int, patient: str) -> dict[str, Any]:
    """The n-th consultation event, signed by the genesis publisher."""
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
    return chain.event("publisher", CONSULTATION_COMPLETED, data)


def percentile_ms(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)


def read_all(reader: ChainReader, chain: ChainFactory, first: int) -> list[float]:
    """Hand the blocks from height `first` to the reader; the time of each."""
    times = []
    for block in chain.blocks[first:]:
        value = block_to_json(block)
        before = time.perf_counter()
        reading = reader.read(value, block.header.height)
        times.append(time.perf_counter() - before)
        assert reading.verdict is Verdict.APPLIED, reading
    return times


def follow_cpu(chain: ChainFactory, blocks: list[Block], upto: int) -> float:
    """Process CPU seconds to parse and follow `blocks` (the chain's follower part alone)."""
    follower = BlockFollower(genesis_event=chain.genesis_event)
    for block in chain.blocks[:upto]:
        follower.follow(block)
    values = [block_to_json(block) for block in blocks]
    started = time.process_time()
    for value in values:
        assert follower.follow(block_from_json(value)) is not None
    return time.process_time() - started


def main() -> dict[str, object]:
    chain = ChainFactory()
    admin = chain.config.admin
    patients = [SigningKey.from_seed(os.urandom(32)).did for _ in range(PATIENTS)]
    chain.seal([practitioner_registered(chain)])
    events = [consultation(chain, n, patients[n % PATIENTS]) for n in range(N)]
    for first in range(0, N, PER_BLOCK):
        chain.seal(events[first : first + PER_BLOCK])
    with tempfile.TemporaryDirectory(prefix="bench-billing-") as directory:
        path = Path(directory) / "billing.db"
        database = open_database(f"sqlite:///{path}")
        engine, service, store = build(database, chain)
        reader = ChainReader(
            genesis_event=chain.genesis_event,
            handler=engine,
            metrics=NoMetrics(),
            topic="ledger.blocks",
        )
        service.deploy_contract(admin, {**CONTRACT_DOCUMENT, "version": 1})
        time.sleep(0.01)  # billing uses the contracts deployed strictly before it

        started = time.perf_counter()
        blocks = read_all(reader, chain, 0)[2:]  # genesis and the registration: no invoice
        issue_seconds = time.perf_counter() - started

        redeliveries: list[float] = []
        follower = BlockFollower(genesis_event=chain.genesis_event)
        followed: list[tuple[FollowedBlock, FollowerState]] = []
        for block in chain.blocks:
            one = follower.follow(block)
            assert one is not None
            assert follower.state is not None
            followed.append((one, follower.state))
        for block, state in followed[2:]:
            before = time.perf_counter()
            outcomes = engine.bill_block(block, state)
            redeliveries.append(time.perf_counter() - before)
            assert set(outcomes) == {"duplicate"}, outcomes

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

        # 4. Clinical traffic: one consultation in ten, blocks of 500.
        first_clinical = len(chain.blocks)
        for first in range(0, CLINICAL, CLINICAL_BLOCK):
            chain.seal(
                consultation(chain, N + n, patients[n % PATIENTS])
                if n % 10 == 0
                else chain.event("publisher", NOTE, {"text": f"note {n}"})
                for n in range(first, first + CLINICAL_BLOCK)
            )
        cpu_started = time.process_time()
        read_all(reader, chain, first_clinical)
        clinical_cpu = time.process_time() - cpu_started
        following = follow_cpu(chain, chain.blocks[first_clinical:], first_clinical)
        size = sum(p.stat().st_size for p in Path(directory).glob("billing.db*"))
        database.close()
    payments = patient_pays + payer_pays
    per_event = 1e6 / CLINICAL
    return {
        "billing_n": N,
        "billing_invoices_per_s": round(N / issue_seconds),
        "billing_invoice_mean_ms": round(issue_seconds / N * 1000, 2),
        "billing_block_of_50_p50_ms": percentile_ms(blocks, 0.50),
        "billing_block_of_50_p99_ms": percentile_ms(blocks, 0.99),
        "billing_redelivery_block_p50_ms": percentile_ms(redeliveries, 0.50),
        "billing_redelivery_block_p99_ms": percentile_ms(redeliveries, 0.99),
        "billing_redelivery_mean_ms": round(statistics.fmean(redeliveries) / PER_BLOCK * 1000, 3),
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
        "billing_clinical_events": CLINICAL,
        "billing_block_cpu_us_per_event": round(clinical_cpu * per_event, 1),
        "billing_block_follow_cpu_us_per_event": round(following * per_event, 1),
        "billing_block_engine_cpu_us_per_event": round((clinical_cpu - following) * per_event, 1),
    }
