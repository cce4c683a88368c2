"""Prometheus metrics of the billing service: consultations billed or not, payments, and how
far it followed the chain (the same families as every service's chain follower)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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
        self._height = Gauge(
            "careledger_follower_height",
            "Height of the last chain block the service applied (-1 before genesis)",
            registry=registry,
        )
        self._faults = Counter(
            "careledger_follower_faults",
            "Blocks that failed the follower's checks (the follower stops at the first)",
            registry=registry,
        )
        self._height.set(-1)
        self._consultations.labels("invoiced", "")  # shown from the start, at 0

    def consultation(self, outcome: str, reason: str) -> None:
        self._consultations.labels(outcome, reason[:64]).inc()

    def payment(self, party: str, outcome: str) -> None:
        self._payments.labels(party, outcome).inc()

    def follower_height(self, height: int) -> None:
        self._height.set(height)

    def follower_fault(self) -> None:
        self._faults.inc()
