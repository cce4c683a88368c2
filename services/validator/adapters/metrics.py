"""Binds the validator's metric hooks to Prometheus, in the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.validator.core.faults import FAULT_CODES
from services.validator.witness import WITNESS_OUTCOMES

VERIFY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: From the sealer's clock to ours, through the block's delivery and a quorum's attestations:
#: a fraction of a second when flowing, minutes when validators were down or catching up.
SEAL_TO_FINAL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)


class PrometheusValidatorMetrics:
    """`ValidatorMetrics` as Prometheus series. Labels are bounded sets: the refusal counters
    carry error class names (kept for existing dashboards), the faults counter stable codes."""

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
        self._seal_to_final = Histogram(
            "careledger_validator_seal_to_final_seconds",
            "Per block: from its sealed_at to this validator seeing it final (quorum)",
            buckets=SEAL_TO_FINAL_BUCKETS,
            registry=registry,
        )
        self._faults = Counter(
            "careledger_validator_faults",
            "Faults detected (refused blocks and alarms), by stable reason code",
            ["reason"],
            registry=registry,
        )
        for code in sorted(FAULT_CODES):
            self._faults.labels(code)  # every reason shows from the start, at 0
        self._witnessed = Counter(
            "careledger_validator_checkpoints_witnessed",
            "add-checkpoint requests answered as a witness, by outcome (cosigned or a refusal)",
            ["outcome"],
            registry=registry,
        )
        for outcome in WITNESS_OUTCOMES:
            self._witnessed.labels(outcome)

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

    def sealed_to_final(self, *, seconds: float) -> None:
        self._seal_to_final.observe(seconds)

    def fault(self, *, reason: str) -> None:
        self._faults.labels(reason).inc()

    def checkpoint_witnessed(self, *, outcome: str) -> None:
        self._witnessed.labels(outcome).inc()

    def finalized(self, *, height: int) -> None:
        # Finality can be learnt out of order (attestations race blocks): never go back.
        self._final = max(self._final, height)
        self._final_height.set(self._final)
