"""Prometheus metrics of the records service: writes, audited accesses, integrity failures."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from services.records.core.fhir import SUPPORTED_TYPES
from shared.events.records import AccessAction, AccessOutcome


class PrometheusRecordsMetrics:
    """`RecordsMetrics` on a registry. Labels are bounded sets: resource types, actions and
    outcomes; never a DID, a record id or a pseudonym."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._writes = Counter(
            "careledger_records_writes",
            "Record versions written (each one event on records.events), by resource type",
            ["resource_type", "kind"],
            registry=registry,
        )
        self._accesses = Counter(
            "careledger_records_accesses",
            "Audited accesses (each one RecordAccessed event), by action and outcome",
            ["action", "outcome"],
            registry=registry,
        )
        self._integrity = Counter(
            "careledger_records_integrity_failures",
            "Reads refused because a stored record did not match its commitment or ciphertext",
            registry=registry,
        )
        for action in AccessAction:
            for outcome in AccessOutcome:
                self._accesses.labels(str(action), str(outcome))  # shown from the start, at 0

    def written(self, resource_type: str, created: bool) -> None:
        label = resource_type if resource_type in SUPPORTED_TYPES else "other"
        self._writes.labels(label, "created" if created else "updated").inc()

    def accessed(self, action: str, outcome: str) -> None:
        self._accesses.labels(action, outcome).inc()

    def integrity_failed(self) -> None:
        self._integrity.inc()
