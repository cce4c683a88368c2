"""Prometheus metrics of the billing service: consultations billed or not, payments, and how
far it followed the chain (the same families as every service's chain follower)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.runtime.metrics import FollowerMetrics


class PrometheusBillingMetrics:
    """`BillingMetrics` on a registry. Labels are bounded sets (outcomes, reason codes,
    parties); never an invoice id, an encounter, a DID or a pseudonym."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._consultations = Counter(
            "careledger_billing_consultations",
            "Consultation events handled, by outcome (invoiced, rejected, duplicate, ignored) "
            "and reason",
            ["outcome", "reason"],
            registry=registry,
        )
        self._payments = Counter(
            "careledger_billing_payments",
            "Payments, by party and outcome (counted, or the refusal reason)",
            ["party", "outcome"],
            registry=registry,
        )
        self._follower = FollowerMetrics(registry)
        self._consultations.labels("invoiced", "")  # shown from the start, at 0

    def consultation(self, outcome: str, reason: str) -> None:
        self._consultations.labels(outcome, reason[:64]).inc()

    def payment(self, party: str, outcome: str) -> None:
        self._payments.labels(party, outcome).inc()

    def follower_height(self, height: int) -> None:
        self._follower.height(height)

    def follower_fault(self) -> None:
        self._follower.fault()
