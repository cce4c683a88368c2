"""Wiring of the transactional outbox for the API services (identity, records, billing)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.outbox import OutboxRelay, SqlOutbox, migrate_outbox
from shared.runtime.component import RelayComponent
from shared.runtime.metrics import OutboxPrometheusMetrics, ServiceMetrics
from shared.runtime.settings import ServiceSettings
from shared.store import Database


@dataclass(frozen=True, slots=True)
class OutboxWiring:
    """`writer` adds events inside a use case's transaction; `relay.notify()` after commit."""

    writer: SqlOutbox
    relay: OutboxRelay
    component: RelayComponent


def wire_outbox(
    settings: ServiceSettings, database: Database, metrics: ServiceMetrics
) -> OutboxWiring:
    """Migrate the outbox tables and build the relay that publishes them."""
    migrate_outbox(database)
    writer = SqlOutbox(database=database)
    relay = OutboxRelay(
        store=writer,
        kafka=settings.kafka(),
        topics=settings.topics,
        metrics=OutboxPrometheusMetrics(metrics.registry),
        name=f"{settings.instance_name}-outbox",
    )
    return OutboxWiring(
        writer, relay, RelayComponent(relay, drain_timeout=settings.shutdown_grace_seconds)
    )
