"""Prometheus metrics of the identity service: changes by kind, credential refusals by reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from services.identity.core.events import CHANGE_KINDS


class PrometheusIdentityMetrics:
    """`IdentityMetrics` on a registry. Labels are bounded sets: never a DID or an id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._changes = Counter(
            "careledger_identity_changes",
            "Identity changes committed (each one event on identity.events), by kind",
            ["kind"],
            registry=registry,
        )
        self._refusals = Counter(
            "careledger_identity_credential_refusals",
            "Practitioner credentials refused at registration, by reason",
            ["reason"],
            registry=registry,
        )
        for kind in CHANGE_KINDS.values():
            self._changes.labels(kind)  # every kind shows from the start, at 0

    def changed(self, kind: str) -> None:
        self._changes.labels(kind).inc()

    def refused(self, reason: str) -> None:
        self._refusals.labels(reason).inc()
