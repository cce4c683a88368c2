"""Records service use cases in-process on a SQLite file: write throughput and read latency.

Method: the service is built as `services/records/wiring.py` builds it (real SQL store, real
SQL outbox in the same database, real cipher on os.urandom), minus Kafka: the outbox relay is
not started, so every event stays in the outbox table and the numbers are the cost of the
use case's transaction alone. A practitioner and a patient are registered with
`store.apply_block` as the chain follower would. Keys and the genesis come from the test
`ChainFactory`.

1. Writes: N `create_record` calls (one Observation each, the practitioner as author), one
   after the other; writes/s = N / total time, p99 over the per-call times. Each write
   validates the FHIR resource, encrypts it, signs the envelope and the RecordCreated event,
   wraps the data key to patient and author, and commits records, keys and outbox row.
2. Reads: N `read` calls by the patient, cycling over the written records; each decrypts,
   checks the commitment, and commits its RecordAccessed event, audit entry and outbox row.
   p50/p99 of the per-call times. None of the records is sealed, so the check is against the
   service's own signed event (the chain lookup is still made).

N defaults to 2,000; set CARELEDGER_BENCH_RECORDS for another.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.records.adapters.sql import SqlRecordsStore, migrate_records_store
from services.records.cipher import RecordCipher
from services.records.core.model import Practitioner
from services.records.ledger import RecordsLedger
from services.records.reading import RecordReader
from services.records.service import RecordsService
from shared.crypto import SigningKey
from shared.envelope import uuid7
from shared.outbox import SqlOutbox, migrate_outbox
from shared.pseudonym import patient_pseudonym
from shared.store import Database, open_database
from tests.unit.core.chainfactory import ChainFactory

N = int(os.environ.get("CARELEDGER_BENCH_RECORDS", "2000"))
PSEUDONYM_KEY = os.urandom(32)


def observation(n: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "pulse"},
        "subject": {"display": f"bench patient {n % 50}"},
        "valueQuantity": {"value": 60 + n % 40, "unit": "beats/minute"},
    }


def build(database: Database, chain: ChainFactory) -> tuple[Any, Any, SqlRecordsStore]:
    """Service and reader wired as in services/records/wiring.py, without relay or follower."""
    migrate_records_store(database)
    migrate_outbox(database)
    store = SqlRecordsStore(database=database)
    cipher = RecordCipher(key=chain.keys["records"], random_bytes=os.urandom)
    ledger = RecordsLedger(
        vault=store,
        chain=store,
        audit=store,
        outbox=SqlOutbox(database=database),
        cipher=cipher,
        key=chain.keys["records"],
        genesis=chain.config,
        pseudonym_key=PSEUDONYM_KEY,
        new_event_id=lambda now: uuid7(int(now.timestamp() * 1000), os.urandom(10)),
    )
    common: dict[str, Any] = {
        "uow": database,
        "ledger": ledger,
        "vault": store,
        "consents": store,
        "chain": store,
        "cipher": cipher,
        "clock": lambda: datetime.now(UTC),
        "new_id": lambda: str(uuid.uuid4()),
    }
    service = RecordsService(genesis=chain.config, **common)
    reader = RecordReader(audit=store, **common)
    return service, reader, store


def register(
    database: Database, store: SqlRecordsStore, practitioner: str, patient: str, issuer: str
) -> None:
    """What the chain follower stores once the identity events are sealed."""
    now = datetime.now(UTC)
    standing = Practitioner(
        did=practitioner,
        since=1,
        issuer=issuer,
        credential="ab" * 32,
        valid_from=now - timedelta(days=30),
        valid_until=now + timedelta(days=365),
    )
    with database.transaction() as tx:
        store.apply_block(
            tx,
            practitioners=[standing],
            authorities={},
            patients={patient_pseudonym(PSEUDONYM_KEY, patient): 1},
            marks=[],
            position={"height": 1},
        )


def percentile_ms(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)


def main() -> dict[str, object]:
    chain = ChainFactory()
    practitioner = SigningKey.from_seed(os.urandom(32))
    patient = SigningKey.from_seed(os.urandom(32))
    with tempfile.TemporaryDirectory(prefix="bench-records-") as directory:
        path = Path(directory) / "records.db"
        database = open_database(f"sqlite:///{path}")
        service, reader, store = build(database, chain)
        register(database, store, practitioner.did, patient.did, chain.did("authority"))

        records: list[str] = []
        writes: list[float] = []
        started = time.perf_counter()
        for n in range(N):
            before = time.perf_counter()
            written = service.create_record(
                practitioner.did, patient=patient.did, resource=observation(n)
            )
            writes.append(time.perf_counter() - before)
            records.append(written["record"])
        write_seconds = time.perf_counter() - started

        reads: list[float] = []
        for n in range(N):
            before = time.perf_counter()
            answer = reader.read(patient.did, records[n % len(records)])
            reads.append(time.perf_counter() - before)
        assert answer["integrity"]["checked_against"] == "signed_event"
        pending = SqlOutbox(database=database).pending_count()
        size = sum(p.stat().st_size for p in Path(directory).glob("records.db*"))
        database.close()
    return {
        "records_n": N,
        "records_writes_per_s": round(N / write_seconds),
        "records_write_p50_ms": percentile_ms(writes, 0.50),
        "records_write_p99_ms": percentile_ms(writes, 0.99),
        "records_write_max_ms": round(max(writes) * 1000, 2),
        "records_write_mean_ms": round(statistics.fmean(writes) * 1000, 2),
        "records_read_p50_ms": percentile_ms(reads, 0.50),
        "records_read_p99_ms": percentile_ms(reads, 0.99),
        "records_read_mean_ms": round(statistics.fmean(reads) * 1000, 2),
        "records_outbox_rows": pending,
        "records_db_mib": round(size / 2**20, 1),
    }
