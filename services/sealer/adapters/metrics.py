"""The sealer's Prometheus metrics, in the app's registry (names per STYLE.md)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

CUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
#: From a publisher's clock to ours: milliseconds when flowing, minutes when the sealer was
#: down or behind, so the buckets reach further than a block cut's.
PUBLISH_TO_SEAL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PrometheusSealerMetrics:
    """`SealerMetrics` as counters, a height gauge and a block-cut latency histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter(
            "careledger_sealer_events_sealed",
            "Events sealed into stored blocks",
            registry=registry,
        )
        self._rejected = Counter(
            "careledger_sealer_events_rejected",
            "Events not admitted, by reason code",
            ["reason"],
            registry=registry,
        )
        self._blocks = Counter(
            "careledger_sealer_blocks", "Blocks sealed and stored", registry=registry
        )
        self._height = Gauge(
            "careledger_sealer_height", "Height of the last stored block", registry=registry
        )
        self._leader = Gauge(
            "careledger_sealer_leader",
            "1 while this sealer holds the chain's writer lease, 0 in standby",
            registry=registry,
        )
        self._cut = Histogram(
            "careledger_sealer_block_cut_seconds",
            "From a block's first admitted event to the block stored and published",
            buckets=CUT_BUCKETS,
            registry=registry,
        )
        self._publish_to_seal = Histogram(
            "careledger_sealer_publish_to_seal_seconds",
            "Per sealed event: from its CloudEvents time to its block's sealed_at (skew: 0)",
            buckets=PUBLISH_TO_SEAL_BUCKETS,
            registry=registry,
        )

    def sealed(self, events: int, *, height: int, cut_seconds: float) -> None:
        self._events.inc(events)
        self._blocks.inc()
        self._height.set(height)
        self._cut.observe(cut_seconds)

    def published_to_sealed(self, seconds: Sequence[float]) -> None:
        observe = self._publish_to_seal.observe
        for wait in seconds:
            observe(wait)

    def rejected(self, reason: str) -> None:
        self._rejected.labels(reason).inc()

    def at_height(self, height: int) -> None:
        self._height.set(height)

    def leading(self, holds_lease: bool) -> None:
        self._leader.set(1 if holds_lease else 0)
