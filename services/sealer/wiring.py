"""Builds the sealer service from its settings: the one place that creates clients."""

from __future__ import annotations

import os
import socket
import uuid

from fastapi import FastAPI

from services.sealer import __version__
from services.sealer.adapters.component import SealingComponent
from services.sealer.adapters.http import ingest_router
from services.sealer.adapters.ingest_outbox import OutboxEventQueue
from services.sealer.adapters.kafka import KafkaEventSource, KafkaLedgerPublisher
from services.sealer.adapters.metrics import PrometheusSealerMetrics
from services.sealer.adapters.sql import SqlChainStore, migrate_sealer
from services.sealer.config import SealerSettings
from services.sealer.ingest import EventIngest
from services.sealer.seen import StoredSeenEvents
from services.sealer.service import Sealer
from shared.admission import SignerRegistry
from shared.runtime.app import service_app
from shared.runtime.auth import wire_authenticator
from shared.runtime.identity import ServiceIdentity, load_identity
from shared.runtime.metrics import ConsumerLagMetrics, ServiceMetrics
from shared.runtime.outbox import OutboxWiring, wire_outbox
from shared.runtime.server import request_exit, run_service
from shared.runtime.signature_pool import SignaturePool
from shared.store import Database, open_database


def build_component(
    settings: SealerSettings,
    *,
    identity: ServiceIdentity,
    database: Database,
    metrics: ServiceMetrics,
) -> SealingComponent:
    """The sealing loop over this database and the configured broker (migrates the store)."""
    migrate_sealer(database)
    kafka = settings.kafka()
    source = KafkaEventSource(
        kafka=kafka,
        topics=settings.topics,
        group_id=f"careledger-{settings.instance_name}",
        statistics=ConsumerLagMetrics.of(metrics.registry).reporter("sealer"),
    )
    publisher = KafkaLedgerPublisher(kafka=kafka, topics=settings.topics)
    # Unique per process: a restarted sealer is a new holder and waits for the old lease to
    # expire unless the old one released it at a clean stop.
    holder = f"{settings.instance_name}@{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
    store = SqlChainStore(
        database=database, holder=holder, lease_seconds=settings.sealer_lease_seconds
    )
    # One process is the sealer's own thread (no pool); more run beside it (ADR 0010).
    workers = settings.sealer_verify_workers
    signatures = SignaturePool(workers) if workers > 1 else None
    sealer = Sealer(
        store=store,
        lease=store,
        lease_renew_every=settings.sealer_lease_seconds / 3,
        source=source,
        publisher=publisher,
        key=identity.key,
        genesis_event=identity.genesis_event,
        policy=settings.cut_policy(),
        metrics=PrometheusSealerMetrics(metrics.registry),
        signatures=signatures,
    )
    return SealingComponent(
        sealer=sealer,
        source=source,
        publisher=publisher,
        signatures=signatures,
        on_failure=request_exit,
    )


def build_ingest(
    settings: SealerSettings,
    *,
    sealer: Sealer,
    database: Database,
    outbox: OutboxWiring,
) -> EventIngest:
    """The HTTP ingest (ADR 0016): checked against the sealing loop's last chain state,
    queued in the outbox of the sealer's own database."""

    def registry() -> SignerRegistry | None:
        state = sealer.state  # one read: the loop replaces the immutable state whole
        return None if state is None else state.registry

    return EventIngest(
        queue=OutboxEventQueue(database=database, outbox=outbox.writer),
        registry=registry,
        seen=StoredSeenEvents(SqlChainStore(database=database)),
        notify=outbox.relay.notify,
        receipt_base=settings.ingest_receipt_url,
    )


def build(settings: SealerSettings) -> FastAPI:
    identity = load_identity(settings, role="sealer", dids=lambda genesis: {genesis.sealer})
    database = open_database(settings.resolved_database_url)
    metrics = ServiceMetrics(service="sealer", instance=settings.instance_name, version=__version__)
    component = build_component(settings, identity=identity, database=database, metrics=metrics)
    outbox = wire_outbox(settings, database, metrics)
    authenticator = wire_authenticator(settings, database, metrics)
    ingest = build_ingest(settings, sealer=component.sealer, database=database, outbox=outbox)
    app = service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[component, outbox.component],
        routers=[ingest_router(ingest)],
    )
    authenticator.install(app)
    return app


def main() -> None:
    run_service(SealerSettings, build)
