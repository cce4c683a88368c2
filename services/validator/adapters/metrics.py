"""Binds the validator's metric hooks to Prometheus, in the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

VERIFY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusValidatorMetrics:
    """`ValidatorMetrics` as Prometheus series (labels: error class names only)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._final = -1
        self._height = Gauge(
            "careledger_validator_height",
            "Height of the last block this validator verified and stored",
            registry=registry,
        )
        self._final_height = Gauge(
            "careledger_validator_final_height",
            "Highest height whose block reached the genesis quorum of attestations",
            registry=registry,
        )
        self._verified = Counter(
            "careledger_validator_blocks_verified",
            "Blocks verified completely and stored",
            registry=registry,
        )
        self._events = Counter(
            "careledger_validator_events_verified",
            "Events re-verified inside stored blocks",
            registry=registry,
        )
        self._refused = Counter(
            "careledger_validator_blocks_refused",
            "Blocks refused and kept as evidence, by error class",
            ["reason"],
            registry=registry,
        )
        self._attestations_refused = Counter(
            "careledger_validator_attestations_refused",
            "Attestations that did not verify, by error class",
            ["reason"],
            registry=registry,
        )
        self._latency = Histogram(
            "careledger_validator_verify_seconds",
            "Time to verify and store one block",
            buckets=VERIFY_BUCKETS,
            registry=registry,
        )

    def block_verified(self, *, height: int, events: int, seconds: float) -> None:
        self._height.set(height)
        if events:
            self._verified.inc()
            self._events.inc(events)
            self._latency.observe(seconds)

    def block_refused(self, *, reason: str) -> None:
        self._refused.labels(reason).inc()

    def attestation_refused(self, *, reason: str) -> None:
        self._attestations_refused.labels(reason).inc()

    def finalized(self, *, height: int) -> None:
        # Finality can be learnt out of order (attestations race blocks): never go back.
        self._final = max(self._final, height)
        self._final_height.set(self._final)
