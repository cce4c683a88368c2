"""Database errors reach careledger_store_errors_total by operation, on a real SQLite file,
and the exposition never carries the failed SQL or its parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.runtime.metrics import StoreErrorMetrics
from shared.store import open_database
from shared.store.errors import OPERATIONS

pytestmark = pytest.mark.integration

ERRORS = "careledger_store_errors_total"


def test_errors_are_counted_by_operation_once_per_database(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    metrics = StoreErrorMetrics(registry)

    def count(operation: str) -> float:
        value = registry.get_sample_value(ERRORS, {"operation": operation})
        assert value is not None
        return value

    assert {operation: count(operation) for operation in OPERATIONS} == dict.fromkeys(
        OPERATIONS, 0.0
    )
    with open_database("sqlite:///errors.db", data_dir=tmp_path) as database:
        database.watch_errors(metrics.seen)
        database.watch_errors(metrics.seen)  # hooked once: not counted twice
        with database.transaction() as tx:
            tx.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, secret TEXT)")
            tx.exec_driver_sql("INSERT INTO item (id, secret) VALUES (1, 'patient-x')")
        with pytest.raises(IntegrityError), database.transaction() as tx:
            tx.exec_driver_sql("INSERT INTO item (id, secret) VALUES (1, 'patient-y')")
        with pytest.raises(OperationalError), database.read() as connection:
            connection.exec_driver_sql("SELECT secret FROM missing_table")
        with pytest.raises(OperationalError), database.transaction() as tx:
            tx.exec_driver_sql("CREATE TABLE item (id INTEGER)")
        assert database.ping()  # what works is not counted
    assert (count("write"), count("read"), count("schema")) == (1.0, 1.0, 1.0)
    assert count("transaction") + count("connect") + count("other") == 0
    exposed = generate_latest(registry).decode()
    for leaked in ("patient-y", "missing_table", "INSERT", "secret"):
        assert leaked not in exposed
