"""Prometheus metrics of the billing service: consultations billed or not, and payments."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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
        self._consultations.labels("invoiced", "")  # shown from the start, at 0

    def consultation(self, outcome: str, reason: str) -> None:
        self._consultations.labels(outcome, reason[:64]).inc()

    def payment(self, party: str, outcome: str) -> None:
        self._payments.labels(party, outcome).inc()
