"""Builds the identity service from its settings: the one place that creates clients."""

from __future__ import annotations

from fastapi import FastAPI

from services.identity import __version__
from services.identity.adapters.http import identity_router
from services.identity.adapters.metrics import PrometheusIdentityMetrics
from services.identity.adapters.sql import SqlIdentityJournal, migrate_identity_store
from services.identity.config import IdentitySettings
from services.identity.sealing import SealedHeights
from services.identity.service import IdentityService
from shared.follower.kafka import ChainFollower
from shared.keystore import read_pseudonym_key_file
from shared.runtime.app import service_app
from shared.runtime.auth import wire_authenticator
from shared.runtime.identity import load_identity
from shared.runtime.metrics import ServiceMetrics
from shared.runtime.outbox import wire_outbox
from shared.runtime.server import run_service
from shared.sources import new_event_id, utc_now
from shared.store import open_database


def build(settings: IdentitySettings) -> FastAPI:
    identity = load_identity(
        settings, role="identity service", dids=lambda genesis: {genesis.services.identity}
    )
    pseudonym_key = read_pseudonym_key_file(settings.resolved_pseudonym_key_file)
    database = open_database(settings.resolved_database_url)
    migrate_identity_store(database)
    metrics = ServiceMetrics(
        service="identity", instance=settings.instance_name, version=__version__
    )
    outbox = wire_outbox(settings, database, metrics)
    journal = SqlIdentityJournal(database=database)
    service = IdentityService(
        uow=database,
        journal=journal,
        outbox=outbox.writer,
        key=identity.key,
        genesis=identity.genesis,
        pseudonym_key=pseudonym_key,
        clock=utc_now,
        new_id=new_event_id,
        notify=outbox.relay.notify,
        metrics=PrometheusIdentityMetrics(metrics.registry),
    )
    follower = ChainFollower(
        genesis_event=identity.genesis_event,
        handler=SealedHeights(
            uow=database, journal=journal, signer=identity.key.did, source=service.source
        ),
        kafka=settings.kafka(),
        topics=settings.topics,
        client_name=f"{settings.instance_name}-follower",
        registry=metrics.registry,
    )
    authenticator = wire_authenticator(settings, database, metrics)
    return service_app(
        settings,
        version=__version__,
        identity=identity,
        database=database,
        metrics=metrics,
        components=[outbox.component, follower],
        routers=[identity_router(service, authenticator)],
    )


def main() -> None:
    run_service(IdentitySettings, build)
