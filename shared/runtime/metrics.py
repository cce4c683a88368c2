"""Prometheus metrics every service exports (names per STYLE.md: careledger_, base units)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import ClassVar, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from shared.kafka.lag import PartitionLag, consumer_lags
from shared.store.errors import OPERATIONS

log = logging.getLogger(__name__)

HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    """One registry per app, so tests can build several services in one process.

    Labels are bounded: route templates, never raw paths, ids or DIDs.
    """

    def __init__(self, *, service: str, instance: str, version: str) -> None:
        self.registry = CollectorRegistry()
        Info("careledger_build", "Build information", registry=self.registry).info(
            {"service": service, "instance": instance, "version": version}
        )
        self.http_requests = Counter(
            "careledger_http_requests",
            "HTTP requests handled, by route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "careledger_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.ready = Gauge(
            "careledger_ready",
            "1 when every readiness check passes, else 0",
            registry=self.registry,
        )
        self.component_up = Gauge(
            "careledger_component_up",
            "1 when the component's readiness check passes",
            ["component"],
            registry=self.registry,
        )


class OutboxPrometheusMetrics:
    """Binds the outbox relay's hooks (shared.outbox.OutboxMetrics) to Prometheus."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._published = Counter(
            "careledger_outbox_published",
            "Outbox messages acknowledged by the brokers",
            ["topic"],
            registry=registry,
        )
        self._failed = Counter(
            "careledger_outbox_delivery_failures",
            "Outbox deliveries that failed and will be retried",
            ["topic"],
            registry=registry,
        )
        self._pending = Gauge(
            "careledger_outbox_pending_messages",
            "Committed outbox messages not yet delivered",
            registry=registry,
        )
        self._latency = Histogram(
            "careledger_outbox_delivery_seconds",
            "Time from produce to delivery report",
            ["topic"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )

    def published(self, topic: str, count: int) -> None:
        self._published.labels(topic).inc(count)

    def failed(self, topic: str, count: int) -> None:
        self._failed.labels(topic).inc(count)

    def pending(self, count: int) -> None:
        self._pending.set(count)

    def delivery_latency(self, topic: str, seconds: float) -> None:
        self._latency.labels(topic).observe(seconds)


class StoreErrorMetrics:
    """careledger_store_errors_total{operation}: errors the service's database raised,
    counted by `Database.watch_errors` (operation: `shared.store.errors.OPERATIONS`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._errors = Counter(
            "careledger_store_errors",
            "Database errors seen by the service's store, by kind of operation",
            ["operation"],
            registry=registry,
        )
        for operation in OPERATIONS:
            self._errors.labels(operation)  # every operation shows from the start, at 0

    def seen(self, operation: str) -> None:
        self._errors.labels(operation).inc()


class FollowerMetrics:
    """careledger_follower_height and careledger_follower_faults_total: how far a service
    following `ledger.blocks` got, and the blocks that failed its checks (the chain follower
    of identity and records, and billing's block stream)."""

    def __init__(self, registry: CollectorRegistry) -> None:
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

    def height(self, height: int) -> None:
        self._height.set(height)

    def fault(self) -> None:
        self._faults.inc()


#: The `consumer` label of careledger_kafka_consumer_lag_messages: one per kind of consumer.
LAG_CONSUMERS: Final = frozenset({"sealer", "validator", "follower", "billing_engine"})


class ConsumerLagMetrics:
    """careledger_kafka_consumer_lag_messages{consumer,topic,partition}: one gauge per
    registry, shared by every consumer of the process (`of`); each consumer feeds it through
    its own `reporter`.
    """

    _by_registry: ClassVar[weakref.WeakKeyDictionary[CollectorRegistry, ConsumerLagMetrics]] = (
        weakref.WeakKeyDictionary()
    )
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "careledger_kafka_consumer_lag_messages",
            "Messages in a partition past the consumer's stored or committed position",
            ["consumer", "topic", "partition"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ConsumerLagMetrics:
        """The lag gauge of `registry`, registered there at the first call."""
        with cls._lock:
            found = cls._by_registry.get(registry)
            if found is None:
                found = cls._by_registry[registry] = cls(registry)
            return found

    def reporter(self, consumer: str) -> Callable[[str], None]:
        """A librdkafka `stats_cb` for one consumer (`consumer` is one of LAG_CONSUMERS)."""
        show = self.setter(consumer)

        def on_statistics(statistics: str) -> None:
            try:
                lags = consumer_lags(statistics)
            except ValueError as exc:  # json.JSONDecodeError is one too
                log.warning("unreadable librdkafka statistics", extra={"error": str(exc)})
                return
            show(lags)

        return on_statistics

    def setter(self, consumer: str) -> Callable[[Iterable[PartitionLag]], None]:
        """Sets one consumer's series to the lags it is given, each time all of them.

        A partition that no longer has a lag (unassigned, or its position unknown for a
        moment) loses its series rather than keep showing a stale value.
        """
        if consumer not in LAG_CONSUMERS:
            raise ValueError(f"unknown consumer {consumer!r}: one of {sorted(LAG_CONSUMERS)}")
        shown: set[tuple[str, str]] = set()

        def show(lags: Iterable[PartitionLag]) -> None:
            now = set()
            for lag in lags:
                labels = (lag.topic, str(lag.partition))
                self.gauge.labels(consumer, *labels).set(lag.messages)
                now.add(labels)
            for labels in shown - now:
                self.gauge.remove(consumer, *labels)
            shown.clear()
            shown.update(now)

        return show
